"""Fetching a job's input over a signed URL, bounded in size and time."""

from __future__ import annotations

from pathlib import Path

import requests

from tasks.errors import DownloadFailed

CHUNK = 1024 * 1024
#: (connect, read) seconds; read is per chunk, not for the whole body.
TIMEOUT = (10, 60)


def download(url: str, dest: Path, *, max_bytes: int) -> int:
    """Stream ``url`` into ``dest``; return the bytes written.

    The URL is signed: it is never logged or put into an error message.
    """
    written = 0
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT, allow_redirects=False) as response:
            if response.status_code != 200:
                raise DownloadFailed(
                    f"Could not download the input audio: the storage answered "
                    f"HTTP {response.status_code}. Upload the file again and resubmit."
                )
            with open(dest, "wb") as out:
                for chunk in response.iter_content(CHUNK):
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
