"""POST /v1/jobs and DELETE /v1/jobs/<id>: a job accepted (its uploads the tenant's
and of the right kind, its URLs past the SSRF guard, the tenant within its limits),
recorded and put in its tenant's line for its queue (fair share), or completed at
once from the render cache; or canceled."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from api import metrics
from api.cache import RenderCache
from api.errors import BadRequest, Conflict
from api.fairshare import FairShare
from api.filetypes import ROLE_FORMATS, ROLE_USE
from api.limits import Limits
from api.reports import Reports
from api.schemas import JobRequest
from api.views import JobViews
from jobs.constants import (
    DEFAULT_TIMEOUTS,
    FIELD_ROLES,
    ROLE_NOUNS,
    default_output_key,
    upload_fits,
    upload_id_of,
    upload_role,
)
from jobs.store import Event, Job, iso_at
from security.urlguard import ForbiddenUrl, check_url

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)


class Submissions:
    def __init__(self, stores: Stores, views: JobViews, reports: Reports,
                 cache: RenderCache, fair: FairShare, limits: Limits) -> None:
        self.stores = stores
        self.views = views
        self.reports = reports
        self.cache = cache
        self.fair = fair
        self.limits = limits

    def submit(self, tenant: str, request: JobRequest) -> tuple[Job, dict[str, str]]:
        """The job accepted, and the RateLimit headers of the answer (429 past a limit)."""
        for field, key in request.upload_keys().items():
            upload_id = upload_id_of(key)
            if upload_id is None or self.stores.jobs.upload_owner(upload_id) != tenant:
                raise BadRequest(
                    f"{field}: {key!r} is not one of your uploads; "
                    "upload the file with POST /v1/uploads first.",
                    code="unknown_audio" if field == "audioKey" else "unknown_upload",
                    field=field,
                )
            wanted, actual = FIELD_ROLES[field], upload_role(key)
            if not upload_fits(wanted, key):
                use = f" Name it as {ROLE_USE[actual]} instead." if actual else ""
                raise BadRequest(
                    f"{field}: {key!r} is {ROLE_NOUNS.get(actual, 'no file a job reads')}, and "
                    f"{field} takes {ROLE_FORMATS[wanted]}: upload that and name its key here."
                    f"{use}",
                    code="wrong_upload_kind",
                    field=field,
                )
        for field, url in (("audioUrl", request.audio_url), ("webhookUrl", request.webhook_url)):
            if url is not None:
                self._check_url(field, url)
        job_id = uuid.uuid4().hex
        headers = self.limits.take(tenant, job_id)  # 429 past the tenant's limits
        try:
            if request.output_key:
                # last of the checks: a request refused for anything else claims nothing
                self._claim_output(tenant, request.output_key)
            return self._accept(tenant, request, job_id), headers
        except BaseException:
            self.limits.give_back(tenant, job_id)
            raise

    def _accept(self, tenant: str, request: JobRequest, job_id: str) -> Job:
        timeout = request.timeout_seconds or DEFAULT_TIMEOUTS[request.kind]
        job = Job(
            job_id=job_id,
            tenant=tenant,
            kind=request.kind,
            audio_key=request.audio_key or "",
            audio_url=request.audio_url,
            output_key=request.output_key or default_output_key(request.kind, job_id),
            # as the client writes them (camelCase), every default filled in
            options=request.options.model_dump(by_alias=True),
            deadline_at=iso_at(time.time() + timeout),
            webhook_url=request.webhook_url,
        )
        # An upload's hash is known now; an audioUrl's only once a worker has fetched it.
        digest = cached = None
        if request.audio_key:
            digest = self.cache.digest_for(job.kind, request.options, audio_key=request.audio_key)
        if digest:
            cached = self.cache.reuse(tenant, digest, job_id, job.kind, job.output_key)
        self.stores.jobs.create(job)
        if cached is not None:
            # complete at once, through the state machine: the webhook goes as for any end
            job = self.reports.apply(job_id, Event.reused(cached)).job
            metrics.JOBS_SUBMITTED.labels(kind=job.kind).inc()
            log.info("tenant %s submitted %s job %s: complete from the render cache", tenant,
                     job.kind, job_id, extra={"job_id": job_id})
            return job
        if digest:
            self.cache.expect(job_id, job.kind, job.output_key, digest)
        try:
            self.fair.admit(job)
        except BaseException:
            # No record without a task: undo, then let the handler answer 503.
            self.fair.withdraw(job)
            self.stores.jobs.delete(job)
            raise
        metrics.JOBS_SUBMITTED.labels(kind=job.kind).inc()
        log.info("tenant %s submitted %s job %s", tenant, job.kind, job.job_id,
                 extra={"job_id": job.job_id})
        return job

    def _check_url(self, field: str, url: str) -> None:
        """The SSRF guard at submission: refuse what is already known to be forbidden
        (the worker checks again, at the address it connects to)."""
        try:
            check_url(url, self.stores.settings.allow_private_urls)
        except ForbiddenUrl as exc:
            raise BadRequest(f"{field}: {exc.message}", code="forbidden_url", field=field) from None

    def _claim_output(self, tenant: str, key: str) -> None:
        """Make ``outputKey`` the tenant's for good, or refuse it (409): another tenant's,
        or a file and a folder of one name (``a.mp4`` and ``a.mp4/b.mp4``), which no
        store can hold both of."""
        found = self.stores.jobs.claim_output(key, tenant)
        if found == "taken":
            raise Conflict(f"outputKey: {key!r} belongs to another account; choose another.",
                           code="output_key_taken", field="outputKey")
        if found == "folder":
            raise Conflict(f"outputKey: {key!r} is a folder of an outputKey already in use; "
                           "choose another.", code="output_key_conflict", field="outputKey")
        if found == "inside":
            raise Conflict(f"outputKey: a folder of {key!r} is an outputKey already in use "
                           "(a file); choose another.", code="output_key_conflict",
                           field="outputKey")

    def cancel(self, tenant: str, job_id: str) -> Job:
        """Cancel a queued or running job; 409 once it has ended.

        The record turns ``canceled`` at once. A worker holding the job learns it
        from the answer to its next progress report (within a few seconds) and
        stops; a job still queued is dropped when a worker picks it up. The
        revoke broadcast only saves that worker the pick-up.
        """
        self.views.job_for(tenant, job_id)
        report = self.reports.apply(job_id, Event.canceled())
        job = report.job
        if not report.applied:
            raise Conflict(
                f"The job is already {job.status}; only queued or running jobs can be canceled.",
                code="job_finished",
            )
        try:
            self.stores.celery.control.revoke(job_id)
        except Exception as exc:  # noqa: BLE001 - the worker check is what counts
            log.warning("revoke of job %s not broadcast: %s", job_id, type(exc).__name__)
        log.info("tenant %s canceled job %s", tenant, job_id)
        return job
