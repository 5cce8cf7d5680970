"""Worker-facing endpoints: progress and the completion webhook (worker token only).

A report that the state machine ignores (late, duplicate, after the end) is
still a 200: the worker did nothing wrong, and retrying would not help.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from api.auth import require_worker
from api.schemas import ProgressReport, WorkerReport, json_body, parse
from api.service import service

bp = Blueprint("internal", __name__, url_prefix="/internal")


@bp.before_request
def authenticate() -> None:
    require_worker(current_app.extensions["soundreel"].settings.worker_token)


@bp.post("/jobs/<job_id>/start")
def start_attempt(job_id: str) -> Any:
    """The worker asks before working: go on only if the answer is ``running``."""
    job, applied = service().start(job_id)
    return {"jobId": job.job_id, "status": job.status, "attempt": job.attempts,
            "applied": applied}


@bp.patch("/jobs/<job_id>")
def report_progress(job_id: str) -> Any:
    job, applied = service().progress(job_id, parse(ProgressReport, json_body()))
    return {"jobId": job.job_id, "status": job.status, "progress": job.progress,
            "applied": applied}


@bp.post("/webhooks/worker")
def worker_webhook() -> Any:
    job, applied = service().finish(parse(WorkerReport, json_body()))
    return {"jobId": job.job_id, "status": job.status, "applied": applied}
