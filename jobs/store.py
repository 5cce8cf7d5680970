"""Job records in Redis, and the one state machine that guards them.

The API is the only writer. Workers report over HTTP; each report becomes an
`Event` that `apply` either turns into a new record or ignores. Ignoring is the
answer to every late, duplicate or out-of-order report: terminal states are
sticky, progress never goes backwards, and none of that is an error.

    queued ──reuse──▶ complete   (the render cache: done at submission, no worker)
    queued ──start──▶ running ──progress──▶ running
      ▲                 │
      └───requeue───────┤   (the reaper: the attempt's lease died)
                        ├──complete──▶ complete    (terminal)
      queued/running ───┼──fail──────▶ failed      (terminal; also worker_lost)
                        ├──cancel────▶ canceled    (terminal; the client's DELETE)
                        └──time_out──▶ timed_out   (terminal; the reaper, past the deadline)

``RULES`` is the whole machine, conditions included: the first rule that matches a
report decides its outcome and what it does to the lease (``docs/state-machine.md``
is rendered from it by ``python -m jobs.tables``).

Attempts and leases. Every delivery that starts work gets a fresh attempt id
and a lease: a Redis key holding that id with a short TTL, renewed by the
worker's progress heartbeat. While the lease lives, another delivery of the job
does nothing; once it is gone (the worker died) a delivery, or the reaper,
takes over. Reports carry their attempt id, and only the current attempt's
reports count: a worker cut off long enough to be replaced cannot finish the
job behind its successor's back.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

import redis

from jobs.constants import (
    ACTIVE_JOBS_REDIS_KEY,
    CANCELED,
    COMPLETE,
    FAILED,
    HANDOFF_SECONDS,
    OUTPUT_FOLDERS_REDIS_KEY,
    QUEUE_BY_KIND,
    QUEUED,
    RECORD_TTL_SECONDS,
    RUNNING,
    SPLIT_JOINED_AT,
    SPLIT_PLANNED_AT,
    STAGE_DONE,
    STAGE_DOWNLOADING,
    STAGE_FINALIZING,
    STAGE_QUEUED,
    STAGE_RENDERING,
    STAGES,
    TERMINAL_STATES,
    TIMED_OUT,
    WORK_REDIS_KEY,
    job_redis_key,
    lease_redis_key,
    output_redis_key,
    queued_redis_key,
    segment_lease_redis_key,
    tenant_jobs_redis_key,
    tenant_queued_redis_key,
    upload_redis_key,
)
from jobs.deliveries import Delivery, DeliveryStore
from jobs.errors import JobNotFound
from storage.errors import StorageUnavailable
from storage.keys import folders_of

EventKind = Literal[
    "start", "progress", "hand_off", "complete", "fail", "cancel", "time_out", "requeue",
    "release", "reuse", "split", "segment_start", "segment_progress", "segment_end",
    "segment_release", "segment_requeue",
]
#: Events about one window of a split job (``Event.segment``): they take, renew and
#: drop that window's lease, not the job's.
SEGMENT_EVENTS = frozenset({"segment_start", "segment_progress", "segment_end",
                            "segment_release", "segment_requeue"})
#: A start's phase: the job's task planning it (``plan``) or the join of its windows.
JOIN = "join"

#: What claiming an ``outputKey`` found (`JobStore.claim_output`): ``ok`` (the tenant's
#: now, or already), ``taken`` (another tenant's), ``folder`` (a claimed key lies in
#: it) or ``inside`` (it lies in a claimed key).
OutputClaim = Literal["ok", "taken", "folder", "inside"]

#: The claim as one atomic step. KEYS: the key's claim, the set of claimed keys'
#: folders, then the claims of the key's own folders; ARGV: the tenant, the key,
#: then its folders. The claim is set without expiry (an older one loses its TTL).
_CLAIM_OUTPUT = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 'taken' end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 'folder' end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 'inside' end
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 3, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
return 'ok'
"""

#: What happens to the lease key when an event is applied.
LeaseAction = Literal["set", "hold", "drop"] | None


def utcnow() -> str:
    """ISO 8601 UTC with milliseconds, the format of every timestamp in the API."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def epoch_of(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


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
    #: The current attempt's id (None while queued): only its reports count.
    attempt_id: str | None = None
    #: Who runs the current attempt, ``nodename/pid``: its worker's parent may
    #: speak for it once the child is dead.
    worker: str | None = None
    started_at: str | None = None
    #: When the job ends ``timed_out`` if it has not ended by then ("" = never).
    deadline_at: str = ""
    #: The client's webhook, POSTed (signed) when the job ends.
    webhook_url: str | None = None
    #: The input as a client URL (then ``audio_key`` is ""), fetched through the guard.
    audio_url: str | None = None
    #: Seconds of audio the job covers, as the worker measured it (for ``eta``).
    audio_seconds: float | None = None
    #: When the current attempt reached each stage (``timings``).
    stage_at: dict[str, str] = field(default_factory=dict)
    #: The progress shown when the current attempt started (a retry keeps the
    #: previous attempt's): its own rate is measured from here (``eta``).
    start_progress: float = 0.0
    #: What the current attempt handed off when its task returned, for the result
    #: callback to report: ``{"status": "complete", "result": ...}`` or
    #: ``{"status": "failed", "error": ...}``, and ``"at"``. The reaper ends the job
    #: from it if the callback is late past HANDOFF_SECONDS.
    handoff: dict[str, Any] | None = None
    #: A split render's plan, from the attempt that analysed the clip: ``duration``,
    #: ``loudest``, ``frames``, ``planAttempts`` (the job's attempts when it was split)
    #: and ``windows``, each ``{first, stop, attempt, worker, attempts, progress,
    #: done}``: a window is a unit of work with its own attempts and lease; the last
    #: one (``audio: true``) encodes the clip's audio for the join.
    split: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.updated_at:
            object.__setattr__(self, "updated_at", self.created_at)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def to_json(self) -> str:
        # field by field, not dataclasses.asdict: asdict deep-copies every nested
        # dict on the way, a tenth of the API's CPU for a short job (records are
        # written on every report); json.dumps walks them anyway
        return json.dumps({name: getattr(self, name) for name in _JOB_FIELDS},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Job:
        return cls(**json.loads(raw))


_JOB_FIELDS = tuple(f.name for f in fields(Job))


@dataclass(frozen=True)
class Event:
    """One report about a job: from a worker, the client, or the reaper."""

    kind: EventKind
    max_attempts: int = 0
    progress: float | None = None
    stage: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    #: The attempt a worker's report comes from (start: the new attempt's id).
    attempt_id: str | None = None
    #: ``nodename/pid`` of the process doing the attempt (start and release).
    worker: str | None = None
    audio_seconds: float | None = None
    #: Seconds from the attempt's start to each stage it reached, as its worker
    #: measured them: a report may carry stages that no report of their own announced.
    stages: dict[str, float] | None = None
    #: The window a segment event is about.
    segment: int | None = None
    #: A start's phase: None (the job's own task) or JOIN (the fan-in of a split job).
    phase: str | None = None
    #: A split event's plan: ``duration``, ``loudest``, ``frames``, ``windows`` [[first, stop]].
    plan: dict[str, Any] | None = None

    @classmethod
    def started(cls, max_attempts: int, attempt_id: str = "", worker: str | None = None,
                phase: str | None = None) -> Event:
        return cls("start", max_attempts=max_attempts, attempt_id=attempt_id or uuid.uuid4().hex,
                   worker=worker, phase=phase)

    @classmethod
    def split_up(cls, attempt_id: str, plan: dict[str, Any]) -> Event:
        """The planning attempt analysed the clip and hands its windows out."""
        return cls("split", attempt_id=attempt_id, plan=plan)

    @classmethod
    def segment_started(cls, segment: int, max_attempts: int, attempt_id: str,
                        worker: str | None = None) -> Event:
        return cls("segment_start", segment=segment, max_attempts=max_attempts,
                   attempt_id=attempt_id, worker=worker)

    @classmethod
    def segment_progressed(cls, segment: int, progress: float, attempt_id: str) -> Event:
        return cls("segment_progress", segment=segment, progress=progress,
                   attempt_id=attempt_id)

    @classmethod
    def segment_ended(cls, segment: int, attempt_id: str,
                      error: dict[str, str] | None = None) -> Event:
        """The window is stored (no ``error``), or failed for good (the job fails)."""
        return cls("segment_end", segment=segment, attempt_id=attempt_id, error=error)

    @classmethod
    def segment_released(cls, segment: int, worker: str,
                         error: dict[str, str] | None = None) -> Event:
        return cls("segment_release", segment=segment, worker=worker, error=error)

    @classmethod
    def segment_requeued(cls, segment: int, max_attempts: int) -> Event:
        """The reaper: the window's lease died and no delivery took it over."""
        return cls("segment_requeue", segment=segment, max_attempts=max_attempts)

    @classmethod
    def progressed(cls, progress: float, stage: str | None = None,
                   attempt_id: str | None = None, audio_seconds: float | None = None,
                   stages: dict[str, float] | None = None) -> Event:
        return cls("progress", progress=progress, stage=stage, attempt_id=attempt_id,
                   audio_seconds=audio_seconds, stages=stages)

    @classmethod
    def completed(cls, result: dict[str, Any], attempt_id: str | None = None,
                  stages: dict[str, float] | None = None) -> Event:
        """The result callback's report; ``stages``: the attempt's stage times, which
        its hand-off also carries (kept if the hand-off did not land first)."""
        return cls("complete", result=result, attempt_id=attempt_id, stages=stages)

    @classmethod
    def reused(cls, result: dict[str, Any]) -> Event:
        """The render cache: the job's outputs are copies of an earlier job's, made at
        submission; no worker takes part (only the API sends this, never a report)."""
        return cls("reuse", result=result)

    @classmethod
    def failed(cls, code: str, message: str, attempt_id: str | None = None) -> Event:
        return cls("fail", error={"code": code, "message": message}, attempt_id=attempt_id)

    @classmethod
    def canceled(cls) -> Event:
        return cls("cancel", error={"code": "canceled", "message": "The job was canceled."})

    @classmethod
    def timed_out(cls) -> Event:
        return cls("time_out", error={
            "code": "timed_out",
            "message": "The job did not finish before its deadline (timeoutSeconds) and was "
            "stopped. Resubmit it, with a longer timeoutSeconds if the queue is long.",
        })

    @classmethod
    def requeued(cls, max_attempts: int) -> Event:
        """The reaper: the attempt's lease died and no delivery took the job over."""
        return cls("requeue", max_attempts=max_attempts)

    @classmethod
    def handed_off(cls, attempt_id: str | None, result: dict[str, Any] | None = None,
                   error: dict[str, str] | None = None, progress: float | None = None,
                   stage: str | None = None,
                   stages: dict[str, float] | None = None) -> Event:
        """The attempt's outcome, as its task returns (or fails): the result callback
        will report it; until then the lease is held for HANDOFF_SECONDS. It carries
        the attempt's last progress, so the task need not wait for a PATCH to land."""
        return cls("hand_off", attempt_id=attempt_id, result=result, error=error,
                   progress=progress, stage=stage, stages=stages)

    @classmethod
    def released(cls, worker: str, error: dict[str, str] | None = None) -> Event:
        """A worker's parent process about its dead child: drop the lease so the
        redelivery starts at once, or fail the job with ``error`` (hard time limit)."""
        return cls("release", worker=worker, error=error)


def worker_lost(job: Job) -> dict[str, str]:
    return {
        "code": "worker_lost",
        "message": f"The job stopped its worker {job.attempts} times (a crash or a kill "
        "mid-render) and was given up. Resubmit it; if it fails again, report it with "
        "this job id.",
    }


def window_of(job: Job, event: Event) -> dict[str, Any] | None:
    """The window a segment event is about, or None (no such window)."""
    windows = (job.split or {}).get("windows", [])
    if event.segment is None or not 0 <= event.segment < len(windows):
        return None
    return windows[event.segment]


def split_pending(job: Job) -> bool:
    """A split job with windows still to render."""
    return job.split is not None and not all(w["done"] for w in job.split["windows"])


def joinable(job: Job) -> bool:
    """A split job whose windows are all stored: the join is what is left."""
    return job.split is not None and all(w["done"] for w in job.split["windows"])


def is_current(job: Job, event: Event) -> bool:
    """Whether a worker's report comes from the job's current attempt (of its window,
    for a segment event)."""
    if event.kind in SEGMENT_EVENTS:
        window = window_of(job, event)
        if window is None:
            return False
        if event.kind == "segment_release":
            return event.worker is not None and event.worker == window["worker"]
        return event.attempt_id is not None and event.attempt_id == window["attempt"]
    if event.kind == "release":
        return event.worker is not None and event.worker == job.worker
    return event.attempt_id is not None and event.attempt_id == job.attempt_id


# --- the transition table ----------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """A named condition on (record, event, whether the lease lives)."""

    text: str
    test: Callable[[Job, Event, bool], bool]


@dataclass(frozen=True)
class Change:
    """A named way a record changes (the new status is the rule's ``then``)."""

    text: str
    make: Callable[[Job, Event, str, str], Job]  # (job, event, new status, now)


@dataclass(frozen=True)
class Rule:
    """``states`` + ``event`` [+ ``when``] -> ``then`` (None: ignored), changing the record
    by ``change`` and the lease by ``lease``."""

    states: tuple[str, ...]
    event: EventKind
    when: Guard | None
    then: str | None
    change: Change | None
    lease: LeaseAction


def _attempts_spent(job: Job, event: Event, lease_alive: bool) -> bool:
    """The job's own attempts; for a split job, those since it was split (the join's)."""
    return job.attempts - (job.split or {}).get("planAttempts", 0) >= event.max_attempts


def _begin(job: Job, event: Event, status: str, now: str) -> Job:
    if job.split is not None:  # the join: the job goes on, its start and stages kept
        return replace(job, status=status, attempts=job.attempts + 1,
                       attempt_id=event.attempt_id, worker=event.worker, updated_at=now)
    stage = job.stage
    if _stage_rank(STAGE_DOWNLOADING) > _stage_rank(stage):
        stage = STAGE_DOWNLOADING
    return replace(job, status=status, attempts=job.attempts + 1, stage=stage,
                   attempt_id=event.attempt_id, worker=event.worker, started_at=now,
                   stage_at={STAGE_DOWNLOADING: now}, start_progress=job.progress,
                   updated_at=now)


def _with_stage(job: Job, stage: str, progress: float, now: str) -> dict[str, Any]:
    """Fields moving ``job`` forward to ``stage`` and at least ``progress``."""
    stage_at = job.stage_at if stage in job.stage_at else {**job.stage_at, stage: now}
    if _stage_rank(stage) < _stage_rank(job.stage):
        stage, stage_at = job.stage, job.stage_at
    return {"stage": stage, "stage_at": stage_at, "progress": max(job.progress, progress)}


def _split(job: Job, event: Event, status: str, now: str) -> Job:
    plan = event.plan or {}
    fresh = {"attempt": None, "worker": None, "attempts": 0, "progress": 0.0, "done": False}
    windows = [{"first": int(first), "stop": int(stop), **fresh}
               for first, stop in plan.get("windows", [])]
    # the audio, encoded once for the join: a unit of work like a window, done beside them
    windows.append({"first": 0, "stop": 0, "audio": True, **fresh})
    split = {"duration": plan.get("duration"), "loudest": plan.get("loudest"),
             "frames": plan.get("frames"), "planAttempts": job.attempts, "windows": windows}
    return replace(job, status=status, split=split, attempt_id=None, worker=None,
                   updated_at=now, **_with_stage(job, STAGE_RENDERING, SPLIT_PLANNED_AT, now))


def _with_window(job: Job, event: Event, now: str, **changes: Any) -> Job:
    """``job`` with the event's window changed, and the progress and stage that follow:
    the mean of the windows fills the bar from SPLIT_PLANNED_AT to SPLIT_JOINED_AT;
    once all are stored, the stage is ``finalizing`` (the join)."""
    assert job.split is not None and event.segment is not None
    windows = list(job.split["windows"])
    windows[event.segment] = {**windows[event.segment], **changes}
    split = {**job.split, "windows": windows}
    mean = sum(w["progress"] for w in windows) / len(windows)
    progress = SPLIT_PLANNED_AT + (SPLIT_JOINED_AT - SPLIT_PLANNED_AT) * mean
    stage = STAGE_FINALIZING if all(w["done"] for w in windows) else STAGE_RENDERING
    return replace(job, split=split, updated_at=now,
                   **_with_stage(job, stage, round(progress, 4), now))


def _segment_progress(job: Job, event: Event) -> float | None:
    """The window's new progress, or None if the report moves nothing forward."""
    window = window_of(job, event)
    reported = event.progress
    if window is None or reported is None or not math.isfinite(reported):
        return None
    reported = min(max(reported, 0.0), 1.0)
    return reported if reported > window["progress"] else None


def _segment_give_up(job: Job, event: Event, status: str, now: str) -> Job:
    window = window_of(job, event) or {}
    error = {
        "code": "worker_lost",
        "message": f"A part of the render (frames {window.get('first')} to "
        f"{window.get('stop')}) stopped its worker {window.get('attempts')} times (a crash "
        "or a kill mid-render) and the job was given up. Resubmit it; if it fails again, "
        "report it with this job id.",
    }
    return replace(job, status=status, error=error, updated_at=now)


def _give_up(job: Job, event: Event, status: str, now: str) -> Job:
    attempts = job.attempts + 1 if event.kind == "start" else job.attempts
    return replace(job, status=status, attempts=attempts, error=worker_lost(job),
                   attempt_id=None, updated_at=now)


def _new_stages(job: Job, event: Event) -> dict[str, float]:
    """The stage offsets the event carries that the record lacks."""
    return {stage: seconds for stage, seconds in (event.stages or {}).items()
            if stage in STAGES and stage not in job.stage_at and math.isfinite(seconds)}


def _stage_times(job: Job, event: Event, now: str) -> dict[str, str]:
    """When the attempt reached the stages the event brings: its start plus the
    worker's offsets, never past ``now`` (the worker's clock starts as it hears the
    start answer, a moment after ``started_at``), so no clocks need agree."""
    offsets = _new_stages(job, event)
    if not offsets or not job.started_at or not now:
        return {}
    start, end = epoch_of(job.started_at), epoch_of(now)
    return {stage: iso_at(min(start + max(seconds, 0.0), end))
            for stage, seconds in offsets.items()}


def _progressed(job: Job, event: Event, now: str) -> Job | None:
    """The record with the event's progress, or None if it moves nothing forward."""
    reported = event.progress
    if reported is None or not math.isfinite(reported):
        return None
    reported = min(max(reported, 0.0), 1.0)
    if reported < job.progress:
        return None
    stage = event.stage if event.stage is not None else job.stage
    if _stage_rank(stage) < _stage_rank(job.stage):
        return None  # a late report from an earlier stage
    seconds = job.audio_seconds if job.audio_seconds is not None else event.audio_seconds
    if (reported == job.progress and stage == job.stage and seconds == job.audio_seconds
            and not _new_stages(job, event)):
        return None  # a duplicate: nothing to write
    stage_at = {**job.stage_at, **_stage_times(job, event, now)}
    if stage != job.stage and stage is not None and stage not in stage_at:
        stage_at = {**stage_at, stage: now}
    return replace(job, progress=reported, stage=stage, audio_seconds=seconds,
                   stage_at=stage_at, updated_at=now)


LEASE_ALIVE = Guard("the current attempt's lease is alive", lambda job, e, alive: alive)
SAME_ATTEMPT = Guard("the current attempt asks again (its answer was lost)",
                     lambda job, e, alive: job.attempt_id == e.attempt_id)
ATTEMPTS_SPENT = Guard("max_attempts deliveries have started it", _attempts_spent)
NOT_CURRENT = Guard("not from the current attempt", lambda job, e, alive: not is_current(job, e))
NOT_FORWARD = Guard("moves nothing forward (lower, earlier stage, duplicate, not a number)",
                    lambda job, e, alive: _progressed(job, e, "") is None)
HANDED_OFF = Guard("its attempt has handed the outcome off",
                   lambda job, e, alive: job.handoff is not None)
HANDED_OFF_COMPLETE = Guard("its attempt handed off a result (outputs stored)",
                            lambda job, e, alive: (job.handoff or {}).get("status") == COMPLETE)
HANDED_OFF_FAILED = Guard("its attempt handed off a failure",
                          lambda job, e, alive: (job.handoff or {}).get("status") == FAILED)
JOINING = Guard("split, every window stored: the join is sent again, not the job",
                lambda job, e, alive: joinable(job))
WITH_ERROR = Guard("with an error (the child hit the hard time limit)",
                   lambda job, e, alive: e.error is not None)

WRONG_PHASE = Guard(
    "a join's start before every window is stored, or the job task's once split",
    lambda job, e, alive: not joinable(job) if e.phase == JOIN else job.split is not None)
SPLITTING = Guard("split, with windows still to render (each window has its own lease)",
                  lambda job, e, alive: split_pending(job))
NO_WINDOW = Guard("no such window, or it is stored already",
                  lambda job, e, alive: (window_of(job, e) or {"done": True})["done"])
WINDOW_SAME_ATTEMPT = Guard(
    "the window's current attempt asks again (its answer was lost)",
    lambda job, e, alive: (window_of(job, e) or {}).get("attempt") == e.attempt_id)
WINDOW_SPENT = Guard("max_attempts deliveries have started the window",
                     lambda job, e, alive: (window_of(job, e) or {}).get("attempts", 0)
                     >= e.max_attempts)
WINDOW_NOT_FORWARD = Guard("moves the window's progress nothing forward",
                           lambda job, e, alive: _segment_progress(job, e) is None)

BEGIN = Change("a new attempt: attempts + 1, its id, stage downloading", _begin)
SPLIT = Change("the windows to render, stage rendering, no current attempt", _split)
WINDOW_BEGIN = Change("the window's new attempt: its attempts + 1, its id",
                      lambda job, e, status, now: replace(_with_window(
                          job, e, now, attempt=e.attempt_id, worker=e.worker,
                          attempts=(window_of(job, e) or {}).get("attempts", 0) + 1),
                          status=status))
WINDOW_PROGRESS = Change("the window's progress; the job's is the windows' mean",
                         lambda job, e, status, now: replace(_with_window(
                             job, e, now, progress=_segment_progress(job, e)), status=status))
WINDOW_DONE = Change("the window stored; all stored: stage finalizing",
                     lambda job, e, status, now: replace(_with_window(
                         job, e, now, progress=1.0, done=True, attempt=None, worker=None),
                         status=status))
WINDOW_END_ATTEMPT = Change("no current attempt of the window",
                            lambda job, e, status, now: replace(_with_window(
                                job, e, now, attempt=None, worker=None), status=status))
WINDOW_GIVE_UP = Change("error worker_lost (the window's)", _segment_give_up)
GIVE_UP = Change("error worker_lost", _give_up)
PROGRESS = Change("progress and stage (and the stage times it carries)",
                  lambda job, e, status, now: _progressed(job, e, now))
RESULT = Change("progress 1, stage done, the result (and the stage times it carries)",
                lambda job, e, status, now: replace(
    job, status=status, progress=1.0, stage=STAGE_DONE, result=e.result, updated_at=now,
    stage_at={**job.stage_at, **_stage_times(job, e, now)}))
ERROR = Change("the error", lambda job, e, status, now: replace(
    job, status=status, error=e.error, updated_at=now))
HAND_OFF = Change("the outcome to report, and when; the last progress it carries",
                  lambda job, e, status, now: replace(
    _progressed(job, e, now) or job, status=status, updated_at=now, handoff=(
        {"status": FAILED, "error": e.error, "at": now} if e.error is not None
        else {"status": COMPLETE, "result": e.result or {}, "at": now})))
RESULT_HANDED_OFF = Change("progress 1, stage done, the handed-off result",
                           lambda job, e, status, now: replace(
    job, status=status, progress=1.0, stage=STAGE_DONE,
    result=(job.handoff or {}).get("result"), updated_at=now))
ERROR_HANDED_OFF = Change("the handed-off error", lambda job, e, status, now: replace(
    job, status=status, error=(job.handoff or {}).get("error"), updated_at=now))
END_ATTEMPT = Change("no current attempt", lambda job, e, status, now: replace(
    job, status=status, attempt_id=None, worker=None, updated_at=now))

_LIVE = (QUEUED, RUNNING)

#: The job state machine: the first rule that matches (state, event and its ``when``)
#: decides, conditions included; an event no rule matches is ignored. Terminal states
#: have no rules, so they are sticky. ``docs/state-machine.md`` is rendered from this.
RULES: tuple[Rule, ...] = (
    Rule((QUEUED,), "reuse", None, COMPLETE, RESULT, None),
    Rule(_LIVE, "start", WRONG_PHASE, None, None, None),
    Rule((QUEUED,), "start", ATTEMPTS_SPENT, FAILED, GIVE_UP, "drop"),
    Rule((QUEUED,), "start", None, RUNNING, BEGIN, "set"),
    Rule((RUNNING,), "start", SAME_ATTEMPT, None, None, "set"),
    Rule((RUNNING,), "start", LEASE_ALIVE, None, None, None),
    Rule((RUNNING,), "start", HANDED_OFF, None, None, None),
    Rule((RUNNING,), "start", ATTEMPTS_SPENT, FAILED, GIVE_UP, "drop"),
    Rule((RUNNING,), "start", None, RUNNING, BEGIN, "set"),
    Rule((RUNNING,), "progress", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "progress", HANDED_OFF, None, None, None),
    Rule((RUNNING,), "progress", NOT_FORWARD, None, None, "set"),
    Rule((RUNNING,), "progress", None, RUNNING, PROGRESS, "set"),
    Rule((RUNNING,), "hand_off", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "hand_off", None, RUNNING, HAND_OFF, "hold"),
    Rule((RUNNING,), "complete", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "complete", None, COMPLETE, RESULT, "drop"),
    Rule((RUNNING,), "fail", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "fail", None, FAILED, ERROR, "drop"),
    Rule((RUNNING,), "release", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "release", WITH_ERROR, FAILED, ERROR, "drop"),
    Rule((RUNNING,), "release", None, RUNNING, END_ATTEMPT, "drop"),
    Rule(_LIVE, "cancel", None, CANCELED, ERROR, "drop"),
    Rule(_LIVE, "time_out", None, TIMED_OUT, ERROR, "drop"),
    Rule((RUNNING,), "requeue", LEASE_ALIVE, None, None, None),
    Rule((RUNNING,), "requeue", HANDED_OFF_COMPLETE, COMPLETE, RESULT_HANDED_OFF, "drop"),
    Rule((RUNNING,), "requeue", HANDED_OFF_FAILED, FAILED, ERROR_HANDED_OFF, "drop"),
    Rule((RUNNING,), "requeue", SPLITTING, None, None, None),
    Rule((RUNNING,), "requeue", ATTEMPTS_SPENT, FAILED, GIVE_UP, "drop"),
    Rule((RUNNING,), "requeue", JOINING, RUNNING, END_ATTEMPT, None),
    Rule((RUNNING,), "requeue", None, QUEUED, END_ATTEMPT, None),
    Rule((RUNNING,), "split", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "split", HANDED_OFF, None, None, None),
    Rule((RUNNING,), "split", None, RUNNING, SPLIT, "drop"),
    Rule((RUNNING,), "segment_start", NO_WINDOW, None, None, None),
    Rule((RUNNING,), "segment_start", WINDOW_SAME_ATTEMPT, None, None, "set"),
    Rule((RUNNING,), "segment_start", LEASE_ALIVE, None, None, None),
    Rule((RUNNING,), "segment_start", WINDOW_SPENT, FAILED, WINDOW_GIVE_UP, "drop"),
    Rule((RUNNING,), "segment_start", None, RUNNING, WINDOW_BEGIN, "set"),
    Rule((RUNNING,), "segment_progress", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "segment_progress", WINDOW_NOT_FORWARD, None, None, "set"),
    Rule((RUNNING,), "segment_progress", None, RUNNING, WINDOW_PROGRESS, "set"),
    Rule((RUNNING,), "segment_end", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "segment_end", WITH_ERROR, FAILED, ERROR, "drop"),
    Rule((RUNNING,), "segment_end", None, RUNNING, WINDOW_DONE, "drop"),
    Rule((RUNNING,), "segment_release", NOT_CURRENT, None, None, None),
    Rule((RUNNING,), "segment_release", WITH_ERROR, FAILED, ERROR, "drop"),
    Rule((RUNNING,), "segment_release", None, RUNNING, WINDOW_END_ATTEMPT, "drop"),
    Rule((RUNNING,), "segment_requeue", NO_WINDOW, None, None, None),
    Rule((RUNNING,), "segment_requeue", LEASE_ALIVE, None, None, None),
    Rule((RUNNING,), "segment_requeue", WINDOW_SPENT, FAILED, WINDOW_GIVE_UP, "drop"),
    Rule((RUNNING,), "segment_requeue", None, RUNNING, WINDOW_END_ATTEMPT, None),
)


def rule_for(job: Job, event: Event, lease_alive: bool = False) -> Rule | None:
    """The rule that decides ``event`` on ``job``, or None (ignored, the lease untouched)."""
    for rule in RULES:
        if job.status in rule.states and event.kind == rule.event and (
            rule.when is None or rule.when.test(job, event, lease_alive)
        ):
            return rule
    return None


def decide(
    job: Job, event: Event, now: str | None = None, lease_alive: bool = False
) -> tuple[Job | None, LeaseAction]:
    """What the first matching rule of ``RULES`` says ``event`` does: the new record
    (None when the event is ignored) and what happens to the lease.

    ``lease_alive``: whether the current attempt's lease key exists.
    """
    rule = rule_for(job, event, lease_alive)
    if rule is None:
        return None, None
    if rule.then is None or rule.change is None:
        return None, rule.lease
    return rule.change.make(job, event, rule.then, now or utcnow()), rule.lease


def apply(
    job: Job, event: Event, now: str | None = None, lease_alive: bool = False
) -> Job | None:
    """The record after ``event``, or None when the event is to be ignored."""
    return decide(job, event, now, lease_alive)[0]


def lease_action(job: Job, event: Event, lease_alive: bool = False) -> LeaseAction:
    """What ``event`` does to the lease: a start takes it, the current attempt's
    progress renews it, a hand-off holds it, an end (or the parent's release) drops it."""
    rule = rule_for(job, event, lease_alive)
    return rule.lease if rule is not None else None


def timings(job: Job) -> dict[str, float] | None:
    """Seconds the completed job spent queued, rendering (from the start of its last
    attempt to its upload) and uploading (to the end); None until it is complete."""
    if job.status != COMPLETE or not job.started_at:
        return None
    created, started, ended = (epoch_of(t) for t in (job.created_at, job.started_at,
                                                     job.updated_at))
    uploading = epoch_of(job.stage_at["uploading"]) if "uploading" in job.stage_at else ended
    return {
        "queued": round(max(started - created, 0.0), 3),
        "rendering": round(max(uploading - started, 0.0), 3),
        "uploading": round(max(ended - uploading, 0.0), 3),
    }


def segments(job: Job) -> dict[str, int] | None:
    """How a split job's windows stand (``segments`` in the API); None if not split."""
    if job.split is None:
        return None
    windows = job.split["windows"]
    return {"total": len(windows), "done": sum(w["done"] for w in windows),
            "running": sum(1 for w in windows if not w["done"] and w["attempt"])}


def _stage_rank(stage: str | None) -> int:
    """Known stages in their order; an unknown one ranks with the one before it."""
    return STAGES.index(stage) if stage in STAGES else -1


#: Jobs of one tenant created in the same millisecond that a page boundary can fall
#: among (more than this many in one millisecond would be skipped).
TIE_SLACK = 64


@dataclass(frozen=True)
class Report:
    """What `JobStore.apply` did: the record now, whether the event changed it,
    and whether the event came from the job's current attempt."""

    job: Job
    applied: bool
    current: bool


class JobStore:
    """Job records as JSON strings in Redis, changed only through `apply`.

    Updates use WATCH/MULTI so two reports racing for one job never lose each
    other's effect: the loser re-reads and re-applies. The lease key is watched
    with the record, so "the lease is dead" and "take the job over" are one step.
    """

    def __init__(self, client: redis.Redis, lease_seconds: float = 60,
                 handoff_seconds: float = HANDOFF_SECONDS) -> None:
        self.redis = client
        self.lease_seconds = lease_seconds
        self.handoff_seconds = handoff_seconds
        self._claim_output = client.register_script(_CLAIM_OUTPUT)

    @classmethod
    def from_url(cls, url: str, lease_seconds: float = 60,
                 handoff_seconds: float = HANDOFF_SECONDS) -> JobStore:
        return cls(redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3),
                   lease_seconds, handoff_seconds)

    def create(self, job: Job) -> None:
        with unavailable_on_connection_error():
            deadline = epoch_of(job.deadline_at) if job.deadline_at else float("inf")
            created_at = epoch_of(job.created_at)
            pipe = self.redis.pipeline(transaction=True)
            pipe.set(job_redis_key(job.job_id), job.to_json(), nx=True, ex=RECORD_TTL_SECONDS)
            pipe.zadd(ACTIVE_JOBS_REDIS_KEY, {job.job_id: deadline})
            # the queue's waiting set takes it when fair share sends it (jobs.fairshare)
            tenant_queued = tenant_queued_redis_key(job.tenant)
            pipe.zadd(tenant_queued, {job.job_id: created_at})
            pipe.zremrangebyscore(tenant_queued, "-inf", created_at - RECORD_TTL_SECONDS)
            tenant_jobs = tenant_jobs_redis_key(job.tenant)
            pipe.zadd(tenant_jobs, {job.job_id: created_at})
            pipe.zremrangebyscore(tenant_jobs, "-inf", created_at - RECORD_TTL_SECONDS)
            created = pipe.execute()[0]
            if not created:
                raise ValueError(f"job {job.job_id} exists")

    def delete(self, job: Job) -> None:
        """Only for undoing a create whose task could not be sent."""
        with unavailable_on_connection_error():
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(job_redis_key(job.job_id))
            pipe.zrem(ACTIVE_JOBS_REDIS_KEY, job.job_id)
            pipe.zrem(queued_redis_key(QUEUE_BY_KIND[job.kind]), job.job_id)
            pipe.zrem(tenant_queued_redis_key(job.tenant), job.job_id)
            pipe.zrem(tenant_jobs_redis_key(job.tenant), job.job_id)
            pipe.execute()

    def tenant_jobs(
        self, tenant: str, after: tuple[float, str] | None, count: int
    ) -> list[tuple[str, float]]:
        """A tenant's job ids, newest first, after the ``(score, id)`` of the last
        one seen. Jobs created in the same millisecond share a score; Redis orders
        those by id (descending), so the id settles where the last page ended."""
        high = "+inf" if after is None else repr(after[0])
        slack = 0 if after is None else TIE_SLACK
        with unavailable_on_connection_error():
            rows = self.redis.zrevrangebyscore(tenant_jobs_redis_key(tenant), high, "-inf",
                                               start=0, num=count + slack, withscores=True)
        found = [(member.decode(), score) for member, score in rows]
        if after is not None:
            found = [(m, sc) for m, sc in found if not (sc == after[0] and m >= after[1])]
        return found[:count]

    def get_many(self, job_ids: list[str]) -> list[Job | None]:
        if not job_ids:
            return []
        with unavailable_on_connection_error():
            raws = self.redis.mget([job_redis_key(job_id) for job_id in job_ids])
        return [Job.from_json(raw) if raw is not None else None for raw in raws]

    def get(self, job_id: str) -> Job:
        with unavailable_on_connection_error():
            raw = self.redis.get(job_redis_key(job_id))
        if raw is None:
            raise JobNotFound(job_id)
        return Job.from_json(raw)

    def apply(self, job_id: str, event: Event) -> Report:
        """Apply ``event`` (as ``RULES`` says) with its effect on the lease and on the
        set of active jobs, in one transaction."""
        key, lease = job_redis_key(job_id), _lease_key(job_id, event.segment)
        outcome: list[Report] = []

        def update(pipe: redis.client.Pipeline) -> None:
            raw, held = pipe.mget(key, lease)  # the record and its lease: one round trip
            if raw is None:
                raise JobNotFound(job_id)
            job = Job.from_json(raw)
            changed, action = decide(job, event, lease_alive=held is not None)
            pipe.multi()
            if changed is not None:
                pipe.set(key, changed.to_json(), ex=RECORD_TTL_SECONDS)
                waiting = queued_redis_key(QUEUE_BY_KIND[job.kind])
                tenant_queued = tenant_queued_redis_key(job.tenant)
                if job.status == QUEUED and changed.status != QUEUED:
                    pipe.zrem(waiting, job_id)
                    pipe.zrem(tenant_queued, job_id)
                elif changed.status == QUEUED and job.status != QUEUED:
                    # re-sent (still in flight for fair share): at the back
                    pipe.zadd(waiting, {job_id: time.time()})
                    pipe.zadd(tenant_queued, {job_id: time.time()})
                if changed.split is not None and job.split is None:
                    # the reaper removes work/{jobId}/ once the job has ended
                    pipe.hset(WORK_REDIS_KEY, job_id, len(changed.split["windows"]))
                if changed.terminal:
                    pipe.zrem(ACTIVE_JOBS_REDIS_KEY, job_id)
                    if changed.webhook_url:
                        # in the same transaction: an ended job never misses its webhook
                        DeliveryStore.add(pipe, Delivery.for_job(
                            job_id, changed.tenant, changed.webhook_url))
            if action in ("set", "hold"):
                attempt = (changed or job).attempt_id
                if event.segment is not None:
                    attempt = (window_of(changed or job, event) or {}).get("attempt")
                seconds = self.handoff_seconds if action == "hold" else self.lease_seconds
                pipe.set(lease, attempt or "", px=int(seconds * 1000))
            elif action == "drop":
                pipe.delete(lease)
            if event.kind in ("start", "segment_start"):
                current = ((changed is not None and changed.status == RUNNING
                            and is_current(changed, event))
                           or (changed is None and job.status == RUNNING
                               and is_current(job, event)))
            elif event.kind in ("release", "segment_release"):
                current = is_current(job, event)
            else:
                current = is_current(changed or job, event)
            outcome[:] = [Report(changed or job, changed is not None, current)]

        with unavailable_on_connection_error():
            self.redis.transaction(update, key, lease)
        return outcome[0]

    def lease_alive(self, job_id: str, segment: int | None = None) -> bool:
        """Whether the job's lease lives (or window ``segment``'s, of a split job)."""
        with unavailable_on_connection_error():
            return self.redis.exists(_lease_key(job_id, segment)) > 0

    def active(self, batch: int = 500) -> Iterator[tuple[str, float]]:
        """Every job not yet ended, with its deadline (epoch seconds)."""
        with unavailable_on_connection_error():
            for member, score in self.redis.zscan_iter(ACTIVE_JOBS_REDIS_KEY, count=batch):
                yield member.decode(), score

    def forget_active(self, job_id: str) -> None:
        """Drop a job from the active set and the queues' waiting sets (its record
        expired or ended), so it counts in no queue position or depth."""
        with unavailable_on_connection_error():
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(ACTIVE_JOBS_REDIS_KEY, job_id)
            for queue in set(QUEUE_BY_KIND.values()):
                pipe.zrem(queued_redis_key(queue), job_id)
            pipe.execute()

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

    def claim_output(self, output_key: str, tenant: str) -> OutputClaim:
        """Let ``tenant`` write ``output_key`` if no other tenant owns it and no claimed key
        is a folder of it or lies in it; first come, owner for good after (the claim has
        no expiry, as the object has none). One Lua script: two submissions racing for a
        key, or for a file and a folder of one name, cannot both win."""
        folders = folders_of(output_key)
        with unavailable_on_connection_error():
            found = self._claim_output(
                keys=[output_redis_key(output_key), OUTPUT_FOLDERS_REDIS_KEY,
                      *(output_redis_key(folder) for folder in folders)],
                args=[tenant, output_key, *folders],
            )
        return found.decode() if isinstance(found, bytes) else found


def _lease_key(job_id: str, segment: int | None) -> str:
    """The lease a report is about: the job's, or window ``segment``'s of a split job."""
    return lease_redis_key(job_id) if segment is None else segment_lease_redis_key(
        job_id, segment)


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
