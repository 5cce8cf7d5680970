"""Celery task names and queues, in one place (the API sends by name)."""

from __future__ import annotations

from typing import Final

from jobs.constants import (
    PREPARE,
    PREVIEW,
    PREVIEW_QUEUE,
    QUEUE_BY_KIND,
    RENDER,
    RENDER_QUEUE,
    join_task_id,
    segment_task_id,
)

# the task ids of windows and joins are defined with the fair-share units they name
__all__ = ["PREVIEW_QUEUE", "QUEUE_BY_KIND", "RENDER_QUEUE", "join_task_id",
           "segment_task_id"]  # and the names below

#: Result callbacks: short HTTP calls that must not wait behind renders.
CALLBACK_QUEUE: Final = "callbacks"

#: The job task: download, render, upload.
RENDER_TASK: Final = "soundreel.render_job"
#: One window of a split render (api.splits): drawn from the clip's saved features.
SEGMENT_TASK: Final = "soundreel.render_segment"
#: The fan-in of a split render: the windows and the audio joined, the job ended.
JOIN_TASK: Final = "soundreel.join_segments"
#: ``link``: reports a finished job to the API's completion webhook.
REPORT_RESULT_TASK: Final = "soundreel.report_result"
#: ``link_error``: turns the failure into a report and sends it like a result.
REPORT_FAILURE_TASK: Final = "soundreel.report_failure"

#: One POST of a client webhook (tasks.webhooks).
DELIVER_WEBHOOK_TASK: Final = "soundreel.deliver_webhook"
#: Celery beat's periodic reaper: lost leases and deadlines (see api.reaper.Reaper.run).
REAP_TASK: Final = "soundreel.reap"

#: Hard and soft time limits for one job, seconds.
JOB_SOFT_TIME_LIMIT: Final = 55 * 60
JOB_TIME_LIMIT: Final = 60 * 60
#: (soft, hard) time limits per job kind, seconds: a preview or a prepare that runs
#: long is stuck, not busy. The soft limit raises in the task (clean-up runs); the
#: hard one kills the child.
TIME_LIMITS: Final = {
    RENDER: (JOB_SOFT_TIME_LIMIT, JOB_TIME_LIMIT),
    PREVIEW: (4 * 60, 5 * 60),
    PREPARE: (9 * 60, 10 * 60),
}
#: A message not acked within this is delivered again; keep it above JOB_TIME_LIMIT.
VISIBILITY_TIMEOUT: Final = 2 * JOB_TIME_LIMIT
