"""The client API, ``/v1``: uploads and jobs. Every route needs a tenant's API key."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from flask import Blueprint, current_app, g, request

from api import answers
from api.answers import JOB_ID_PATTERN
from api.auth import require_tenant
from api.errors import BadRequest, NotFound
from api.idempotency import idempotent
from api.parsing import json_body, parse
from api.schemas import JobListQuery, JobRequest
from api.service import service
from config import logs
from security.secrets import webhook_secret

bp = Blueprint("v1", __name__, url_prefix="/v1")

_JOB_ID = re.compile(JOB_ID_PATTERN)


@bp.before_request
def authenticate() -> None:
    g.tenant = require_tenant(current_app.extensions["soundreel.keys"])
    logs.tenant.set(g.tenant)


@bp.post("/uploads")
def upload() -> Any:
    file = request.files.get("file")
    if file is None:
        raise BadRequest("Send the audio as multipart/form-data in the field 'file'.",
                         field="file")

    def fingerprint() -> str:
        digest = hashlib.sha256(f"upload\0{file.filename}\0".encode())
        while chunk := file.stream.read(1 << 20):
            digest.update(chunk)
        file.stream.seek(0)
        return digest.hexdigest()

    def produce() -> tuple[dict[str, Any], int, dict[str, str]]:
        stored = service().uploads.upload(g.tenant, file.filename or "", file.stream)
        return stored, 201, {}

    return idempotent(service().idempotency, fingerprint, produce)


@bp.post("/jobs")
def submit_job() -> Any:
    body = json_body()

    def fingerprint() -> str:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"job\0{canonical}".encode()).hexdigest()

    limits: dict[str, str] = {}

    def produce() -> tuple[dict[str, Any], int, dict[str, str]]:
        job, rate_limit = service().submissions.submit(g.tenant, parse(JobRequest, body))
        limits.update(rate_limit)
        return service().views.view(job).body(), 202, {"Location": f"/v1/jobs/{job.job_id}"}

    # the RateLimit fields say where the tenant stands now: never part of a replay
    answer, status, headers = idempotent(service().idempotency, fingerprint, produce)
    return answer, status, {**headers, **limits}


@bp.get("/jobs")
def list_jobs() -> Any:
    """The tenant's jobs, newest first; ``?status=&kind=&limit=&cursor=``."""
    query = parse(JobListQuery, request.args.to_dict())
    cursor = None
    if query.cursor:
        score, _, job_id = query.cursor.partition(":")
        cursor = (float(score), job_id)
    jobs, after = service().views.list_jobs(
        g.tenant, status=query.status, kind=query.kind, limit=query.limit, cursor=cursor,
    )
    return answers.JobList(
        jobs=[service().views.view(job) for job in jobs],
        next_cursor=f"{after[0]!r}:{after[1]}" if after is not None else None,
    ).body()


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Any:
    return service().views.view(service().views.job_for(g.tenant, _checked(job_id))).body()


@bp.delete("/jobs/<job_id>")
def cancel_job(job_id: str) -> Any:
    return service().views.view(service().submissions.cancel(g.tenant, _checked(job_id))).body()


@bp.get("/jobs/<job_id>/deliveries")
def job_deliveries(job_id: str) -> Any:
    """The job's webhook: its id, state, next try and every attempt so far."""
    return service().deliveries.of(g.tenant, _checked(job_id)).body()


@bp.post("/jobs/<job_id>/deliveries/redeliver")
def redeliver(job_id: str) -> Any:
    """Send the ended job's webhook again (same webhook-id), with a fresh schedule."""
    return service().deliveries.redeliver(g.tenant, _checked(job_id)).body(), 202


@bp.get("/webhooks/secret")
def webhook_secret_of_tenant() -> Any:
    """The secret that signs this tenant's webhooks (Standard Webhooks, ``whsec_``)."""
    return answers.WebhookSecret(secret=webhook_secret(service().settings, g.tenant)).body()


def _checked(job_id: str) -> str:
    if not _JOB_ID.match(job_id):
        raise NotFound(f"No job {job_id}.")
    return job_id
