"""Fetching a job's input, bounded in size and time: over our own storage's signed
URL (trusted), or from a client's ``audioUrl`` (hostile: through the SSRF guard)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from security.urlguard import ForbiddenUrl, UrlFetchError, guarded_request
from tasks.errors import DownloadFailed, JobFailed

CHUNK = 1024 * 1024
#: (connect, read) seconds; read is per chunk, not for the whole body.
TIMEOUT = (10, 60)
#: The whole fetch of a client's audioUrl, redirects included.
CLIENT_URL_DEADLINE = 10 * 60.0


_local = threading.local()


def _storage_session() -> requests.Session:
    """This thread's session for our own storage's links: its connections are kept
    from job to job (a new one per download was a fifth of a short job's fetch). It
    keeps no cookies, and a kept connection the server has meanwhile closed is
    tried once more."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        again = HTTPAdapter(max_retries=Retry(total=1, connect=1, read=1, redirect=0, status=0))
        session.mount("http://", again)
        session.mount("https://", again)
        _local.session = session
    return session


def download(url: str, dest: Path, *, max_bytes: int,
             should_stop: Callable[[], bool] = lambda: False) -> int:
    """Stream ``url`` into ``dest``; return the bytes written. ``should_stop`` is asked
    between chunks (a fetch ahead for a job that does not run: DownloadFailed).

    The URL is signed: it is never logged or put into an error message.
    """
    written = 0
    try:
        with _storage_session().get(url, stream=True, timeout=TIMEOUT,
                                    allow_redirects=False) as response:
            if response.status_code != 200:
                raise DownloadFailed(
                    f"Could not download the input audio: the storage answered "
                    f"HTTP {response.status_code}. Upload the file again and resubmit."
                )
            with open(dest, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    if should_stop():
                        raise DownloadFailed("The download was stopped.")
                    written += len(chunk)
                    if written > max_bytes:
                        raise DownloadFailed(
                            f"The input audio is larger than the limit of {max_bytes} bytes."
                        )
                    out.write(chunk)
    except requests.RequestException as exc:
        raise DownloadFailed(
            f"Could not download the input audio ({type(exc).__name__}); try again later."
        ) from None
    if written == 0:
        raise DownloadFailed("The input audio is empty (0 bytes). Upload the file again.")
    return written


def fetch_client_url(
    url: str, dest: Path, *, max_bytes: int, allow: frozenset[str],
    deadline: float = CLIENT_URL_DEADLINE,
) -> int:
    """Stream a client's ``audioUrl`` into ``dest`` through the SSRF guard: resolved
    once, connected to the checked address, every redirect checked, a total deadline
    and a byte cap. A forbidden address fails the job with ``forbidden_url``."""
    written = 0
    with open(dest, "wb") as out:
        def sink(chunk: bytes) -> None:
            nonlocal written
            written += len(chunk)
            out.write(chunk)

        try:
            response = guarded_request("GET", url, allow=allow, sink=sink, max_bytes=max_bytes,
                                       deadline=deadline)
        except ForbiddenUrl as exc:
            raise JobFailed(f"audioUrl: {exc.message}", "forbidden_url") from None
        except UrlFetchError as exc:
            raise DownloadFailed(f"Could not fetch audioUrl: {exc.message}") from None
    if response.status != 200:
        raise DownloadFailed(f"Could not fetch audioUrl: the server answered HTTP "
                             f"{response.status}.")
    if written == 0:
        raise DownloadFailed("audioUrl gave an empty body (0 bytes).")
    return written
