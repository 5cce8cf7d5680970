"""Worker-facing endpoints: progress and the completion webhook (worker token only).

A report that the state machine ignores (late, duplicate, after the end) is
still a 200: the worker did nothing wrong, and retrying would not help.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from api.auth import require_worker
from api.errors import BadRequest, NotFound
from api.parsing import json_body, parse
from api.schemas import (
    CacheQuery,
    DeliveryOutcome,
    ProgressReport,
    ReleaseRequest,
    SegmentEnd,
    SegmentProgress,
    SplitPlan,
    StartRequest,
    WorkerReport,
)
from api.service import service
from jobs.constants import RUNNING

bp = Blueprint("internal", __name__, url_prefix="/internal")


@bp.before_request
def authenticate() -> None:
    require_worker(current_app.extensions["soundreel"].settings.worker_token)
    service().reports.seen_worker()


@bp.post("/jobs/<job_id>/start")
def start_attempt(job_id: str) -> Any:
    """The worker asks before working: go on only if ``current`` is true, with the
    ``attempt`` id it is given (its reports carry it)."""
    body = json_body() if request.content_length else {}
    report = service().reports.start(job_id, parse(StartRequest, body))
    job = report.job
    return {"jobId": job.job_id, "status": job.status, "attempts": job.attempts,
            "attempt": job.attempt_id if report.current else None,
            "current": report.current, "applied": report.applied}


@bp.patch("/jobs/<job_id>")
def report_progress(job_id: str) -> Any:
    """Progress and heartbeat. ``current: false`` tells the worker to stop: the job
    ended (canceled, timed out) or another attempt has taken it over."""
    report = service().reports.progress(job_id, parse(ProgressReport, json_body()))
    job = report.job
    return {"jobId": job.job_id, "status": job.status, "progress": job.progress,
            "current": report.current and job.status == RUNNING, "applied": report.applied}


@bp.post("/jobs/<job_id>/release")
def release_attempt(job_id: str) -> Any:
    report = service().reports.release(job_id, parse(ReleaseRequest, json_body()))
    return {"jobId": job_id, "status": report.job.status, "current": report.current,
            "applied": report.applied}


@bp.post("/jobs/<job_id>/cache")
def cached_result(job_id: str) -> Any:
    """After fetching an ``audioUrl``: ``hit`` with the job's ``result`` (its outputs are
    already copies of an earlier job's: report it as the end), or render."""
    query = parse(CacheQuery, json_body())
    result = service().cache.check(job_id, query.attempt, query.audio_sha256)
    return {"jobId": job_id, "hit": result is not None, "result": result}


@bp.post("/jobs/<job_id>/handoff")
def hand_off(job_id: str) -> Any:
    """The render task's outcome, as it returns: held until the result callback
    reports it (the lease is held for HANDOFF_SECONDS meanwhile)."""
    report = parse(WorkerReport, json_body())
    if report.job_id != job_id:
        raise BadRequest("jobId: must be the job of the URL.", field="jobId")
    applied = service().reports.hand_off(report)
    return {"jobId": job_id, "status": applied.job.status, "applied": applied.applied,
            "current": applied.current}


@bp.post("/jobs/<job_id>/split")
def split(job_id: str) -> Any:
    """The job's attempt analysed the clip: its windows are recorded and sent."""
    report = service().splits.split(job_id, parse(SplitPlan, json_body()))
    return {"jobId": job_id, "status": report.job.status, "applied": report.applied}


@bp.post("/jobs/<job_id>/segments/<int:index>/start")
def start_segment(job_id: str, index: int) -> Any:
    """As ``start``, for one window of a split job."""
    report = service().splits.start(job_id, index, parse(StartRequest, json_body()))
    window = (report.job.split or {"windows": []})["windows"]
    attempt = window[index]["attempt"] if report.current and index < len(window) else None
    return {"jobId": job_id, "status": report.job.status, "attempt": attempt,
            "current": report.current, "applied": report.applied}


@bp.patch("/jobs/<job_id>/segments/<int:index>")
def report_segment(job_id: str, index: int) -> Any:
    report = service().splits.progress(job_id, index, parse(SegmentProgress, json_body()))
    return {"jobId": job_id, "status": report.job.status, "progress": report.job.progress,
            "current": report.current and report.job.status == RUNNING,
            "applied": report.applied}


@bp.post("/jobs/<job_id>/segments/<int:index>/end")
def end_segment(job_id: str, index: int) -> Any:
    report = service().splits.end(job_id, index, parse(SegmentEnd, json_body()))
    return {"jobId": job_id, "status": report.job.status, "applied": report.applied}


@bp.post("/jobs/<job_id>/segments/<int:index>/release")
def release_segment(job_id: str, index: int) -> Any:
    report = service().splits.release(job_id, index, parse(ReleaseRequest, json_body()))
    return {"jobId": job_id, "status": report.job.status, "current": report.current,
            "applied": report.applied}


@bp.post("/webhooks/worker")
def worker_webhook() -> Any:
    job, applied = service().reports.finish(parse(WorkerReport, json_body()))
    return {"jobId": job.job_id, "status": job.status, "applied": applied}


@bp.get("/deliveries/<job_id>")
def delivery(job_id: str) -> Any:
    claim = request.args.get("claim")
    found = service().deliveries.for_worker(job_id, claim[:64] if claim else None)
    if found is None:
        raise NotFound(f"No webhook delivery for job {job_id}.")
    return found


@bp.post("/deliveries/<job_id>/attempts")
def delivery_attempt(job_id: str) -> Any:
    delivery = service().deliveries.record(job_id, parse(DeliveryOutcome, json_body()))
    return {"jobId": job_id, "state": delivery.state}


@bp.post("/reap")
def reap() -> Any:
    """Celery beat's reaper task calls this every REAP_INTERVAL seconds."""
    return service().reaper.run()
