"""A small Python client for the soundreel API, on ``requests``.

    client = Client("https://soundreel.example.com", api_key)
    key = client.upload("talk.mp3")
    job = client.submit(kind="render", audioKey=key, options={"style": "bars"})
    job = client.wait(job["jobId"], on_update=lambda j: print(j["stage"], j["progress"]))
    client.download(job, "talk.mp4")

Used by the ``soundreel`` CLI (`client.cli`) and by the tests. Bodies and jobs are the
API's JSON as plain dicts (camelCase keys), so this module needs no update when the
API adds a field.

Errors::

    ClientError             anything this client raises on purpose
    ├── ApiError            the API answered 4xx/5xx: status, code, message, field
    ├── Unreachable         no answer at all (connection refused, reset, timeout)
    └── WaitTimeout         wait() gave up before the job ended

Requests that are safe to repeat (GET, DELETE, and POSTs carrying an
``Idempotency-Key``) are retried a few times on a connection error or a 503,
honouring ``Retry-After``; the API key is sent per request, never stored on the
session, so a shared session never leaks it to a presigned download link.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from jobs.constants import COMPLETE, RESULT_KEY_FIELDS, TERMINAL_STATES

#: Seconds to wait for the API to answer one request (uploads: to send and answer).
TIMEOUT = 30.0
UPLOAD_TIMEOUT = 600.0
#: Tries of a request that is safe to repeat, the first included.
ATTEMPTS = 4
#: How long wait() keeps polling through an API that does not answer (a restart).
WAIT_OUTAGE_SECONDS = 60.0


class ClientError(Exception):
    """Base of every error this client raises on purpose."""


class ApiError(ClientError):
    """The API answered with an error body ``{"error": {"code", "message", "field"?}}``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        """The error of a response, even one that is not the API's JSON (a proxy's page)."""
        try:
            error = response.json()["error"]
            return cls(response.status_code, str(error["code"]), str(error["message"]),
                       error.get("field"))
        except (ValueError, KeyError, TypeError):
            text = " ".join(response.text.split())[:200] or response.reason or ""
            return cls(response.status_code, f"http_{response.status_code}", text)


class Unreachable(ClientError):
    """The API (or the download link) did not answer: wrong URL, down, or too slow."""


class WaitTimeout(ClientError):
    """`Client.wait` gave up; the job goes on. ``job`` is the last state seen."""

    def __init__(self, job: Mapping[str, Any], seconds: float):
        super().__init__(f"job {job.get('jobId')} still {job.get('status')} after {seconds:g} s")
        self.job = job


class Client:
    """One tenant's view of a soundreel deployment.

    ``base_url`` is the API's root (``http://127.0.0.1:8000``), ``api_key`` the
    tenant's key. Pass ``session`` to share connection pools or set proxies.
    """

    def __init__(
        self, base_url: str, api_key: str, session: requests.Session | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.session = session or requests.Session()

    def __repr__(self) -> str:  # never show the key
        return f"Client({self.base_url!r})"

    # --- uploads and jobs ----------------------------------------------------------

    def upload(self, path: str | os.PathLike[str], *, idempotency_key: str | None = None) -> str:
        """Upload a file (audio, image or captions); return its key (``audioKey``).

        Retried on a connection error with a generated ``Idempotency-Key``, so a
        retry whose first try did arrive does not store the file twice.
        """
        path = Path(path)
        key = idempotency_key or str(uuid.uuid4())

        def send() -> requests.Response:
            with open(path, "rb") as file:
                return self._send("POST", "/v1/uploads", files={"file": (path.name, file)},
                                  headers={"Idempotency-Key": key}, timeout=UPLOAD_TIMEOUT)

        return self._call(send, retry=True)["audioKey"]

    def submit(self, *, idempotency_key: str | None = None, **body: Any) -> dict[str, Any]:
        """``POST /v1/jobs`` with ``body`` (``kind``, ``audioKey``, ``options``…); the job.

        With ``idempotency_key`` (a UUID is ideal) the submission is retried on
        transient errors, and a repeat within 24 h returns the same job.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call(
            lambda: self._send("POST", "/v1/jobs", json=body, headers=headers),
            retry=idempotency_key is not None,
        )

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as it stands now, with a fresh ``downloadUrl`` once complete."""
        return self._call(lambda: self._send("GET", f"/v1/jobs/{job_id}"), retry=True)

    def jobs(
        self, status: str | None = None, kind: str | None = None, limit: int | None = None,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the tenant's jobs, newest first: ``{"jobs": [...], "nextCursor"}``.

        Pass ``nextCursor`` back as ``cursor`` for the next page; it is null on the last.
        """
        params = {name: value for name, value in
                  (("status", status), ("kind", kind), ("limit", limit), ("cursor", cursor))
                  if value is not None}
        return self._call(lambda: self._send("GET", "/v1/jobs", params=params), retry=True)

    def iter_jobs(
        self, status: str | None = None, kind: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every job of the tenant, newest first, following the cursor page by page."""
        cursor = None
        while True:
            page = self.jobs(status=status, kind=kind, limit=page_size, cursor=cursor)
            yield from page.get("jobs", [])
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; the job, now ``canceled``.

        An ended job raises `ApiError` with code ``job_finished`` (409).
        """
        return self._call(lambda: self._send("DELETE", f"/v1/jobs/{job_id}"), retry=True)

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the job ends (complete, failed, canceled, timed_out); return it.

        ``on_update`` is called with every state polled, the final one included.
        An API that stops answering for a while (a restart) is polled through for up
        to a minute. ``timeout`` (seconds) raises `WaitTimeout`; the job goes on.
        """
        started = time.monotonic()
        outage_since: float | None = None
        job: dict[str, Any] = {"jobId": job_id, "status": "unknown"}
        while True:
            try:
                job = self.job(job_id)
                outage_since = None
            except (Unreachable, ApiError) as exc:
                if isinstance(exc, ApiError) and exc.status not in (502, 503, 504):
                    raise
                outage_since = outage_since or time.monotonic()
                if time.monotonic() - outage_since > WAIT_OUTAGE_SECONDS:
                    raise
            else:
                if on_update is not None:
                    on_update(job)
                if job.get("status") in TERMINAL_STATES:
                    return job
            if timeout is not None and time.monotonic() - started > timeout:
                raise WaitTimeout(job, timeout)
            time.sleep(interval)

    def download(
        self,
        job: Mapping[str, Any] | str,
        dest: str | os.PathLike[str],
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Path:
        """Save a complete job's output (video, preview or prepared audio) to ``dest``.

        ``job`` is a job dict or id; its link is fetched again when missing (links
        expire). ``dest`` may be a directory (the output's own name is used). The
        file appears whole or not at all. ``on_progress(bytes_so_far, total_or_None)``
        follows the transfer. Returns the path written.
        """
        if isinstance(job, str) or not job.get("downloadUrl"):
            job = self.job(job if isinstance(job, str) else str(job.get("jobId")))
        url = job.get("downloadUrl")
        if job.get("status") != COMPLETE or not url:
            raise ClientError(f"job {job.get('jobId')} is {job.get('status')}: nothing to download")
        dest = Path(dest)
        if dest.is_dir():
            result = job.get("result") or {}
            key = next((result[f] for f in RESULT_KEY_FIELDS if result.get(f)), "output.mp4")
            dest = dest / f"{job['jobId']}-{Path(key).name}"
        try:
            # No API key: the link carries its own signature.
            response = self.session.get(url, stream=True, timeout=TIMEOUT,
                                        headers={"Authorization": None})
        except requests.RequestException as exc:
            raise Unreachable(f"could not download the output: {type(exc).__name__}") from None
        with response:
            if response.status_code != 200:
                raise ApiError.from_response(response)
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            try:
                done = 0
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_content(1 << 16):
                        out.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
                if total is not None and done != total:
                    raise Unreachable(f"the download stopped after {done} of {total} bytes")
                os.replace(partial, dest)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        return dest

    # --- HTTP ----------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self._api_key}"}
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)

    def _call(self, send: Callable[[], requests.Response], *, retry: bool) -> dict[str, Any]:
        """Send, retrying transient failures when ``retry``; the JSON body or an error."""
        attempts = ATTEMPTS if retry else 1
        for attempt in range(1, attempts + 1):
            try:
                response = send()
            except requests.RequestException as exc:
                if attempt == attempts:
                    raise Unreachable(
                        f"no answer from {self.base_url}: {_reason(exc)}"
                    ) from None
                time.sleep(min(0.25 * 2 ** attempt, 5.0))
                continue
            if response.status_code == 503 and attempt < attempts:
                time.sleep(_retry_after(response, default=min(0.25 * 2 ** attempt, 5.0)))
                continue
            if response.status_code >= 400:
                raise ApiError.from_response(response)
            try:
                return response.json()
            except ValueError:
                raise ApiError(response.status_code, "invalid_response",
                               "the API answered with something that is not JSON") from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _retry_after(response: requests.Response, default: float) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.0), 30.0)
    except ValueError:
        return default


def _reason(exc: requests.RequestException) -> str:
    """A short reason without the request (whose headers hold the key) or a URL's query."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    return type(exc).__name__
