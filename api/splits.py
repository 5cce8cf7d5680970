"""Split renders: the windows of one long render handed out to the fleet, and their join.

The job's own task analyses the clip and reports the plan (``split``); from then on
each window is a unit of work of its own (a ``render_segment`` task with its own
attempts and lease), and the API, which records every window stored, sends the
join (``join_segments``) when the last one is. Group and fan-in rather than a
Celery chord: a chord counts its tasks' results in a result backend, which this
service does not run (the job record is the API's), and it cannot see a window
redelivered after its worker died or a job canceled mid-way; the record can, in
the same transaction that marks a window stored.

Every send is repeated safely: task ids are fixed per window and per join, a
second delivery finds the lease taken or the window stored and does nothing, and
the reaper sends again what a crash between the record and the broker lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from api.reports import Reports
from api.schemas import ReleaseRequest, SegmentEnd, SegmentProgress, SplitPlan, StartRequest
from config import logs
from jobs.constants import RUNNING, source_key
from jobs.store import Event, Job, Report, joinable, window_of
from tasks.constants import (
    JOIN_TASK,
    QUEUE_BY_KIND,
    REPORT_FAILURE_TASK,
    REPORT_RESULT_TASK,
    SEGMENT_TASK,
    TIME_LIMITS,
    join_task_id,
    segment_task_id,
)

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)


class Splits:
    def __init__(self, stores: Stores, reports: Reports) -> None:
        self.stores = stores
        self.reports = reports

    def split(self, job_id: str, plan: SplitPlan) -> Report:
        """The plan of the job's current attempt: record the windows, then send them."""
        report = self.reports.apply(job_id, Event.split_up(plan.attempt, {
            "duration": plan.duration, "loudest": plan.loudest, "frames": plan.frames,
            "windows": [list(window) for window in plan.windows],
        }))
        if report.applied:
            assert report.job.split is not None
            units = report.job.split["windows"]  # the windows, and the audio beside them
            log.info("job %s split into %d windows", job_id, len(plan.windows))
            for index in range(len(units)):
                self.send_segment(report.job, index)
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
        if applied.applied and job.status == RUNNING and joinable(job):
            self.send_join(job)
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

    def send_segment(self, job: Job, index: int) -> None:
        window = window_of(job, Event("segment_start", segment=index))
        assert window is not None and job.split is not None
        kwargs = {"job_id": job.job_id, "index": index, "first": window["first"],
                  "stop": window["stop"], "options": job.options}
        if window.get("audio"):  # the audio unit reads the input: an upload, or its copy
            kwargs.update(audio=True, duration=job.split["duration"],
                          source=job.audio_key or source_key(job.job_id))
        self._send(SEGMENT_TASK, segment_task_id(job.job_id, index), job, kwargs)

    def send_join(self, job: Job) -> None:
        log.info("job %s: every window stored; joining", job.job_id)
        assert job.split is not None
        self._send(JOIN_TASK, join_task_id(job.job_id), job, {
            "job_id": job.job_id, "kind": job.kind, "output_key": job.output_key,
            "windows": sum(1 for w in job.split["windows"] if not w.get("audio")),
            "duration": job.split["duration"],
            "loudest": job.split["loudest"],
        }, report=True)

    def _send(self, task: str, task_id: str, job: Job, kwargs: dict[str, Any],
              report: bool = False) -> None:
        celery = self.stores.celery
        callbacks: dict[str, Any] = {}
        if report:  # the join ends the job as an unsplit render task does
            callbacks = {"link": celery.signature(REPORT_RESULT_TASK),
                         "link_error": celery.signature(REPORT_FAILURE_TASK)}
        celery.send_task(
            task, kwargs=kwargs, task_id=task_id, queue=QUEUE_BY_KIND[job.kind],
            argsrepr="()", kwargsrepr=repr({k: v for k, v in kwargs.items() if k != "options"}),
            soft_time_limit=TIME_LIMITS[job.kind][0], time_limit=TIME_LIMITS[job.kind][1],
            headers={"request_id": logs.request_id.get()}, **callbacks,
        )
