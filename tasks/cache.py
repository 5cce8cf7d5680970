"""The worker's side of the render cache: an ``audioUrl`` job's audio is known only
once fetched, so the worker hashes it and asks the API before rendering. On a hit
the API has already copied the earlier outputs to this job's keys, and the result it
answers is the job's; on a miss (or any trouble) the job renders as usual.

(An upload's hash is taken as it is uploaded, and the API answers those jobs at
submission, without a worker.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from jobs.constants import CACHED_KINDS
from tasks.reports import ApiClient

CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cached_result(api: ApiClient, job_id: str, attempt: str, kind: str,
                  options: dict[str, Any], audio: Path) -> dict[str, Any] | None:
    """The job's result from the render cache, or None: render it."""
    if kind not in CACHED_KINDS or options.get("cache") is False:
        return None
    return api.cached_result(job_id, attempt, sha256_of(audio))
