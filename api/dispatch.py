"""Sending tasks to the broker: a job's own task, a split job's windows and its join.

Only what the message carries is decided here. When a task is sent is fair share's
(``api.fairshare``) or the reaper's, which sends again what the broker lost. Task
ids are fixed (the job id, ``{jobId}.{index}``, ``{jobId}.join``), so a second send
is harmless: the delivery that comes second finds the lease taken, or the work
done, and does nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from config import logs
from jobs.constants import source_key
from jobs.store import Event, Job, window_of
from tasks.constants import (
    JOIN_TASK,
    QUEUE_BY_KIND,
    RENDER_TASK,
    REPORT_FAILURE_TASK,
    REPORT_RESULT_TASK,
    SEGMENT_TASK,
    TIME_LIMITS,
    join_task_id,
    segment_task_id,
)

if TYPE_CHECKING:
    from api.service import Stores


class Dispatch:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def job(self, job: Job) -> None:
        """The job's task (task id = job id, so Flower shows it under that id)."""
        self._send(RENDER_TASK, job.job_id, job, {
            "job_id": job.job_id,
            "kind": job.kind,
            "audio_key": job.audio_key,
            "audio_url": job.audio_url,
            "output_key": job.output_key,
            "options": job.options,
        }, report=True)

    def segment(self, job: Job, index: int) -> None:
        """Window ``index`` of a split job (the last one encodes the clip's audio)."""
        window = window_of(job, Event("segment_start", segment=index))
        assert window is not None and job.split is not None
        kwargs = {"job_id": job.job_id, "index": index, "first": window["first"],
                  "stop": window["stop"], "options": job.options}
        if window.get("audio"):  # the audio unit reads the input: an upload, or its copy
            kwargs.update(audio=True, duration=job.split["duration"],
                          source=job.audio_key or source_key(job.job_id))
        self._send(SEGMENT_TASK, segment_task_id(job.job_id, index), job, kwargs)

    def join(self, job: Job) -> None:
        """The join of a split job whose windows (and audio) are all stored."""
        assert job.split is not None
        self._send(JOIN_TASK, join_task_id(job.job_id), job, {
            "job_id": job.job_id, "kind": job.kind, "output_key": job.output_key,
            "windows": sum(1 for w in job.split["windows"] if not w.get("audio")),
            "duration": job.split["duration"],
            "loudest": job.split["loudest"],
            "options": job.options,  # the intro and outro are composed by the join
        }, report=True)

    def _send(self, task: str, task_id: str, job: Job, kwargs: dict[str, Any],
              report: bool = False) -> None:
        celery = self.stores.celery
        callbacks: dict[str, Any] = {}
        if report:  # the job's task and the join end the job: their result is reported
            callbacks = {"link": celery.signature(REPORT_RESULT_TASK),
                         "link_error": celery.signature(REPORT_FAILURE_TASK)}
        celery.send_task(
            task, kwargs=kwargs, task_id=task_id, queue=QUEUE_BY_KIND[job.kind],
            # what worker logs, events and Flower show of the arguments: a client's
            # audioUrl may be signed, so neither it nor the options
            argsrepr="()",
            kwargsrepr=repr({k: v for k, v in kwargs.items()
                             if k in ("job_id", "kind", "index", "first", "stop", "audio",
                                      "windows")}),
            soft_time_limit=TIME_LIMITS[job.kind][0], time_limit=TIME_LIMITS[job.kind][1],
            # the request id follows the job into the worker's logs and reports
            headers={"request_id": logs.request_id.get()}, **callbacks,
        )
