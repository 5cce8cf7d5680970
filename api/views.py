"""The job as clients see it: its document, where it stands in the queue, when it
should end, and fresh links (GET /v1/jobs, the status page, client webhooks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from api import answers
from api.fairshare import FairShare
from api.speed import work_scale
from jobs.constants import OTHER_URL_TTL, QUEUED, RESULT_KEY_FIELDS, RUNNING, VIDEO_URL_TTL
from jobs.errors import JobNotFound
from jobs.store import Job, epoch_of, segments, timings
from security.secrets import share_token

if TYPE_CHECKING:
    from api.service import Stores

#: Records read at most for one page of GET /v1/jobs.
LIST_SCAN = 1000
#: Result files besides the main output, and the link field each gets in a job view.
EXTRA_LINKS = {"thumbnailKey": "thumbnailUrl", "peaksKey": "peaksUrl"}


class JobViews:
    def __init__(self, stores: Stores, fair: FairShare) -> None:
        self.stores = stores
        self.fair = fair

    def job_for(self, tenant: str, job_id: str) -> Job:
        """The job, if it is this tenant's; another tenant's job is 'not found'."""
        job = self.stores.jobs.get(job_id)
        if job.tenant != tenant:
            raise JobNotFound(job_id)
        return job

    def list_jobs(
        self, tenant: str, *, status: str | None, kind: str | None, limit: int,
        cursor: tuple[float, str] | None,
    ) -> tuple[list[Job], tuple[float, str] | None]:
        """A page of the tenant's jobs, newest first, and the cursor of the next page
        (the ``(score, id)`` of the last job read).

        Filters are applied to the records read; at most LIST_SCAN records are read
        per page, so a rare filter gives short (even empty) pages with a cursor."""
        found: list[Job] = []
        after, scanned = cursor, 0
        while len(found) < limit and scanned < LIST_SCAN:
            rows = self.stores.jobs.tenant_jobs(tenant, after, min(LIST_SCAN - scanned, 100))
            if not rows:
                return found, None
            for (job_id, score), job in zip(rows, self.stores.jobs.get_many([r[0] for r in rows]),
                                            strict=True):
                scanned += 1
                after = (score, job_id)
                if job is None or job.tenant != tenant:
                    continue
                if (status is None or job.status == status) and (kind is None or job.kind == kind):
                    found.append(job)
                    if len(found) == limit:
                        break
        more = bool(self.stores.jobs.tenant_jobs(tenant, after, 1))
        return found, after if more else None

    def document(self, job: Job) -> answers.JobDocument:
        """The job without links: the body of the webhook sent when it ends."""
        return answers.JobDocument.model_validate(self._standing(job))

    def view(self, job: Job) -> answers.Job:
        """The job as clients poll it: its document, where it stands in the queue,
        when it should end, and fresh links."""
        url, expires_at = self._download_link(job)
        token = share_token(self.stores.settings, job.job_id)
        return answers.Job.model_validate({
            **self._standing(job),
            "shareUrl": f"{self.stores.settings.public_base_url}/jobs/{job.job_id}?token={token}",
            "downloadUrl": url,
            "downloadUrlExpiresAt": expires_at,
            **self._extra_links(job),
        })

    def _standing(self, job: Job) -> dict[str, Any]:
        """The job's fields, where it stands in the queue and when it should end."""
        position = self.fair.position(job) if job.status == QUEUED else None
        return {**_document(job), "queuePosition": position, "eta": self.eta(job, position)}

    def eta(self, job: Job, position: int | None) -> float | None:
        """Seconds until the job should end, or None until that is known.

        Running: from the attempt's own progress rate once it has moved the bar 10 %;
        before that, from the audio's length and the speed this deployment has
        measured for the kind (scaled by the job's size and frame rate).
        Queued: the jobs ahead times the measured time of one (as if one worker).
        """
        if job.terminal:
            return None
        speed = self.stores.speed.get(job.kind, work_scale(job))
        if job.status == RUNNING and job.started_at:
            elapsed = max(time.time() - epoch_of(job.started_at), 0.0)
            gained = job.progress - job.start_progress  # by this attempt
            if gained >= 0.1:
                return round(elapsed * (1 - job.progress) / gained, 1)
            if job.audio_seconds and speed.per_audio_second:
                return round(max(job.audio_seconds * speed.per_audio_second - elapsed, 1.0), 1)
            return None
        if position is not None and speed.per_job:
            return round((position + 1) * speed.per_job, 1)
        return None

    def _download_link(self, job: Job) -> tuple[str | None, str | None]:
        """A fresh presigned URL for videoKey > previewKey > preparedKey."""
        result = job.result or {}
        for name in RESULT_KEY_FIELDS:
            if result.get(name):
                ttl = VIDEO_URL_TTL if name == "videoKey" else OTHER_URL_TTL
                expires = datetime.now(UTC) + timedelta(seconds=ttl)
                url = self.stores.objects.presigned_url(result[name], ttl)
                return url, expires.isoformat(timespec="seconds").replace("+00:00", "Z")
        return None, None

    def _extra_links(self, job: Job) -> dict[str, str]:
        """``thumbnailUrl`` (renders, previews) and ``peaksUrl`` (prepares), 1 hour,
        when the result has those files."""
        result = job.result or {}
        return {
            link: self.stores.objects.presigned_url(result[name], OTHER_URL_TTL)
            for name, link in EXTRA_LINKS.items()
            if result.get(name)
        }


def _document(job: Job) -> dict[str, Any]:
    """The job record's own fields, by their API names."""
    return {
        "jobId": job.job_id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "audioKey": job.audio_key or None,
        "audioUrl": job.audio_url,
        "options": job.options,
        "result": job.result,
        "error": job.error,
        "attempts": job.attempts,
        "deadlineAt": job.deadline_at or None,
        "webhookUrl": job.webhook_url,
        "timings": timings(job),
        "segments": segments(job),
    }
