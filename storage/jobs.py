"""Job records in Redis, and the one state machine that guards them.

The API is the only writer. Workers report over HTTP; each report becomes an
`Event` that `apply` either turns into a new record or ignores. Ignoring is the
answer to every late, duplicate or out-of-order report: terminal states are
sticky, progress never goes backwards, and none of that is an error.

    queued ──progress──▶ running ──progress──▶ running
      │                    │
      ├──complete──────────┴──complete──▶ complete   (terminal)
      ├──fail──────────────┴──fail──────▶ failed     (terminal)
      └──cancel────────────┴──cancel────▶ canceled   (terminal; the client's DELETE)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import redis

from storage.constants import (
    CANCELED,
    COMPLETE,
    FAILED,
    QUEUED,
    RECORD_TTL_SECONDS,
    RUNNING,
    STAGE_DONE,
    STAGE_DOWNLOADING,
    STAGE_QUEUED,
    STAGES,
    TERMINAL_STATES,
    job_redis_key,
    output_redis_key,
    upload_redis_key,
)
from storage.errors import JobNotFound, StorageUnavailable

EventKind = Literal["start", "progress", "complete", "fail", "cancel"]

#: (state, event) -> next state. Anything not listed is ignored.
TRANSITIONS: dict[tuple[str, EventKind], str] = {
    (QUEUED, "start"): RUNNING,
    (RUNNING, "start"): RUNNING,  # a redelivery: counted, failed past max_attempts
    (QUEUED, "progress"): RUNNING,
    (RUNNING, "progress"): RUNNING,
    (QUEUED, "complete"): COMPLETE,
    (RUNNING, "complete"): COMPLETE,
    (QUEUED, "fail"): FAILED,
    (RUNNING, "fail"): FAILED,
    (QUEUED, "cancel"): CANCELED,
    (RUNNING, "cancel"): CANCELED,
}



def utcnow() -> str:
    """ISO 8601 UTC with milliseconds, the format of every timestamp in the API."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant: str
    kind: str
    audio_key: str
    output_key: str
    options: dict[str, Any] = field(default_factory=dict)
    status: str = QUEUED
    progress: float = 0.0
    stage: str | None = STAGE_QUEUED
    created_at: str = field(default_factory=utcnow)
    updated_at: str = ""
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    #: Deliveries that started work on the job (a worker killed mid-render redelivers it).
    attempts: int = 0

    def __post_init__(self) -> None:
        if not self.updated_at:
            object.__setattr__(self, "updated_at", self.created_at)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Event:
    """One report about a job: progress from the worker, or its end."""

    kind: EventKind
    max_attempts: int = 0
    progress: float | None = None
    stage: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    @classmethod
    def started(cls, max_attempts: int) -> Event:
        return cls("start", max_attempts=max_attempts)

    @classmethod
    def progressed(cls, progress: float, stage: str | None = None) -> Event:
        return cls("progress", progress=progress, stage=stage)

    @classmethod
    def completed(cls, result: dict[str, Any]) -> Event:
        return cls("complete", result=result)

    @classmethod
    def failed(cls, code: str, message: str) -> Event:
        return cls("fail", error={"code": code, "message": message})

    @classmethod
    def canceled(cls) -> Event:
        return cls("cancel", error={"code": "canceled", "message": "The job was canceled."})


def apply(job: Job, event: Event, now: str | None = None) -> Job | None:
    """The record after ``event``, or None when the event is to be ignored."""
    target = TRANSITIONS.get((job.status, event.kind))
    if target is None:
        return None
    now = now or utcnow()
    if event.kind == "start":
        attempts = job.attempts + 1
        if attempts > event.max_attempts:
            error = {
                "code": "worker_lost",
                "message": f"The job stopped its worker {job.attempts} times (a crash or a "
                "kill mid-render) and was given up. Resubmit it; if it fails again, "
                "report it with this job id.",
            }
            return replace(job, status=FAILED, attempts=attempts, error=error, updated_at=now)
        stage = job.stage
        if _stage_rank(STAGE_DOWNLOADING) > _stage_rank(stage):
            stage = STAGE_DOWNLOADING
        return replace(job, status=RUNNING, attempts=attempts, stage=stage, updated_at=now)
    if event.kind == "progress":
        reported = event.progress
        if reported is None or not math.isfinite(reported):
            return None
        reported = min(max(reported, 0.0), 1.0)
        if reported < job.progress:
            return None
        stage = event.stage if event.stage is not None else job.stage
        if _stage_rank(stage) < _stage_rank(job.stage):
            return None  # a late report from an earlier stage
        if job.status == target and reported == job.progress and stage == job.stage:
            return None  # a duplicate: nothing to write
        return replace(job, status=target, progress=reported, stage=stage, updated_at=now)
    if event.kind == "complete":
        return replace(
            job, status=COMPLETE, progress=1.0, stage=STAGE_DONE, result=event.result,
            updated_at=now,
        )
    return replace(job, status=target, error=event.error, updated_at=now)


def _stage_rank(stage: str | None) -> int:
    """Known stages in their order; an unknown one ranks with the one before it."""
    return STAGES.index(stage) if stage in STAGES else -1


class JobStore:
    """Job records as JSON strings in Redis, changed only through `apply`.

    Updates use WATCH/MULTI so two reports racing for one job never lose each
    other's effect: the loser re-reads and re-applies.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @classmethod
    def from_url(cls, url: str) -> JobStore:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3))

    def create(self, job: Job) -> None:
        with unavailable_on_connection_error():
            key = job_redis_key(job.job_id)
            if not self.redis.set(key, job.to_json(), nx=True, ex=RECORD_TTL_SECONDS):
                raise ValueError(f"job {job.job_id} exists")

    def delete(self, job_id: str) -> None:
        """Only for undoing a create whose task could not be sent."""
        with unavailable_on_connection_error():
            self.redis.delete(job_redis_key(job_id))

    def get(self, job_id: str) -> Job:
        with unavailable_on_connection_error():
            raw = self.redis.get(job_redis_key(job_id))
        if raw is None:
            raise JobNotFound(job_id)
        return Job.from_json(raw)

    def report(self, job_id: str, event: Event) -> tuple[Job, bool]:
        """Apply ``event``; return the record and whether the event changed it."""
        key = job_redis_key(job_id)
        outcome: list[tuple[Job, bool]] = []

        def update(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            if raw is None:
                raise JobNotFound(job_id)
            job = Job.from_json(raw)
            changed = apply(job, event)
            pipe.multi()
            if changed is not None:
                pipe.set(key, changed.to_json(), ex=RECORD_TTL_SECONDS)
            outcome[:] = [(changed or job, changed is not None)]

        with unavailable_on_connection_error():
            self.redis.transaction(update, key)
        return outcome[0]

    # Uploads belong to a tenant: a job may only read audio its tenant uploaded.

    def record_upload(self, upload_id: str, tenant: str) -> None:
        with unavailable_on_connection_error():
            self.redis.set(upload_redis_key(upload_id), tenant, ex=RECORD_TTL_SECONDS)

    def forget_upload(self, upload_id: str) -> None:
        with unavailable_on_connection_error():
            self.redis.delete(upload_redis_key(upload_id))

    def upload_owner(self, upload_id: str) -> str | None:
        with unavailable_on_connection_error():
            owner = self.redis.get(upload_redis_key(upload_id))
        return owner.decode() if owner is not None else None

    def claim_output(self, output_key: str, tenant: str) -> bool:
        """Whether ``tenant`` may write ``output_key``: first come, owner forever after."""
        key = output_redis_key(output_key)
        with unavailable_on_connection_error():
            self.redis.set(key, tenant, nx=True, ex=RECORD_TTL_SECONDS)
            owner = self.redis.get(key)
        return owner is not None and owner.decode() == tenant


@contextmanager
def unavailable_on_connection_error() -> Iterator[None]:
    """Turn Redis connection trouble into `StorageUnavailable` (the API answers 503)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StorageUnavailable(f"Redis is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        # a full (noeviction) or read-only replica Redis: not the client's fault
        if str(exc).startswith(("OOM", "READONLY", "MISCONF")):
            raise StorageUnavailable(f"Redis refused the write: {exc}") from exc
        raise
