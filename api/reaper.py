"""The reaper, which Celery beat calls every REAP_INTERVAL: it ends or hands on every
job that nobody will finish otherwise, and sends due client webhooks."""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from api.deliveries import Deliveries
from api.reports import Reports
from api.submission import Submissions
from jobs.constants import QUEUED, REAPER_LOCK_REDIS_KEY, RUNNING
from jobs.errors import JobNotFound
from jobs.store import Event, epoch_of
from storage.errors import StorageUnavailable
from tasks.broker import task_ids_in_broker
from tasks.constants import PREVIEW_QUEUE, RENDER_QUEUE

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)

#: One reaper at a time (beat ticks can overlap under load); held at most this long.
REAPER_LOCK_SECONDS = 60


class Reaper:
    def __init__(self, stores: Stores, reports: Reports, submissions: Submissions,
                 deliveries: Deliveries) -> None:
        self.stores = stores
        self.reports = reports
        self.submissions = submissions
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
          half-way): sent again.

        Every step is one `JobStore` transaction, so two reapers cannot requeue a job
        twice, and a duplicate message is harmless (the lease refuses it); a lock
        still keeps overlapping ticks from doing the same work.
        """
        counts = {"timedOut": 0, "requeued": 0, "workerLost": 0, "resent": 0, "fromHandoff": 0}
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
                        outcome = self._resend_if_lost(job_id, in_broker)
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
        if job.status == RUNNING and not self.stores.jobs.lease_alive(job_id):
            report = self.reports.apply(job_id, Event.requeued(self.stores.settings.max_attempts))
            job, applied = report.job, report.applied
            if applied and job.status == QUEUED:
                self.submissions.enqueue(job)
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
        waited = now - epoch_of(job.updated_at)
        if job.status == QUEUED and waited > self.stores.settings.lease_seconds:
            return "check_broker"
        return None

    def _resend_if_lost(self, job_id: str, in_broker: set[str]) -> str | None:
        if job_id in in_broker:
            return None
        job = self.stores.jobs.get(job_id)  # again: it may have started meanwhile
        if job.status != QUEUED:
            return None
        self.submissions.enqueue(job)
        log.warning("job %s was queued with no message in the broker; sent again", job_id)
        return "resent"
