"""Deployment settings, read once from the environment into one typed object.

``Settings.from_env()`` is the only place that reads ``os.environ``; the result is
passed down (``create_app(settings)``, ``create_celery(settings)``). It lives in
``storage`` because that is the lowest package both the API and the workers import.

Missing or contradictory variables raise `SettingsError` naming the variable, so a
misconfigured process stops at start-up instead of failing its first job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from storage.constants import MAX_AUDIO_SECONDS_CEILING
from storage.urlguard import parse_allow_list

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_STORAGE_DIR = "./var/storage"
DEFAULT_MAX_UPLOAD_BYTES = 500 * 1000 * 1000
DEFAULT_MAX_AUDIO_SECONDS = 4 * 3600
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_REAP_INTERVAL = 15.0
R2_ENDPOINT = "https://{account}.r2.cloudflarestorage.com"

_S3_VARS = ("S3_ENDPOINT_URL", "S3_BUCKET")
_R2_VARS = ("R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME")


class SettingsError(ValueError):
    """A variable is missing, malformed or contradicts another; the message names it."""


@dataclass(frozen=True)
class LocalStorage:
    """Objects on local disk; links are HMAC-signed and served by the API."""

    root: Path


#: S3 client defaults: a store that hangs fails a request after about
#: attempts x read timeout, plus a backoff that is short for 5xx answers.
DEFAULT_S3_CONNECT_TIMEOUT = 10.0
DEFAULT_S3_READ_TIMEOUT = 60.0
DEFAULT_S3_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class S3Storage:
    """Objects in S3 or any S3-compatible store (Cloudflare R2, MinIO, moto)."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    #: Seconds to open a connection, and to wait on each read of an answer.
    connect_timeout: float = DEFAULT_S3_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_S3_READ_TIMEOUT
    #: Tries of each request, the first included (5xx, timeouts and resets are
    #: retried with exponential backoff and jitter).
    max_attempts: int = DEFAULT_S3_MAX_ATTEMPTS


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)  # may carry a password
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    #: Where workers reach the API (callbacks, local-store downloads); defaults to
    #: the public URL. Set it when clients and workers see the API under different
    #: names, e.g. http://api:8000 inside docker-compose.
    internal_base_url: str = DEFAULT_PUBLIC_BASE_URL
    #: api key -> tenant
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    worker_token: str = field(default="", repr=False)
    storage: LocalStorage | S3Storage = field(
        default_factory=lambda: LocalStorage(Path(DEFAULT_STORAGE_DIR))
    )
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    #: Longer audio is refused (invalid_audio) before it is decoded.
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    #: Deliveries a job may start (a worker killed mid-render redelivers it) before it
    #: fails with worker_lost: a job that crashes its worker cannot loop forever.
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: A running job whose worker has not reported for this long is taken to be
    #: lost (its lease expires) and is handed to another worker. Workers report
    #: every 2 s, so this covers API restarts and slow networks.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    #: How often Celery beat runs the reaper (lost leases, deadlines, due webhooks).
    reap_interval: float = DEFAULT_REAP_INTERVAL
    #: Seconds before an unacked broker message is delivered again; keep it above the
    #: longest hard time limit (1 h). Lower only in tests of that very redelivery.
    visibility_timeout: float = 2 * 3600
    #: ``host:port`` endpoints exempt from the SSRF guard (development and tests only).
    allow_private_urls: frozenset[str] = frozenset()
    #: Key from which each tenant's webhook secret is derived; WORKER_TOKEN if unset.
    webhook_signing_key: str = field(default="", repr=False)
    #: Multiplies the webhook retry schedule (tests shrink it; 1 in production).
    webhook_retry_scale: float = 1.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        public_base_url = _base_url("PUBLIC_BASE_URL", get("PUBLIC_BASE_URL"))
        internal_base_url = _base_url("INTERNAL_BASE_URL", get("INTERNAL_BASE_URL"))
        redis_url = get("REDIS_URL") or DEFAULT_REDIS_URL
        if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
        max_upload = get("MAX_UPLOAD_BYTES")
        try:
            max_upload_bytes = int(max_upload) if max_upload else DEFAULT_MAX_UPLOAD_BYTES
        except ValueError:
            raise SettingsError("MAX_UPLOAD_BYTES must be a whole number of bytes") from None
        if max_upload_bytes <= 0:
            raise SettingsError("MAX_UPLOAD_BYTES must be positive")
        max_audio = get("MAX_AUDIO_SECONDS")
        try:
            max_audio_seconds = float(max_audio) if max_audio else DEFAULT_MAX_AUDIO_SECONDS
        except ValueError:
            raise SettingsError("MAX_AUDIO_SECONDS must be a number of seconds") from None
        if not 0 < max_audio_seconds <= MAX_AUDIO_SECONDS_CEILING:
            raise SettingsError(
                f"MAX_AUDIO_SECONDS must be positive and at most {MAX_AUDIO_SECONDS_CEILING}")
        attempts = get("MAX_ATTEMPTS")
        if attempts is not None and (not attempts.isdigit() or int(attempts) < 1):
            raise SettingsError("MAX_ATTEMPTS must be a whole number, at least 1")
        lease_seconds = _seconds("LEASE_SECONDS", get("LEASE_SECONDS"), DEFAULT_LEASE_SECONDS)
        reap_interval = _seconds("REAP_INTERVAL", get("REAP_INTERVAL"), DEFAULT_REAP_INTERVAL)
        visibility = get("BROKER_VISIBILITY_TIMEOUT")
        try:
            visibility_timeout = float(visibility) if visibility else 2 * 3600.0
        except ValueError:
            raise SettingsError("BROKER_VISIBILITY_TIMEOUT must be a number of seconds") from None
        if visibility_timeout <= 0:
            raise SettingsError("BROKER_VISIBILITY_TIMEOUT must be positive")
        try:
            allow_private_urls = parse_allow_list(get("ALLOW_PRIVATE_URLS") or "")
        except ValueError as exc:
            raise SettingsError(f"ALLOW_PRIVATE_URLS: {exc}") from None
        scale = get("WEBHOOK_RETRY_SCALE")
        try:
            retry_scale = float(scale) if scale else 1.0
        except ValueError:
            raise SettingsError("WEBHOOK_RETRY_SCALE must be a number") from None
        if not 0 < retry_scale <= 1:
            raise SettingsError("WEBHOOK_RETRY_SCALE must be above 0 and at most 1")
        worker_token = get("WORKER_TOKEN")
        if not worker_token:
            raise SettingsError(
                "WORKER_TOKEN is required: a long random secret shared by the API and the "
                'workers (e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        if len(worker_token) < 16:
            raise SettingsError("WORKER_TOKEN is too short: use at least 16 random characters")
        return cls(
            redis_url=redis_url,
            public_base_url=public_base_url,
            internal_base_url=internal_base_url or public_base_url,
            api_keys=_parse_api_keys(get("API_KEYS") or ""),
            worker_token=worker_token,
            storage=_storage_from_env(get),
            max_upload_bytes=max_upload_bytes,
            max_audio_seconds=max_audio_seconds,
            max_attempts=int(attempts) if attempts else DEFAULT_MAX_ATTEMPTS,
            lease_seconds=lease_seconds,
            reap_interval=reap_interval,
            allow_private_urls=allow_private_urls,
            visibility_timeout=visibility_timeout,
            webhook_signing_key=get("WEBHOOK_SIGNING_KEY") or "",
            webhook_retry_scale=retry_scale,
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
        )

    def require_api_keys(self) -> None:
        """The API refuses to start without at least one client key."""
        if not self.api_keys:
            raise SettingsError(
                "API_KEYS is required: a comma-separated list of tenant:key, e.g. acme:sk_live_..."
            )


def _seconds(name: str, value: str | None, default: float) -> float:
    try:
        seconds = float(value) if value else default
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if not 0 < seconds < 86400:
        raise SettingsError(f"{name} must be between 0 and 86400 seconds")
    return seconds


def _base_url(name: str, value: str | None) -> str:
    if name == "PUBLIC_BASE_URL":
        value = value or DEFAULT_PUBLIC_BASE_URL
    elif value is None:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL such as {DEFAULT_PUBLIC_BASE_URL}")
    return value.rstrip("/")


def _parse_api_keys(raw: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        tenant, sep, key = item.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise SettingsError("API_KEYS entries must look like tenant:key, separated by commas")
        if len(key) < 8:
            raise SettingsError(f"API_KEYS: the key of tenant {tenant!r} is shorter than 8 chars")
        if key in keys and keys[key] != tenant:
            raise SettingsError("API_KEYS: one key is given to two tenants")
        keys[key] = tenant
    return keys


def _storage_from_env(get) -> LocalStorage | S3Storage:  # noqa: ANN001 - a tiny closure
    s3 = [name for name in _S3_VARS if get(name)]
    r2 = [name for name in _R2_VARS if get(name)]
    local = get("STORAGE_DIR")
    chosen = [label for label, used in (("STORAGE_DIR", local), ("S3_*", s3), ("R2_*", r2)) if used]
    if len(chosen) > 1:
        raise SettingsError(
            f"storage is configured twice ({' and '.join(chosen)}): set only one of "
            "STORAGE_DIR, the S3_* variables or the R2_* variables"
        )
    if r2:
        missing = [name for name in _R2_VARS if not get(name)]
        if missing:
            raise SettingsError(f"R2 storage needs {', '.join(missing)} as well")
        return S3Storage(
            bucket=get("R2_BUCKET_NAME"),
            endpoint_url=R2_ENDPOINT.format(account=get("R2_ACCOUNT_ID")),
            region="auto",
            access_key_id=get("R2_ACCESS_KEY_ID"),
            secret_access_key=get("R2_SECRET_ACCESS_KEY"),
            **_s3_client_options(get),
        )
    if s3:
        if not get("S3_BUCKET"):
            raise SettingsError("S3_BUCKET is required when S3_ENDPOINT_URL is set")
        access, secret = get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")
        if bool(access) != bool(secret):
            missing = "AWS_SECRET_ACCESS_KEY" if access else "AWS_ACCESS_KEY_ID"
            raise SettingsError(f"{missing} is required with the other AWS_* key")
        return S3Storage(
            bucket=get("S3_BUCKET"),
            endpoint_url=get("S3_ENDPOINT_URL"),
            region=get("AWS_REGION"),
            access_key_id=access,
            secret_access_key=secret,
            **_s3_client_options(get),
        )
    return LocalStorage(Path(local or DEFAULT_STORAGE_DIR).resolve())


def _s3_client_options(get) -> dict[str, float | int]:  # noqa: ANN001 - a tiny closure
    """Timeouts and tries of the S3/R2 client (both use it): tests shorten them so a
    hung store fails in seconds; production keeps the defaults."""
    options: dict[str, float | int] = {}
    for name, option in (("S3_CONNECT_TIMEOUT", "connect_timeout"),
                         ("S3_READ_TIMEOUT", "read_timeout")):
        raw = get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number of seconds") from None
        if not 0 < seconds < float("inf"):
            raise SettingsError(f"{name} must be a positive number of seconds")
        options[option] = seconds
    attempts = get("S3_MAX_ATTEMPTS")
    if attempts is not None:
        if not attempts.isdigit() or int(attempts) < 1:
            raise SettingsError("S3_MAX_ATTEMPTS must be a whole number, at least 1")
        options["max_attempts"] = int(attempts)
    return options
