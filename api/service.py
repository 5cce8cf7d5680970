"""What the API does, behind thin handlers: accept uploads and jobs, apply reports,
shape job records for clients.

One `Service` per app, kept in ``app.extensions["soundreel"]``.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import redis
from celery import Celery
from flask import current_app
from werkzeug.utils import secure_filename

from api import metrics
from api.errors import BadRequest, Conflict, PayloadTooLarge, UnsupportedMediaType
from api.filetypes import PEEK_BYTES, ROLE_FORMATS, ROLE_USE, mismatch
from api.schemas import (
    DeliveryOutcome,
    JobRequest,
    ProgressReport,
    ReleaseRequest,
    StartRequest,
    WorkerReport,
)
from api.speed import SpeedStore, work_scale
from config import logs
from config.settings import Settings
from jobs.constants import (
    COMPLETE,
    DEFAULT_TIMEOUTS,
    FAILED,
    FIELD_ROLES,
    OTHER_URL_TTL,
    QUEUED,
    REAPER_LOCK_REDIS_KEY,
    RESULT_KEY_FIELDS,
    ROLE_NOUNS,
    RUNNING,
    UPLOAD_EXTENSIONS,
    UPLOAD_ROLES,
    VIDEO_URL_TTL,
    WORKER_SEEN_REDIS_KEY,
    default_output_key,
    expected_result_keys,
    extension_of,
    upload_id_of,
    upload_key,
    upload_role,
)
from jobs.deliveries import (
    CLAIM_SECONDS,
    Delivery,
    DeliveryStore,
    StaleClaim,
    after_attempt,
    redelivered,
)
from jobs.errors import JobNotFound
from jobs.idempotency import IdempotencyStore
from jobs.store import Event, Job, JobStore, Report, epoch_of, iso_at, timings
from security.secrets import share_token
from security.urlguard import ForbiddenUrl, check_url
from storage.errors import StorageUnavailable
from storage.objects import ObjectStore
from tasks.broker import task_ids_in_broker
from tasks.constants import (
    DELIVER_WEBHOOK_TASK,
    PREVIEW_QUEUE,
    QUEUE_BY_KIND,
    RENDER_QUEUE,
    RENDER_TASK,
    REPORT_FAILURE_TASK,
    REPORT_RESULT_TASK,
    TIME_LIMITS,
)

log = logging.getLogger(__name__)

#: Fields of a job view that are links (fresh on every poll): not in client webhooks.
LINK_FIELDS = frozenset({"downloadUrl", "downloadUrlExpiresAt", "thumbnailUrl", "peaksUrl",
                         "shareUrl"})
#: Records read at most for one page of GET /v1/jobs.
LIST_SCAN = 1000
#: One reaper at a time (beat ticks can overlap under load); held at most this long.
REAPER_LOCK_SECONDS = 60
#: How often one API process refreshes the mark that a worker called (see seen_worker).
WORKER_SEEN_EVERY = 10.0

#: Result files besides the main output, and the link field each gets in a job view.
EXTRA_LINKS = {"thumbnailKey": "thumbnailUrl", "peaksKey": "peaksUrl"}



class PeekedStream:
    """A stream whose first bytes were read to look at them, and that gives them
    again, then the rest: the store reads the whole file, nothing is seeked."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        head = b""
        while len(head) < size and (chunk := stream.read(size - len(head))):
            head += chunk
        self.head = head
        #: ``head`` is the whole file (the stream ended within it).
        self.whole = len(head) < size
        self._pending = head

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            return self._stream.read(size)
        if size is None or size < 0:
            data, self._pending = self._pending + self._stream.read(), b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


class CountingReader:
    """Counts the bytes a stream gives while the store reads it, and stops the
    upload with 413 the moment it passes ``limit`` (the store then discards it)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        if self.count > self._limit:
            raise PayloadTooLarge(
                f"The upload is larger than the limit of {self._limit} bytes (MAX_UPLOAD_BYTES)."
            )
        return data


def service() -> Service:
    """The current app's `Service`."""
    return current_app.extensions["soundreel"]


class Service:
    def __init__(
        self, settings: Settings, jobs: JobStore, objects: ObjectStore, celery: Celery
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.idempotency = IdempotencyStore(jobs.redis)
        self.deliveries = DeliveryStore(jobs.redis)
        self.speed = SpeedStore(jobs.redis)
        self.objects = objects
        self.celery = celery
        self._worker_marked = -math.inf  # when this process last wrote WORKER_SEEN_REDIS_KEY

    # --- uploads -----------------------------------------------------------

    def upload(self, tenant: str, filename: str, stream: BinaryIO, content_type: str | None):
        """Store a file for later jobs, once its name and its first bytes agree on
        what it is (audio, an image or captions); a refused file leaves nothing."""
        name = secure_filename(filename or "")[-120:].lstrip(".")
        extension = extension_of(name)
        if extension not in UPLOAD_EXTENSIONS:
            raise UnsupportedMediaType(
                f"Upload audio, an image or captions ({', '.join(sorted(UPLOAD_EXTENSIONS))}); "
                f"got {filename!r}."
            )
        peeked = PeekedStream(stream, PEEK_BYTES)
        if not peeked.head:
            raise BadRequest(
                f"{filename!r} is empty (0 bytes): choose the file again, and if it came from "
                "a download or an export, let that finish first.",
                code="empty_file", field="file",
            )
        problem = mismatch(UPLOAD_ROLES[extension], extension, peeked.head, whole=peeked.whole)
        if problem:
            raise UnsupportedMediaType(problem, code="content_mismatch", field="file")
        upload_id = uuid.uuid4().hex
        key = upload_key(upload_id, name)
        # The owner first: if Redis is down, nothing is stored.
        self.jobs.record_upload(upload_id, tenant)
        reader = CountingReader(peeked, self.settings.max_upload_bytes)
        try:
            self.objects.put(key, reader, content_type or "application/octet-stream")
        except BaseException:
            self.jobs.forget_upload(upload_id)
            raise
        log.info("tenant %s uploaded %s (%d bytes)", tenant, key, reader.count)
        return {"audioKey": key, "bytes": reader.count}

    # --- jobs --------------------------------------------------------------

    def submit(self, tenant: str, request: JobRequest) -> Job:
        for field, key in request.upload_keys().items():
            upload_id = upload_id_of(key)
            if upload_id is None or self.jobs.upload_owner(upload_id) != tenant:
                raise BadRequest(
                    f"{field}: {key!r} is not one of your uploads; "
                    "upload the file with POST /v1/uploads first.",
                    code="unknown_audio" if field == "audioKey" else "unknown_upload",
                    field=field,
                )
            wanted, actual = FIELD_ROLES[field], upload_role(key)
            if actual != wanted:
                use = f" Name it as {ROLE_USE[actual]} instead." if actual else ""
                raise BadRequest(
                    f"{field}: {key!r} is {ROLE_NOUNS.get(actual, 'no file a job reads')}, and "
                    f"{field} takes {ROLE_FORMATS[wanted]}: upload that and name its key here."
                    f"{use}",
                    code="wrong_upload_kind",
                    field=field,
                )
        if request.output_key and not self.jobs.claim_output(request.output_key, tenant):
            raise Conflict(
                f"outputKey: {request.output_key!r} belongs to another account; choose another.",
                code="output_key_taken",
                field="outputKey",
            )
        for field, url in (("audioUrl", request.audio_url), ("webhookUrl", request.webhook_url)):
            if url is not None:
                self._check_url(field, url)
        job_id = uuid.uuid4().hex
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
        self.jobs.create(job)
        try:
            self._enqueue(job)
        except BaseException:
            # No record without a task: undo, then let the handler answer 503.
            self.jobs.delete(job)
            raise
        metrics.JOBS_SUBMITTED.labels(kind=job.kind).inc()
        log.info("tenant %s submitted %s job %s", tenant, job.kind, job.job_id,
                 extra={"job_id": job.job_id})
        return job

    def _check_url(self, field: str, url: str) -> None:
        """The SSRF guard at submission: refuse what is already known to be forbidden
        (the worker checks again, at the address it connects to)."""
        try:
            check_url(url, self.settings.allow_private_urls)
        except ForbiddenUrl as exc:
            raise BadRequest(f"{field}: {exc.message}", code="forbidden_url", field=field) from None

    def _enqueue(self, job: Job) -> None:
        """Send the job's task (task id = job id, so Flower shows it under that id)."""
        self.celery.send_task(
            RENDER_TASK,
            kwargs={
                "job_id": job.job_id,
                "kind": job.kind,
                "audio_key": job.audio_key,
                "audio_url": job.audio_url,
                "output_key": job.output_key,
                "options": job.options,
            },
            task_id=job.job_id,
            queue=QUEUE_BY_KIND[job.kind],
            # what worker logs, events and Flower show of the arguments: a client's
            # audioUrl may be signed, so only the job's id and kind
            argsrepr="()",
            kwargsrepr=repr({"job_id": job.job_id, "kind": job.kind}),
            soft_time_limit=TIME_LIMITS[job.kind][0],
            time_limit=TIME_LIMITS[job.kind][1],
            link=self.celery.signature(REPORT_RESULT_TASK),
            link_error=self.celery.signature(REPORT_FAILURE_TASK),
            # the request id follows the job into the worker's logs and reports
            headers={"request_id": logs.request_id.get()},
        )

    def job_for(self, tenant: str, job_id: str) -> Job:
        """The job, if it is this tenant's; another tenant's job is 'not found'."""
        job = self.jobs.get(job_id)
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
            rows = self.jobs.tenant_jobs(tenant, after, min(LIST_SCAN - scanned, 100))
            if not rows:
                return found, None
            for (job_id, score), job in zip(rows, self.jobs.get_many([r[0] for r in rows]),
                                            strict=True):
                scanned += 1
                after = (score, job_id)
                if job is None or job.tenant != tenant:
                    continue
                if (status is None or job.status == status) and (kind is None or job.kind == kind):
                    found.append(job)
                    if len(found) == limit:
                        break
        more = bool(self.jobs.tenant_jobs(tenant, after, 1))
        return found, after if more else None

    def cancel(self, tenant: str, job_id: str) -> Job:
        """Cancel a queued or running job; 409 once it has ended.

        The record turns ``canceled`` at once. A worker holding the job learns it
        from the answer to its next progress report (within a few seconds) and
        stops; a job still queued is dropped when a worker picks it up. The
        revoke broadcast only saves that worker the pick-up.
        """
        self.job_for(tenant, job_id)
        job, applied = self._report(job_id, Event.canceled())
        if not applied:
            raise Conflict(
                f"The job is already {job.status}; only queued or running jobs can be canceled.",
                code="job_finished",
            )
        try:
            self.celery.control.revoke(job_id)
        except Exception as exc:  # noqa: BLE001 - the worker check is what counts
            log.warning("revoke of job %s not broadcast: %s", job_id, type(exc).__name__)
        log.info("tenant %s canceled job %s", tenant, job_id)
        return job

    def view(self, job: Job) -> dict[str, Any]:
        """The job as clients poll it: its document, where it stands in the queue,
        when it should end, and fresh links."""
        url, expires_at = self._download_link(job)
        position = self.jobs.queue_position(job) if job.status == QUEUED else None
        token = share_token(self.settings, job.job_id)
        return {
            **self.document(job),
            "queuePosition": position,
            "eta": self._eta(job, position),
            "shareUrl": f"{self.settings.public_base_url}/jobs/{job.job_id}?token={token}",
            "downloadUrl": url,
            "downloadUrlExpiresAt": expires_at,
            **self._extra_links(job),
        }

    def _eta(self, job: Job, position: int | None) -> float | None:
        """Seconds until the job should end, or None until that is known.

        Running: from the attempt's own progress rate once it has moved the bar 10 %;
        before that, from the audio's length and the speed this deployment has
        measured for the kind (scaled by the job's size and frame rate).
        Queued: the jobs ahead times the measured time of one (as if one worker).
        """
        if job.terminal:
            return None
        speed = self.speed.get(job.kind, work_scale(job))
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

    @staticmethod
    def document(job: Job) -> dict[str, Any]:
        """The job without links: what the client webhook carries."""
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
        }

    def _trusted_result(self, job_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """The worker's result, with object keys only where this job may write.

        A leaked worker token must not turn into presigned links to any object:
        each ``*Key`` field must be the key the API chose for this job.
        """
        job = self.jobs.get(job_id)
        allowed = expected_result_keys(job.kind, job.job_id, job.output_key)
        return {
            name: value
            for name, value in result.items()
            if not name.endswith("Key") or allowed.get(name) == value
        }

    def _download_link(self, job: Job) -> tuple[str | None, str | None]:
        """A fresh presigned URL for videoKey > previewKey > preparedKey."""
        result = job.result or {}
        for name in RESULT_KEY_FIELDS:
            if result.get(name):
                ttl = VIDEO_URL_TTL if name == "videoKey" else OTHER_URL_TTL
                expires = datetime.now(UTC) + timedelta(seconds=ttl)
                url = self.objects.presigned_url(result[name], ttl)
                return url, expires.isoformat(timespec="seconds").replace("+00:00", "Z")
        return None, None

    def _extra_links(self, job: Job) -> dict[str, str]:
        """``thumbnailUrl`` (renders, previews) and ``peaksUrl`` (prepares), 1 hour,
        when the result has those files."""
        result = job.result or {}
        return {
            link: self.objects.presigned_url(result[name], OTHER_URL_TTL)
            for name, link in EXTRA_LINKS.items()
            if result.get(name)
        }

    # --- worker reports ----------------------------------------------------

    def seen_worker(self) -> None:
        """A worker called (``/readyz`` wants one within a minute). Workers call a few
        times a second while rendering (heartbeats), so each API process writes the
        shared mark at most every WORKER_SEEN_EVERY seconds (a Redis that lost the
        mark gets it back within that long)."""
        now = time.monotonic()
        if now - self._worker_marked < WORKER_SEEN_EVERY:
            return
        try:
            self.jobs.redis.set(WORKER_SEEN_REDIS_KEY, time.time())
        except redis.RedisError:
            return  # the call itself will say whether Redis is there
        self._worker_marked = now

    def start(self, job_id: str, request: StartRequest) -> Report:
        """A delivery of the job is about to start work. It gets a new attempt and
        the lease, unless a live attempt holds the job (``current`` is then false:
        the delivery does nothing) or MAX_ATTEMPTS is spent (worker_lost)."""
        report = self._apply(job_id, Event.started(
            self.settings.max_attempts, attempt_id=request.attempt or "", worker=request.worker
        ))
        if report.applied and report.job.status == FAILED:
            log.warning("job %s given up after %d attempts", job_id, report.job.attempts - 1)
        elif not report.current and report.job.status == RUNNING:
            log.info("job %s: a second delivery while attempt %d is alive does nothing",
                     job_id, report.job.attempts)
        return report

    def progress(self, job_id: str, report: ProgressReport) -> Report:
        """Progress, and the heartbeat that renews the attempt's lease."""
        return self._apply(job_id, Event.progressed(
            report.progress, report.stage, report.attempt, report.audio_seconds
        ))

    def release(self, job_id: str, request: ReleaseRequest) -> Report:
        """A worker's parent says the child running the job died (the lease goes, so
        the redelivery starts at once) or hit the hard time limit (the job fails)."""
        error = request.error.model_dump() if request.error else None
        report = self._apply(job_id, Event.released(request.worker, error))
        if report.current:
            log.warning("job %s: worker %s lost the attempt (%s)", job_id, request.worker,
                        error["code"] if error else "child died")
        return report

    def finish(self, report: WorkerReport) -> tuple[Job, bool]:
        logs.job_id.set(report.job_id)
        if report.status == "complete":
            result = self._trusted_result(report.job_id, report.result or {})
            event = Event.completed(result, report.attempt)
        else:
            assert report.error is not None
            event = Event.failed(report.error.code, report.error.message, report.attempt)
        job, applied = self._report(report.job_id, event)
        if applied and job.status == COMPLETE:
            keys = {name: job.result[name] for name in RESULT_KEY_FIELDS if name in job.result}
            log.info("job %s complete: %s", job.job_id, keys)
        elif applied:
            log.warning("job %s failed: %s", job.job_id, job.error)
        else:
            log.info("job %s: %s report ignored (status %s)", job.job_id, report.status,
                     job.status)
        return job, applied

    # --- the reaper (Celery beat calls it every REAP_INTERVAL) --------------

    def reap(self) -> dict[str, int]:
        """End or hand on every job that nobody will finish otherwise.

        - past its deadline: ``timed_out`` (a worker still on it stops at its next
          heartbeat);
        - ``running`` with a dead lease (its worker died with no redelivery, e.g. a
          whole worker SIGKILLed: its message waits for the broker's visibility
          timeout): queued again and re-sent, or ``failed``/``worker_lost`` once
          MAX_ATTEMPTS deliveries have started it;
        - ``queued`` for a while with no message in the broker (a send that failed
          half-way): sent again.

        Every step is one `JobStore` transaction, so two reapers cannot requeue a job
        twice, and a duplicate message is harmless (the lease refuses it); a lock
        still keeps overlapping ticks from doing the same work.
        """
        counts = {"timedOut": 0, "requeued": 0, "workerLost": 0, "resent": 0}
        token = uuid.uuid4().hex
        if not self.jobs.redis.set(REAPER_LOCK_REDIS_KEY, token, nx=True, ex=REAPER_LOCK_SECONDS):
            return counts  # another tick is at it
        try:
            now = time.time()
            in_broker: set[str] | None = None
            for job_id, deadline in list(self.jobs.active()):
                try:
                    outcome = self._reap_one(job_id, deadline, now)
                    if outcome == "check_broker":
                        if in_broker is None:
                            in_broker = task_ids_in_broker(self.jobs.redis,
                                                           [RENDER_QUEUE, PREVIEW_QUEUE])
                        outcome = self._resend_if_lost(job_id, in_broker)
                except JobNotFound:  # the record expired meanwhile: nothing to reap
                    self.jobs.forget_active(job_id)
                    continue
                except StorageUnavailable:
                    raise
                except Exception:  # noqa: BLE001 - one bad record must not stop the rest
                    log.exception("reaper: job %s skipped", job_id)
                    continue
                if outcome in counts:
                    counts[outcome] += 1
        finally:
            if self.jobs.redis.get(REAPER_LOCK_REDIS_KEY) == token.encode():
                self.jobs.redis.delete(REAPER_LOCK_REDIS_KEY)
        counts["webhooksSent"] = self._dispatch()
        return counts

    def _reap_one(self, job_id: str, deadline: float, now: float) -> str | None:
        try:
            job = self.jobs.get(job_id)
        except JobNotFound:
            self.jobs.forget_active(job_id)
            return None
        if job.terminal:
            self.jobs.forget_active(job_id)
            return None
        if deadline <= now:
            job, applied = self._report(job_id, Event.timed_out())
            if applied:
                log.warning("job %s timed out (%s)", job_id, job.deadline_at)
                return "timedOut"
            return None
        if job.status == RUNNING and not self.jobs.lease_alive(job_id):
            job, applied = self._report(job_id, Event.requeued(self.settings.max_attempts))
            if applied and job.status == QUEUED:
                self._enqueue(job)
                log.warning("job %s: its worker was lost; queued again after %d attempt(s)",
                            job_id, job.attempts)
                return "requeued"
            if applied:
                log.warning("job %s: worker lost %d times, given up", job_id, job.attempts)
                return "workerLost"
            return None
        if job.status == QUEUED and now - epoch_of(job.updated_at) > self.settings.lease_seconds:
            return "check_broker"
        return None

    def _resend_if_lost(self, job_id: str, in_broker: set[str]) -> str | None:
        if job_id in in_broker:
            return None
        job = self.jobs.get(job_id)  # again: it may have started meanwhile
        if job.status != QUEUED:
            return None
        self._enqueue(job)
        log.warning("job %s was queued with no message in the broker; sent again", job_id)
        return "resent"

    # --- client webhooks -----------------------------------------------------

    def _apply(self, job_id: str, event: Event) -> Report:
        """Apply a report; a job it ends that has a webhook gets it sent at once."""
        report = self.jobs.apply_report(job_id, event)
        if report.applied and report.job.terminal and report.job.webhook_url:
            self._dispatch(job_id)
        if report.applied and report.job.terminal:
            self._count_end(report.job)
        return report

    def _count_end(self, job: Job) -> None:
        code = (job.error or {}).get("code", "")
        metrics.JOBS_FINISHED.labels(kind=job.kind, status=job.status, code=code).inc()
        if job.status != COMPLETE or not job.started_at:
            return
        self.speed.record(job)
        seconds = epoch_of(job.updated_at) - epoch_of(job.started_at)
        metrics.RENDER_SECONDS.labels(kind=job.kind).observe(seconds)
        duration = (job.result or {}).get("duration")
        if duration and seconds > 0:
            metrics.REALTIME_FACTOR.labels(kind=job.kind).observe(duration / seconds)

    def _report(self, job_id: str, event: Event) -> tuple[Job, bool]:
        report = self._apply(job_id, event)
        return report.job, report.applied

    def _dispatch(self, job_id: str | None = None) -> int:
        """Hand due deliveries (or ``job_id``'s) to workers. One that cannot be sent
        now stays claimed for CLAIM_SECONDS, then is due again: never lost."""
        try:
            claimed = self.deliveries.claim_due(time.time(), job_id=job_id)
            for due, token in claimed:
                # a task not started within its claim is dropped: the next tick makes
                # a new one, so copies never pile up behind a busy callbacks queue
                self.celery.send_task(DELIVER_WEBHOOK_TASK, args=[due, token],
                                      expires=CLAIM_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the job's own answer matters more
            log.warning("webhook dispatch deferred: %s", type(exc).__name__)
            return 0
        return len(claimed)

    def delivery_for_worker(self, job_id: str, claim: str | None) -> dict[str, Any] | None:
        """What a worker needs for one attempt, or None for a task that is not the
        delivery's newest (or whose records are gone). The body is the job as polled
        minus its links, made from the ended job's record, which no longer changes:
        the same bytes on every try."""
        delivery = self.deliveries.get(job_id)
        try:
            job = self.jobs.get(job_id)
        except JobNotFound:
            job = None
        if delivery is None or job is None:
            self.deliveries.forget(job_id)
            return None
        if claim is not None and self.deliveries.claim_of(job_id) != claim:
            return None
        view = self.view(job)
        body = json.dumps({k: v for k, v in view.items() if k not in LINK_FIELDS},
                          separators=(",", ":"))
        return {"jobId": job_id, "tenant": delivery.tenant, "webhookId": delivery.webhook_id,
                "url": delivery.url, "state": delivery.state, "body": body}

    def record_delivery(self, job_id: str, outcome: DeliveryOutcome) -> Delivery:
        def change(delivery: Delivery) -> Delivery:
            return after_attempt(
                delivery, outcome.status_code, outcome.error, outcome.duration_ms, time.time(),
                self.settings.webhook_retry_scale, final_error=outcome.forbidden,
            )

        try:
            delivery = self.deliveries.update(job_id, change, outcome.claim)
        except StaleClaim:
            raise Conflict("A newer attempt of this webhook was handed out; this outcome "
                           "is not recorded.", code="stale_claim") from None
        outcome_name = "retry" if delivery.state == "pending" else delivery.state
        metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome_name).inc()
        log.info("webhook %s of job %s: %s (%s)", delivery.webhook_id, job_id,
                 outcome.status_code or outcome.error, delivery.state)
        return delivery

    def deliveries_of(self, tenant: str, job_id: str) -> dict[str, Any]:
        job = self.job_for(tenant, job_id)
        delivery = self.deliveries.get(job_id)
        if delivery is None:
            state = "none" if not job.webhook_url else "waiting"  # waiting: not ended yet
            return {"jobId": job_id, "webhookUrl": job.webhook_url, "webhookId": None,
                    "state": state, "nextAttemptAt": None, "attempts": []}
        return {
            "jobId": job_id,
            "webhookUrl": delivery.url,
            "webhookId": delivery.webhook_id,
            "state": delivery.state,
            "nextAttemptAt": iso_at(delivery.next_attempt_at)
            if delivery.state == "pending" and delivery.next_attempt_at else None,
            "attempts": [
                {"at": iso_at(a["at"]), "statusCode": a["statusCode"], "error": a["error"],
                 "durationMs": a["durationMs"]}
                for a in delivery.attempts
            ],
        }

    def redeliver(self, tenant: str, job_id: str) -> dict[str, Any]:
        job = self.job_for(tenant, job_id)
        if not job.webhook_url:
            raise Conflict("The job has no webhookUrl.", code="no_webhook")
        if self.deliveries.get(job_id) is None:
            raise Conflict("The job has not ended yet; its webhook is sent when it does.",
                           code="job_not_finished")
        self.deliveries.update(job_id, lambda d: redelivered(d, time.time()))
        self._dispatch(job_id)
        return self.deliveries_of(tenant, job_id)
