"""The baseline of ``bench/scale.py``: bare Celery doing a soundreel job's work.

A Celery app on the same Redis with the same delivery settings as soundreel's (late
acks, re-queue on a lost worker, prefetch 1, JSON), whose task does exactly the work
of a ``prepare`` job (``tasks.render.run_job``: fetch the upload, decode, peaks,
store both) and whose end is reported by a ``link`` callback on a queue of its own.
No API, no attempts, no leases, no progress, no hand-off: what is left between this
and a soundreel job is soundreel's own overhead.

Workers: ``celery -A bench.bare_celery worker -Q bare`` (and ``-Q bare-callbacks``),
with the stack's environment (the bench starts them).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import redis
from celery import Celery
from kombu import Queue

from config.settings import Settings
from jobs.constants import PREPARE, default_output_key
from storage.objects import ObjectStore, object_store

QUEUE = "bare"
CALLBACK_QUEUE = "bare-callbacks"
PREPARE_TASK = "bare.prepare"
DONE_TASK = "bare.done"
#: Hash: job id -> epoch seconds when its callback ran.
DONE_KEY = "bench:bare:done"
#: Hash: job id -> how many times its task body ran (1, or the job ran twice).
RUNS_KEY = "bench:bare:runs"
#: Hash: job id -> "started ended" (epoch seconds) of its task body.
SPAN_KEY = "bench:bare:span"


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def store() -> ObjectStore:
    # as the soundreel worker makes it: local-store links point at the internal address
    own = settings()
    return object_store(own.model_copy(update={"public_base_url": own.internal_base_url}))


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings().redis_url)


def create(redis_url: str) -> Celery:
    app = Celery("bare", broker=redis_url, set_as_current=False)
    app.conf.update(
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=50,
        task_queues=[Queue(QUEUE), Queue(CALLBACK_QUEUE)],
        task_default_queue=QUEUE,
        task_routes={PREPARE_TASK: {"queue": QUEUE}, DONE_TASK: {"queue": CALLBACK_QUEUE}},
    )
    return app


def send(app: Celery, job_id: str, audio_key: str) -> None:
    """What a bare Celery client does to submit: one message, with its callback."""
    app.send_task(PREPARE_TASK, kwargs={"job_id": job_id, "audio_key": audio_key},
                  task_id=job_id, queue=QUEUE,
                  link=app.signature(DONE_TASK, queue=CALLBACK_QUEUE))


def register(app: Celery) -> None:
    from tasks.render import run_job  # the worker's own work, as soundreel runs it

    @app.task(name=PREPARE_TASK, shared=False)
    def prepare(*, job_id: str, audio_key: str) -> dict[str, Any]:
        started = time.time()
        client().hincrby(RUNS_KEY, job_id, 1)
        run_job(store(), job_id=job_id, kind=PREPARE, audio_key=audio_key,
                output_key=default_output_key(PREPARE, job_id), options={},
                report=lambda progress, stage: None, max_bytes=settings().max_upload_bytes,
                max_audio_seconds=settings().max_audio_seconds)
        return {"jobId": job_id, "span": f"{started} {time.time()}"}

    @app.task(name=DONE_TASK, shared=False)
    def done(payload: dict[str, Any]) -> None:
        pipe = client().pipeline(transaction=False)
        pipe.hset(DONE_KEY, payload["jobId"], time.time())
        pipe.hset(SPAN_KEY, payload["jobId"], payload["span"])
        pipe.execute()


@cache
def worker_app() -> Celery:
    """The app ``celery -A bench.bare_celery`` finds (built from the environment)."""
    app = create(settings().redis_url)
    register(app)
    return app


def __getattr__(name: str) -> Any:
    # ``celery -A bench.bare_celery`` looks up ``app``; made only then, so importing
    # this module (the bench does, to send) reads no settings
    if name == "app":
        return worker_app()
    raise AttributeError(name)
