"""The reaper, which Celery beat calls every REAP_INTERVAL: it ends or hands on every
job that nobody will finish otherwise, gives every tenant its turn in fair share,
and sends due client webhooks."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from api.deliveries import Deliveries
from api.dispatch import Dispatch
from api.fairshare import FairShare
from api.reports import Reports
from jobs.constants import (
    QUEUE_BY_KIND,
    QUEUED,
    REAPER_LOCK_REDIS_KEY,
    RUNNING,
    WORK_REDIS_KEY,
    work_keys,
)
from jobs.errors import JobNotFound
from jobs.store import Event, Job, epoch_of, joinable, split_pending
from storage.errors import StorageUnavailable
from tasks.broker import task_ids_in_broker
from tasks.constants import PREVIEW_QUEUE, RENDER_QUEUE, join_task_id, segment_task_id

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)

#: One reaper at a time (beat ticks can overlap under load); held at most this long.
REAPER_LOCK_SECONDS = 60


class Reaper:
    def __init__(self, stores: Stores, reports: Reports, fair: FairShare, dispatch: Dispatch,
                 deliveries: Deliveries) -> None:
        self.stores = stores
        self.reports = reports
        self.fair = fair
        self.dispatch = dispatch
        self.deliveries = deliveries

    def run(self) -> dict[str, int]:
        """End or hand on every job that nobody will finish otherwise.

        - past its deadline: ``timed_out`` (a worker still on it stops at its next
          heartbeat);
        - ``running`` with a dead lease (its worker died with no redelivery, e.g. a
          whole worker SIGKILLed: its message waits for the broker's visibility
          timeout): queued again and re-sent, or ``failed``/``worker_lost`` once
          MAX_ATTEMPTS deliveries have started it;
        - ``queued`` for a while with no message in the broker (a send that failed
          half-way, or a process that died between fair share's move and the send):
          sent again, if fair share had released it (one still waiting its turn is
          not lost; one in no line at all is put back in its tenant's);
        - split: a window whose lease died is sent again alone (or fails the job once
          MAX_ATTEMPTS deliveries have started it), a window or join with no message
          in the broker is sent again, and the join whose worker died is sent again;
          ``work/{jobId}/`` of an ended job is deleted;
        - fair share: places held by work that has ended are freed, and every tenant
          under its limit sends its next units, each in turn.

        Every step is one `JobStore` transaction, so two reapers cannot requeue a job
        twice, and a duplicate message is harmless (the lease refuses it); a lock
        still keeps overlapping ticks from doing the same work.
        """
        counts = {"timedOut": 0, "requeued": 0, "workerLost": 0, "resent": 0, "fromHandoff": 0,
                  "segmentsRequeued": 0, "workSwept": 0, "released": 0}
        token = uuid.uuid4().hex
        redis = self.stores.jobs.redis
        if not redis.set(REAPER_LOCK_REDIS_KEY, token, nx=True, ex=REAPER_LOCK_SECONDS):
            return counts  # another tick is at it
        try:
            now = time.time()
            in_broker: set[str] | None = None
            for job_id, deadline in list(self.stores.jobs.active()):
                try:
                    outcome = self._reap_one(job_id, deadline, now)
                    if outcome == "check_broker":
                        if in_broker is None:
                            in_broker = task_ids_in_broker(self.stores.jobs.redis,
                                                           [RENDER_QUEUE, PREVIEW_QUEUE])
                        outcome = self._resend_if_lost(job_id, in_broker, now)
                except JobNotFound:  # the record expired meanwhile: nothing to reap
                    self.stores.jobs.forget_active(job_id)
                    continue
                except StorageUnavailable:
                    raise
                except Exception:  # noqa: BLE001 - one bad record must not stop the rest
                    log.exception("reaper: job %s skipped", job_id)
                    continue
                if outcome in counts:
                    counts[outcome] += 1
            counts["workSwept"] = self._sweep_work(now)
            counts["released"] = self.fair.turn()
        finally:
            if self.stores.jobs.redis.get(REAPER_LOCK_REDIS_KEY) == token.encode():
                self.stores.jobs.redis.delete(REAPER_LOCK_REDIS_KEY)
        counts["webhooksSent"] = self.deliveries.dispatch()
        return counts

    def _reap_one(self, job_id: str, deadline: float, now: float) -> str | None:
        try:
            job = self.stores.jobs.get(job_id)
        except JobNotFound:
            self.stores.jobs.forget_active(job_id)
            return None
        if job.terminal:
            self.stores.jobs.forget_active(job_id)
            return None
        if deadline <= now:
            report = self.reports.apply(job_id, Event.timed_out())
            job, applied = report.job, report.applied
            if applied:
                log.warning("job %s timed out (%s)", job_id, job.deadline_at)
                return "timedOut"
            return None
        waited = now - epoch_of(job.updated_at)
        if job.status == RUNNING and split_pending(job):
            return self._reap_windows(job, waited)
        if job.status == RUNNING and joinable(job) and job.attempt_id is None:
            # the join's message is sent, not started: check it is still in the broker
            return "check_broker" if waited > self.stores.settings.lease_seconds else None
        if job.status == RUNNING and not self.stores.jobs.lease_alive(job_id):
            report = self.reports.apply(job_id, Event.requeued(self.stores.settings.max_attempts))
            job, applied = report.job, report.applied
            if applied and job.status == RUNNING and joinable(job):
                self.dispatch.join(job)
                log.warning("job %s: the worker joining it was lost; join sent again", job_id)
                return "requeued"
            if applied and job.status == QUEUED:
                self.dispatch.job(job)  # it keeps its place in flight
                log.warning("job %s: its worker was lost; queued again after %d attempt(s)",
                            job_id, job.attempts)
                return "requeued"
            if applied and job.handoff is not None:
                log.warning("job %s: its result callback is late; ended %s from the hand-off",
                            job_id, job.status)
                return "fromHandoff"
            if applied:
                log.warning("job %s: worker lost %d times, given up", job_id, job.attempts)
                return "workerLost"
            return None
        if job.status == QUEUED and waited > self.stores.settings.lease_seconds:
            return "check_broker"
        return None

    def _reap_windows(self, job: Job, waited: float) -> str | None:
        """A split job's windows: each whose lease died is sent again alone."""
        assert job.split is not None
        outcome = None
        for index, window in enumerate(job.split["windows"]):
            if window["done"] or window["attempt"] is None:
                continue
            if self.stores.jobs.lease_alive(job.job_id, index):
                continue
            report = self.reports.apply(job.job_id, Event.segment_requeued(
                index, self.stores.settings.max_attempts))
            if report.applied and report.job.status == RUNNING:
                self.dispatch.segment(report.job, index)  # it keeps its place in flight
                log.warning("job %s: window %d lost its worker; sent again", job.job_id, index)
                outcome = "segmentsRequeued"
            elif report.applied:
                log.warning("job %s: window %d lost its worker too often; given up",
                            job.job_id, index)
                return "workerLost"
        if outcome is None and waited > self.stores.settings.lease_seconds and any(
            not w["done"] and w["attempt"] is None for w in job.split["windows"]
        ):
            return "check_broker"
        return outcome

    def _resend_if_lost(self, job_id: str, in_broker: set[str], now: float) -> str | None:
        """Send again the job's task, or a split job's windows or join, whose message
        is in no queue and not delivered either.

        Under fair share a unit may rightly have no message: it is waiting its turn
        in its tenant's line. One that fair share released (in flight) a lease ago
        and that has no message was lost between the move and the send, or by the
        broker: sent again. One in no line and not in flight (its admission was
        lost) goes back in its tenant's line."""
        job = self.stores.jobs.get(job_id)  # again: it may have started meanwhile
        if job.status == QUEUED:
            units = [job_id]
        elif job.status == RUNNING and job.split is not None and joinable(job):
            units = [join_task_id(job_id)] if job.attempt_id is None else []
        elif job.status == RUNNING and job.split is not None:
            units = [segment_task_id(job_id, index)
                     for index, window in enumerate(job.split["windows"])
                     if not window["done"] and window["attempt"] is None]
        else:
            return None
        queue = QUEUE_BY_KIND[job.kind]
        missing = [unit for unit in units if unit not in in_broker]
        standing = self.fair.store.standing(queue, job.tenant, missing)
        lost = [unit for unit in missing if standing[unit].pending is None and (
            not standing[unit].inflight
            or now - (standing[unit].released_at or now) > self.stores.settings.lease_seconds)]
        if not lost:
            return None
        resent = [unit for unit in lost if standing[unit].inflight and self.fair.send(unit)]
        readmitted = [unit for unit in lost if not standing[unit].inflight]
        if readmitted:
            self.fair.readmit(queue, job.tenant, readmitted)
        if job.status == QUEUED:
            if resent:
                log.warning("job %s was queued with no message in the broker; sent again",
                            job_id)
            if readmitted:
                log.warning("job %s was queued in no tenant's line; put back in line", job_id)
            return "resent"
        if joinable(job):
            if resent:
                log.warning("job %s: its join had no message in the broker; sent again", job_id)
            if readmitted:
                log.warning("job %s: its join was in no tenant's line; put back in line",
                            job_id)
        else:
            if resent:
                log.warning("job %s: %d window(s) had no message in the broker; sent again",
                            job_id, len(resent))
            if readmitted:
                log.warning("job %s: %d window(s) were in no tenant's line; put back in line",
                            job_id, len(readmitted))
        return "resent"

    def _sweep_work(self, now: float) -> int:
        """Delete ``work/{jobId}/`` of split jobs that have ended (whatever the outcome,
        the join's own clean-up included), a lease's length after the end, so a window
        still uploading when its job was canceled is not left behind."""
        swept = 0
        redis = self.stores.jobs.redis
        for raw_id, raw_count in redis.hgetall(WORK_REDIS_KEY).items():
            job_id = raw_id.decode()
            try:
                job = self.stores.jobs.get(job_id)
            except JobNotFound:
                job = None
            if job is not None and not (
                job.terminal and now - epoch_of(job.updated_at) > self.stores.settings.lease_seconds
            ):
                continue
            for key in work_keys(job_id, int(raw_count)):
                self.stores.objects.delete(key)
            redis.hdel(WORK_REDIS_KEY, job_id)
            swept += 1
        return swept
