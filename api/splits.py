"""Split renders: the windows of one long render handed out to the fleet, and their join.

The job's own task analyses the clip and reports the plan (``split``); from then on
each window is a unit of work of its own (a ``render_segment`` task with its own
attempts and lease), and the API, which records every window stored, sends the
join (``join_segments``) when the last one is. Group and fan-in rather than a
Celery chord: a chord counts its tasks' results in a result backend, which this
service does not run (the job record is the API's), and it cannot see a window
redelivered after its worker died or a job canceled mid-way; the record can, in
the same transaction that marks a window stored.

Windows go through fair share (``api.fairshare``) like jobs: they are their
tenant's work, so a tenant's 120-window render holds at most TENANT_MAX_INFLIGHT
places in the render queue, as its 120 queued renders would. The split hands the
job's own place to its windows; each window stored passes its place on, the last
one to the join, first in line.

Every send is repeated safely: task ids are fixed per window and per join, a
second delivery finds the lease taken or the window stored and does nothing, and
the reaper sends again what a crash between the record and the broker lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from api.fairshare import FairShare
from api.reports import Reports
from api.schemas import ReleaseRequest, SegmentEnd, SegmentProgress, SplitPlan, StartRequest
from jobs.constants import RUNNING
from jobs.store import Event, Report, joinable

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)


class Splits:
    def __init__(self, stores: Stores, reports: Reports, fair: FairShare) -> None:
        self.stores = stores
        self.reports = reports
        self.fair = fair

    def split(self, job_id: str, plan: SplitPlan) -> Report:
        """The plan of the job's current attempt: record the windows, then queue them
        in the job's place (fair share sends those the tenant has room for)."""
        report = self.reports.apply(job_id, Event.split_up(plan.attempt, {
            "duration": plan.duration, "loudest": plan.loudest, "frames": plan.frames,
            "windows": [list(window) for window in plan.windows],
        }))
        if report.applied:
            log.info("job %s split into %d windows", job_id, len(plan.windows))
            self.fair.split(report.job)  # the windows, and the audio unit beside them
        return report

    def start(self, job_id: str, index: int, request: StartRequest) -> Report:
        return self.reports.apply(job_id, Event.segment_started(
            index, self.stores.settings.max_attempts, request.attempt or "", request.worker))

    def progress(self, job_id: str, index: int, report: SegmentProgress) -> Report:
        return self.reports.apply(job_id, Event.segment_progressed(
            index, report.progress, report.attempt))

    def end(self, job_id: str, index: int, report: SegmentEnd) -> Report:
        """A window stored (the last one sends the join) or failed (the job fails)."""
        error = report.error.model_dump() if report.error else None
        applied = self.reports.apply(job_id, Event.segment_ended(index, report.attempt, error))
        job = applied.job
        if applied.applied and job.status == RUNNING:
            if joinable(job):
                log.info("job %s: every window stored; joining", job_id)
            self.fair.window_stored(job, index)
        elif applied.applied and error:
            log.warning("job %s: window %d failed: %s", job_id, index, error["code"])
        return applied

    def release(self, job_id: str, index: int, request: ReleaseRequest) -> Report:
        error = request.error.model_dump() if request.error else None
        report = self.reports.apply(job_id, Event.segment_released(index, request.worker,
                                                                   error))
        if report.current:
            log.warning("job %s: window %d lost its worker %s", job_id, index, request.worker)
        return report
