"""Deployment settings, read once from the environment into one typed object.

``Settings`` is a pydantic-settings model: ``Settings.from_env()`` reads
``os.environ`` (the only place that does), ``Settings.from_env(mapping)`` reads a
mapping instead (tests, embedders); the result is passed down
(``create_app(settings)``, ``create_celery(settings)``). Every field is the
upper-cased variable of the same name, except where ``validation_alias`` says.

Missing, malformed or contradictory variables raise `SettingsError` naming the
variable, so a misconfigured process stops at start-up instead of failing its
first job. Secrets (``REDIS_URL``, ``WORKER_TOKEN``, ``API_KEYS``, ``METRICS_TOKEN``,
``FLOWER_BASIC_AUTH``, the storage keys) stay out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from jobs.constants import HANDOFF_SECONDS, MAX_AUDIO_SECONDS_CEILING
from security.urlguard import parse_allow_list

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_STORAGE_DIR = "./var/storage"
DEFAULT_MAX_UPLOAD_BYTES = 500 * 1000 * 1000
DEFAULT_MAX_AUDIO_SECONDS = 4 * 3600
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_REAP_INTERVAL = 15.0
DEFAULT_SPLIT_MIN_SECONDS = 120.0
DEFAULT_SEGMENT_SECONDS = 30.0
#: Fair share and limits (docs/scaling.md): units of a tenant in flight per queue,
#: submissions per minute (a token bucket) and queued jobs per tenant.
DEFAULT_TENANT_MAX_INFLIGHT = 8
DEFAULT_SUBMISSIONS_PER_MINUTE = 600
DEFAULT_MAX_QUEUED_JOBS = 1000
R2_ENDPOINT = "https://{account}.r2.cloudflarestorage.com"

_S3_VARS = ("S3_ENDPOINT_URL", "S3_BUCKET")
_R2_VARS = ("R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET_NAME")


class SettingsError(ValueError):
    """A variable is missing, malformed or contradicts another; the message names it."""


@dataclass(frozen=True)
class TenantLimits:
    """A tenant's submission limits; 0 means none."""

    #: Submissions a minute (a token bucket of this size, refilled at this rate).
    per_minute: int
    #: Jobs queued (not yet started) at most.
    max_queued: int


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


#: Set by ``Settings.from_env(mapping)``: the variables to read instead of os.environ.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("soundreel_environ", default=None)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # as the base class reads os.environ: names case-insensitive, empty values unset
        return {
            name.lower(): value
            for name, value in self._environ.items()
            if not (self.env_ignore_empty and value == "")
        }


def _secret(**kwargs: Any) -> Any:
    return Field(repr=False, exclude=True, **kwargs)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True, env_ignore_empty=True, extra="ignore", str_strip_whitespace=True,
        populate_by_name=True,
    )  # fmt: skip

    redis_url: str = Field(DEFAULT_REDIS_URL, repr=False)  # may carry a password
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    #: Where workers reach the API (callbacks, local-store downloads); defaults to
    #: the public URL. Set it when clients and workers see the API under different
    #: names, e.g. http://api:8000 inside docker-compose.
    internal_base_url: str = ""
    #: api key -> tenant, from ``API_KEYS`` = ``tenant:key,tenant:key``
    api_keys: Annotated[Mapping[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    worker_token: str = Field("", repr=False)
    #: Where objects live: the local disk unless the S3_* or R2_* variables say otherwise.
    storage: LocalStorage | S3Storage = Field(
        default_factory=lambda: LocalStorage(Path(DEFAULT_STORAGE_DIR).resolve())
    )
    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    #: Longer audio is refused (invalid_audio) before it is decoded.
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS
    #: Deliveries a job may start (a worker killed mid-render redelivers it) before it
    #: fails with worker_lost: a job that crashes its worker cannot loop forever.
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, ge=1)
    #: A running job whose worker has not reported for this long is taken to be
    #: lost (its lease expires) and is handed to another worker. Workers report
    #: every 2 s, so this covers API restarts and slow networks.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    #: How long a job's lease is held after its task handed the outcome off, for the
    #: result callback to report it; past that the reaper ends the job from the
    #: hand-off (never renders it again). Lower only in tests of that very gap.
    handoff_seconds: float = HANDOFF_SECONDS
    #: How often Celery beat runs the reaper (lost leases, deadlines, due webhooks).
    reap_interval: float = DEFAULT_REAP_INTERVAL
    #: A ``render`` job with at least this many seconds of clip is split into windows
    #: that the fleet renders side by side, then joined (``options.split: false`` opts
    #: a job out; previews and prepares never split).
    split_min_seconds: float = Field(DEFAULT_SPLIT_MIN_SECONDS, gt=0)
    #: About how long each window of a split render is (rounded to whole GOPs).
    segment_seconds: float = Field(DEFAULT_SEGMENT_SECONDS, ge=5)
    #: Fair share: a tenant's units of work (jobs, split windows) sent to a queue and
    #: not ended, at most; the rest wait in the tenant's own line, so another tenant's
    #: job waits behind at most this many of each tenant's. Very large: off (FIFO).
    tenant_max_inflight: int = Field(DEFAULT_TENANT_MAX_INFLIGHT, ge=1)
    #: Per tenant, unless TENANT_LIMITS says otherwise: submissions a minute (token
    #: bucket) and queued jobs at most; past either, 429 rate_limited. 0: no limit.
    submissions_per_minute: int = Field(DEFAULT_SUBMISSIONS_PER_MINUTE, ge=0)
    max_queued_jobs: int = Field(DEFAULT_MAX_QUEUED_JOBS, ge=0)
    #: tenant -> its own limits, from ``TENANT_LIMITS`` = ``tenant:perMinute:maxQueued,...``
    tenant_limits: Annotated[Mapping[str, TenantLimits], NoDecode] = Field(default_factory=dict)
    #: Seconds before an unacked broker message is delivered again; keep it above the
    #: longest hard time limit (1 h). Lower only in tests of that very redelivery.
    visibility_timeout: float = Field(
        2 * 3600.0, gt=0,
        validation_alias=AliasChoices("visibility_timeout", "BROKER_VISIBILITY_TIMEOUT"),
    )  # fmt: skip
    #: ``host:port`` endpoints exempt from the SSRF guard (development and tests only).
    allow_private_urls: Annotated[frozenset[str], NoDecode] = frozenset()
    #: Key from which each tenant's webhook secret is derived; WORKER_TOKEN if unset.
    webhook_signing_key: str = Field("", repr=False)
    #: Multiplies the webhook retry schedule (tests shrink it; 1 in production).
    webhook_retry_scale: float = Field(1.0, gt=0, le=1)
    #: Whether a job with the same audio bytes and options as a finished one of its
    #: tenant reuses that output (docs/cache.md). Off: every job renders.
    render_cache: bool = True
    log_level: str = "INFO"
    #: When set, ``GET /metrics`` on the API answers only ``Authorization: Bearer`` it.
    metrics_token: str = Field("", repr=False)
    #: Flower (``python -m tasks.flower``): ``user:password[,user:password]``, required;
    #: the address it listens on (loopback unless an operator opens it) and its port.
    flower_basic_auth: str = Field("", repr=False)
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(5555, ge=1, le=65535)

    # The variables ``storage`` is made from; read, checked, then folded into it.
    storage_dir: str | None = Field(None, exclude=True, repr=False)
    s3_endpoint_url: str | None = Field(None, exclude=True, repr=False)
    s3_bucket: str | None = Field(None, exclude=True, repr=False)
    aws_region: str | None = Field(None, exclude=True, repr=False)
    aws_access_key_id: str | None = _secret(default=None)
    aws_secret_access_key: str | None = _secret(default=None)
    r2_account_id: str | None = Field(None, exclude=True, repr=False)
    r2_access_key_id: str | None = _secret(default=None)
    r2_secret_access_key: str | None = _secret(default=None)
    r2_bucket_name: str | None = Field(None, exclude=True, repr=False)
    #: Seconds to open a connection to S3/R2, and to wait on each read of an answer.
    s3_connect_timeout: float = Field(DEFAULT_S3_CONNECT_TIMEOUT, gt=0, exclude=True, repr=False)
    s3_read_timeout: float = Field(DEFAULT_S3_READ_TIMEOUT, gt=0, exclude=True, repr=False)
    #: Tries of each S3/R2 request, the first included.
    s3_max_attempts: int = Field(DEFAULT_S3_MAX_ATTEMPTS, ge=1, exclude=True, repr=False)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: Any, env_settings: Any,
        dotenv_settings: Any, file_secret_settings: Any,
    ) -> tuple[Any, ...]:  # fmt: skip
        environ = _ENVIRON.get()
        if environ is not None:
            return init_settings, _MappingSource(settings_cls, environ)
        return init_settings, env_settings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of ``env`` (os.environ when None); SettingsError names a bad variable."""
        try:
            with _reading(env):
                settings = cls()
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None
        if not settings.worker_token:
            raise SettingsError(
                "WORKER_TOKEN is required: a long random secret shared by the API and the "
                'workers (e.g. python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return settings

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("public_base_url", "internal_base_url")
    @classmethod
    def _base_url(cls, value: str, info: Any) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"{info.field_name.upper()} must be an http(s) URL such as "
                f"{DEFAULT_PUBLIC_BASE_URL}"
            )
        return value.rstrip("/")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, value: object) -> object:
        return _parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("tenant_limits", mode="before")
    @classmethod
    def _tenant_limits(cls, value: object) -> object:
        return _parse_tenant_limits(value) if isinstance(value, str) else value

    @field_validator("worker_token", "metrics_token")
    @classmethod
    def _token(cls, value: str, info: Any) -> str:
        if value and len(value) < 16:
            raise ValueError(f"{info.field_name.upper()} is too short: use at least 16 random "
                             "characters")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _flower_basic_auth(cls, value: str) -> str:
        for pair in value.split(",") if value else ():
            user, sep, password = pair.partition(":")
            if not (user.strip() and sep and password):
                raise ValueError("FLOWER_BASIC_AUTH must be user:password (pairs separated "
                                 "by commas)")
        return value

    @field_validator("max_audio_seconds")
    @classmethod
    def _max_audio(cls, value: float) -> float:
        if not 0 < value <= MAX_AUDIO_SECONDS_CEILING:
            raise ValueError(
                f"MAX_AUDIO_SECONDS must be positive and at most {MAX_AUDIO_SECONDS_CEILING}"
            )
        return value

    @field_validator("lease_seconds", "reap_interval", "handoff_seconds")
    @classmethod
    def _seconds(cls, value: float, info: Any) -> float:
        if not 0 < value < 86400:
            raise ValueError(f"{info.field_name.upper()} must be between 0 and 86400 seconds")
        return value

    @field_validator("allow_private_urls", mode="before")
    @classmethod
    def _allow_list(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return parse_allow_list(value)
            except ValueError as exc:
                raise ValueError(f"ALLOW_PRIVATE_URLS: {exc}") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        # frozen: the two derived fields are set once, here, before anyone sees them
        if not self.internal_base_url:
            object.__setattr__(self, "internal_base_url", self.public_base_url)
        storage = self._storage()
        if storage is not None:
            object.__setattr__(self, "storage", storage)
        return self

    def _storage(self) -> LocalStorage | S3Storage | None:
        """The store the storage variables name, or None when none is set."""
        s3 = [name for name in _S3_VARS if getattr(self, name.lower())]
        r2 = [name for name in _R2_VARS if getattr(self, name.lower())]
        local = self.storage_dir
        chosen = [label for label, used in (("STORAGE_DIR", local), ("S3_*", s3), ("R2_*", r2))
                  if used]  # fmt: skip
        if len(chosen) > 1:
            raise ValueError(
                f"storage is configured twice ({' and '.join(chosen)}): set only one of "
                "STORAGE_DIR, the S3_* variables or the R2_* variables"
            )
        client = {
            "connect_timeout": self.s3_connect_timeout,
            "read_timeout": self.s3_read_timeout,
            "max_attempts": self.s3_max_attempts,
        }
        if r2:
            missing = [name for name in _R2_VARS if not getattr(self, name.lower())]
            if missing:
                raise ValueError(f"R2 storage needs {', '.join(missing)} as well")
            return S3Storage(
                bucket=self.r2_bucket_name or "",
                endpoint_url=R2_ENDPOINT.format(account=self.r2_account_id),
                region="auto",
                access_key_id=self.r2_access_key_id,
                secret_access_key=self.r2_secret_access_key,
                **client,
            )
        if s3:
            if not self.s3_bucket:
                raise ValueError("S3_BUCKET is required when S3_ENDPOINT_URL is set")
            access, secret = self.aws_access_key_id, self.aws_secret_access_key
            if bool(access) != bool(secret):
                missing_key = "AWS_SECRET_ACCESS_KEY" if access else "AWS_ACCESS_KEY_ID"
                raise ValueError(f"{missing_key} is required with the other AWS_* key")
            return S3Storage(
                bucket=self.s3_bucket,
                endpoint_url=self.s3_endpoint_url,
                region=self.aws_region,
                access_key_id=access,
                secret_access_key=secret,
                **client,
            )
        if local:
            return LocalStorage(Path(local).resolve())
        return None

    def limits_of(self, tenant: str) -> TenantLimits:
        """The tenant's submission limits: its own (TENANT_LIMITS), or the defaults."""
        return self.tenant_limits.get(tenant) or TenantLimits(self.submissions_per_minute,
                                                              self.max_queued_jobs)

    def require_api_keys(self) -> None:
        """The API refuses to start without at least one client key."""
        if not self.api_keys:
            raise SettingsError(
                "API_KEYS is required: a comma-separated list of tenant:key, e.g. acme:sk_live_..."
            )


@contextmanager
def _reading(env: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(env)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


#: Fields read from a variable of another name.
_VARIABLES = {"visibility_timeout": "BROKER_VISIBILITY_TIMEOUT"}


def _explain(error: ValidationError) -> str:
    """pydantic's errors as sentences that name the variable, never its value."""
    sentences = []
    for item in error.errors(include_input=False, include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        where = str(item["loc"][0]) if item["loc"] else ""
        variable = _VARIABLES.get(where, where.upper())
        if variable and variable not in message:
            message = f"{variable}: {message}"
        sentences.append(message)
    return "; ".join(sentences)


def _parse_api_keys(raw: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        tenant, sep, key = item.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise ValueError("API_KEYS entries must look like tenant:key, separated by commas")
        if len(key) < 8:
            raise ValueError(f"API_KEYS: the key of tenant {tenant!r} is shorter than 8 chars")
        if key in keys and keys[key] != tenant:
            raise ValueError("API_KEYS: one key is given to two tenants")
        keys[key] = tenant
    return keys


def _parse_tenant_limits(raw: str) -> dict[str, TenantLimits]:
    limits: dict[str, TenantLimits] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        parts = [part.strip() for part in item.split(":")]
        if len(parts) != 3 or not parts[0] or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(
                "TENANT_LIMITS entries must look like tenant:perMinute:maxQueued (whole "
                "numbers, 0 for no limit), separated by commas"
            )
        if parts[0] in limits:
            raise ValueError(f"TENANT_LIMITS: tenant {parts[0]!r} is given twice")
        limits[parts[0]] = TenantLimits(int(parts[1]), int(parts[2]))
    return limits
