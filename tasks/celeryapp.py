"""The Celery application: ``create_celery(settings)``.

Delivery is at-least-once (late acks, re-queue when a worker dies); the job
record's state machine absorbs the duplicates that follows from.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery, signals
from kombu import Queue

import tasks.callbacks
import tasks.render
import tasks.split
import tasks.webhooks
from config import logs
from config.settings import Settings
from storage.objects import ObjectStore, object_store
from tasks import background
from tasks.constants import (
    CALLBACK_QUEUE,
    DELIVER_WEBHOOK_TASK,
    JOB_SOFT_TIME_LIMIT,
    JOB_TIME_LIMIT,
    PREVIEW_QUEUE,
    REAP_TASK,
    RENDER_QUEUE,
    RENDER_TASK,
    REPORT_FAILURE_TASK,
    REPORT_RESULT_TASK,
    VISIBILITY_TIMEOUT,
)
from tasks.reports import ApiClient

#: A pool process that has grown past this after a task is replaced (Celery's
#: ``worker_max_memory_per_child``, KiB): a 1080p render stays far below it.
MAX_MEMORY_PER_CHILD_KIB = 1024 * 1024
#: ... and one that has run this many tasks, whatever its size.
MAX_TASKS_PER_CHILD = 1000


class SoundreelCelery(Celery):
    """A Celery app that carries the settings its tasks need."""

    settings: Settings

    @cached_property
    def object_store(self) -> ObjectStore:
        # Made lazily, in the worker child, after the fork. Local-store links the
        # worker makes for itself point at the API's internal address.
        settings = self.settings
        internal = settings.model_copy(update={"public_base_url": settings.internal_base_url})
        return object_store(internal)

    @cached_property
    def api(self) -> ApiClient:
        return ApiClient(self.settings.internal_base_url, self.settings.worker_token)


@signals.setup_logging.connect(weak=False)
def _json_logs(loglevel: Any = None, **_: Any) -> None:
    """Workers and beat log JSON lines like the API (Celery leaves logging to us
    once this signal has a receiver)."""
    logs.setup(loglevel if isinstance(loglevel, str) else "INFO")


@signals.worker_process_shutdown.connect(weak=False)
def _send_what_is_pending(**_: Any) -> None:
    """A pool process about to exit (replaced, or the worker stopping) first sends
    the hand-offs its tasks left on their way (`tasks.background`)."""
    background.drain()


@signals.task_prerun.connect(weak=False)
def _task_context(task: Any = None, kwargs: Any = None, args: Any = None, **_: Any) -> None:
    """Every log line of a task names its job and the request that made it."""
    job = (kwargs or {}).get("job_id") or (args[0] if args and isinstance(args[0], str)
                                           else None)
    logs.job_id.set(job if isinstance(job, str) else None)
    logs.request_id.set(task.request.get("request_id") if task is not None else None)


def _transport_options(settings: Settings) -> dict[str, float]:
    options = {
        "visibility_timeout": settings.visibility_timeout,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    }
    if settings.visibility_timeout < VISIBILITY_TIMEOUT:
        # a short timeout (tests) is only useful if kombu looks for expired messages
        # often: by default it sweeps every 100 s
        options.update(unacked_restore_interval=1, unacked_restore_throttle=1)
    return options


def create_celery(settings: Settings) -> SoundreelCelery:
    app = SoundreelCelery("soundreel", set_as_current=False)
    app.settings = settings
    app.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings),
        # The job record in Redis (jobs.store) is the truth, not a result backend.
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # A pool process is replaced when it has grown (a leak), not every few jobs:
        # each replacement is a fork of the worker and its imports, which short jobs
        # paid for every 50 of them. Checked after each task, in KiB.
        worker_max_memory_per_child=MAX_MEMORY_PER_CHILD_KIB,
        worker_max_tasks_per_child=MAX_TASKS_PER_CHILD,
        # True lost a job when Redis went away (docs/architecture.md); keep the default.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_soft_time_limit=JOB_SOFT_TIME_LIMIT,
        task_time_limit=JOB_TIME_LIMIT,
        task_queues=[Queue(RENDER_QUEUE), Queue(PREVIEW_QUEUE), Queue(CALLBACK_QUEUE)],
        task_default_queue=RENDER_QUEUE,
        task_routes={
            RENDER_TASK: {"queue": RENDER_QUEUE},
            REPORT_RESULT_TASK: {"queue": CALLBACK_QUEUE},
            REPORT_FAILURE_TASK: {"queue": CALLBACK_QUEUE},
            REAP_TASK: {"queue": CALLBACK_QUEUE},
            DELIVER_WEBHOOK_TASK: {"queue": CALLBACK_QUEUE},
        },
        # `celery -A tasks beat` sends the reaper; a tick not run within its
        # interval is dropped (the next one does the same work).
        beat_schedule={
            "reap": {
                "task": REAP_TASK,
                "schedule": settings.reap_interval,
                "options": {"expires": settings.reap_interval},
            }
        },
        # Task events are off until Flower turns them on (its `enable_events`, every
        # few seconds while it runs), as in Celery's defaults: without Flower they were
        # a quarter of the worker's own work on a short job (8 PUBLISHes a job).
        worker_send_task_events=False,
        task_send_sent_event=False,
        timezone="UTC",
    )
    tasks.render.register(app)
    tasks.split.register(app)
    tasks.callbacks.register(app)
    tasks.webhooks.register(app)
    return app
