"""Worker reports: a delivery starting (its attempt and lease), progress (the
heartbeat that renews the lease), a parent's release of a dead child, and the end.
Every report is one event applied by ``apply``, the one place the API changes a job
record (through ``JobStore.apply``), counting its end and sending its webhook."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import redis
from pydantic import ValidationError

from api import metrics
from api.cache import RenderCache
from api.deliveries import Deliveries
from api.errors import BadRequest
from api.fairshare import FairShare
from api.schemas import (
    RESULT_MODELS,
    ProgressReport,
    ReleaseRequest,
    StartRequest,
    WorkerReport,
)
from config import logs
from jobs.constants import (
    COMPLETE,
    FAILED,
    RESULT_KEY_FIELDS,
    RUNNING,
    WORKER_SEEN_REDIS_KEY,
    expected_result_keys,
)
from jobs.store import Event, Job, Report, epoch_of

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)

#: How often one API process refreshes the mark that a worker called (see seen_worker).
WORKER_SEEN_EVERY = 10.0


class Reports:
    def __init__(self, stores: Stores, deliveries: Deliveries, cache: RenderCache,
                 fair: FairShare) -> None:
        self.stores = stores
        self.deliveries = deliveries
        self.cache = cache
        self.fair = fair
        self._worker_marked = -math.inf  # when this process last wrote WORKER_SEEN_REDIS_KEY

    def apply(self, job_id: str, event: Event) -> Report:
        """Apply ``event``; a job it ends (or whose task hands off) frees its places in
        the queue for its tenant's next work (fair share); a job it ends is counted and
        its webhook sent at once; one that completes after missing the render cache
        fills it."""
        report = self.stores.jobs.apply(job_id, event)
        if report.applied and report.job.terminal and report.job.webhook_url:
            self.deliveries.dispatch(job_id)
        if report.applied and report.job.terminal:
            self._count_end(report.job)
            self.cache.remember(report.job)
        # A hand-off also frees the places: the job's work is over (its outputs stored, or
        # it failed for good) and it never runs again, so its tenant's next work goes now,
        # in the order the work ended, not a result callback's hop later (callbacks of two
        # jobs may land in either order).
        if report.applied and (report.job.terminal or event.kind == "hand_off"):
            try:
                self.fair.ended(report.job)
            except Exception:  # noqa: BLE001 - the end stands; the reaper frees the places
                log.exception("job %s: its places in the queue not freed yet", job_id)
        return report

    def seen_worker(self) -> None:
        """A worker called (``/readyz`` and the exporter show when). Workers call a few
        times a second while rendering (heartbeats), so each API process writes the
        shared mark at most every WORKER_SEEN_EVERY seconds (a Redis that lost the
        mark gets it back within that long)."""
        now = time.monotonic()
        if now - self._worker_marked < WORKER_SEEN_EVERY:
            return
        try:
            self.stores.jobs.redis.set(WORKER_SEEN_REDIS_KEY, time.time())
        except redis.RedisError:
            return  # the call itself will say whether Redis is there
        self._worker_marked = now

    def start(self, job_id: str, request: StartRequest) -> Report:
        """A delivery of the job is about to start work. It gets a new attempt and
        the lease, unless a live attempt holds the job (``current`` is then false:
        the delivery does nothing) or MAX_ATTEMPTS is spent (worker_lost)."""
        report = self.apply(job_id, Event.started(
            self.stores.settings.max_attempts, attempt_id=request.attempt or "",
            worker=request.worker, phase=request.phase,
        ))
        if report.applied and report.job.status == FAILED:
            log.warning("job %s given up after %d attempts", job_id, report.job.attempts - 1)
        elif not report.current and report.job.status == RUNNING:
            log.info("job %s: a second delivery while attempt %d is alive does nothing",
                     job_id, report.job.attempts)
        return report

    def progress(self, job_id: str, report: ProgressReport) -> Report:
        """Progress, and the heartbeat that renews the attempt's lease."""
        return self.apply(job_id, Event.progressed(
            report.progress, report.stage, report.attempt, report.audio_seconds,
            report.stages,
        ))

    def release(self, job_id: str, request: ReleaseRequest) -> Report:
        """A worker's parent says the child running the job died (the lease goes, so
        the redelivery starts at once) or hit the hard time limit (the job fails)."""
        error = request.error.model_dump() if request.error else None
        report = self.apply(job_id, Event.released(request.worker, error))
        if report.current:
            log.warning("job %s: worker %s lost the attempt (%s)", job_id, request.worker,
                        error["code"] if error else "child died")
        return report

    def hand_off(self, report: WorkerReport) -> Report:
        """The render task is returning (or has failed): its outcome is kept with the
        record and the lease is held for HANDOFF_SECONDS, until the result callback
        reports it (``finish``), or the reaper ends the job from it."""
        logs.job_id.set(report.job_id)
        last = {"progress": report.progress, "stage": report.stage, "stages": report.stages}
        if report.status == COMPLETE:
            result = self._checked_result(report.job_id, report.result or {})
            event = Event.handed_off(report.attempt, result=result, **last)
        else:
            assert report.error is not None
            event = Event.handed_off(report.attempt, error=report.error.model_dump(), **last)
        applied = self.apply(report.job_id, event)
        log.info("job %s: %s handed off to the result callback (%s)", report.job_id,
                 report.status, "held" if applied.applied else "ignored")
        return applied

    def finish(self, report: WorkerReport) -> tuple[Job, bool]:
        logs.job_id.set(report.job_id)
        if report.status == COMPLETE:
            result = self._checked_result(report.job_id, report.result or {})
            # the stage times, as the hand-off carries them: the callback may land first
            event = Event.completed(result, report.attempt, report.stages)
        else:
            assert report.error is not None
            event = Event.failed(report.error.code, report.error.message, report.attempt)
        applied_report = self.apply(report.job_id, event)
        job, applied = applied_report.job, applied_report.applied
        if applied and job.status == COMPLETE:
            keys = {name: job.result[name] for name in RESULT_KEY_FIELDS if name in job.result}
            log.info("job %s complete: %s", job.job_id, keys)
        elif applied:
            log.warning("job %s failed: %s", job.job_id, job.error)
        else:
            log.info("job %s: %s report ignored (status %s)", job.job_id, report.status,
                     job.status)
        return job, applied

    def _checked_result(self, job_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """The worker's result, if it is one this job can have; `BadRequest` otherwise,
        and nothing is stored.

        Each field is typed per kind (a duration is a number, never a string), no field
        is unknown, and each ``*Key`` is the key the API chose for this job: a leaked
        worker token must not turn into presigned links to any object, nor into a
        record that every later read of the job trips over.
        """
        job = self.stores.jobs.get(job_id)
        try:
            checked = RESULT_MODELS[job.kind].model_validate(result)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(["result", *(str(part) for part in first["loc"])])
            message = ("is not a field of a result" if first["type"] == "extra_forbidden"
                       else first["msg"].removeprefix("Value error, "))
            raise BadRequest(f"{field}: {message}", field=field) from None
        dumped = checked.model_dump(by_alias=True, exclude_none=True)
        clean = {name: dumped[name] for name in result if name in dumped}  # in its order
        allowed = expected_result_keys(job.kind, job.job_id, job.output_key)
        for name, value in clean.items():
            if name.endswith("Key") and allowed.get(name) != value:
                raise BadRequest(f"result.{name}: is not where this job stores it",
                                 field=f"result.{name}")
        return clean

    def _count_end(self, job: Job) -> None:
        code = (job.error or {}).get("code", "")
        metrics.JOBS_FINISHED.labels(kind=job.kind, status=job.status, code=code).inc()
        if job.status != COMPLETE or not job.started_at or (job.result or {}).get("cached"):
            return  # nothing rendered: no sample of how fast this deployment renders
        self.stores.speed.record(job)
        seconds = epoch_of(job.updated_at) - epoch_of(job.started_at)
        metrics.RENDER_SECONDS.labels(kind=job.kind).observe(seconds)
        duration = (job.result or {}).get("duration")
        if duration and seconds > 0:
            metrics.REALTIME_FACTOR.labels(kind=job.kind).observe(duration / seconds)
