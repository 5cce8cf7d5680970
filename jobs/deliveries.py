"""Client webhook deliveries: one per ended job that asked for one (``webhookUrl``).

A delivery is created in the same Redis transaction that ends the job (see
`jobs.store.JobStore.apply`), so an ended job never misses its webhook
because the API died at the wrong moment. It is due at once; the reaper's tick
(and the API, right away) hands due deliveries to workers, each claim pushing the
due time out by CLAIM_SECONDS so a worker that dies mid-POST only delays it. Each
attempt's outcome comes back to the API, which records it and schedules the next
try: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then daily until 3 days have passed
(at-least-once, the same ``webhook-id`` every time, as Standard Webhooks asks).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import redis

from jobs.constants import (
    DELIVERY_CLAIMS_REDIS_KEY,
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_STATES,
    DUE_DELIVERIES_REDIS_KEY,
    RECORD_TTL_SECONDS,
    delivery_redis_key,
)
from jobs.errors import JobNotFound

#: Waits after the 1st, 2nd, ... failed attempt; then DAILY until GIVE_UP_AFTER.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
DAILY = 24 * 3600
GIVE_UP_AFTER = 3 * 24 * 3600
#: A claimed delivery not reported back within this is due again (its worker died).
CLAIM_SECONDS = 120

State = Literal[DELIVERY_STATES]  # type: ignore[valid-type]


class StaleClaim(Exception):
    """A delivery task that is not the one handed out last (a copy that ran late)."""


def next_delay(failures: int, since_first: float, scale: float = 1.0) -> float | None:
    """Seconds until the next try after ``failures`` failed attempts, the first one
    ``since_first`` seconds ago; None once the 3 days are used up. ``scale``
    shrinks the schedule for tests (WEBHOOK_RETRY_SCALE)."""
    base = RETRY_DELAYS[failures - 1] if failures <= len(RETRY_DELAYS) else DAILY
    delay = base * scale
    if since_first + delay > GIVE_UP_AFTER * scale:
        return None
    return delay


def retryable(status: int | None) -> bool:
    """Timeouts and connection errors (no status), 5xx and 429 are retried; other
    answers are final (2xx delivered, 4xx refused by the receiver)."""
    return status is None or status == 429 or status >= 500


@dataclass(frozen=True)
class Delivery:
    job_id: str
    tenant: str
    webhook_id: str
    url: str
    created_at: float = field(default_factory=time.time)
    state: State = DELIVERY_PENDING
    attempts: tuple[dict[str, Any], ...] = ()
    next_attempt_at: float | None = None
    #: When the current round of tries began (creation, or the last redeliver):
    #: the schedule and its 3 days count from here.
    round_started: float = 0.0

    def __post_init__(self) -> None:
        if not self.round_started:
            object.__setattr__(self, "round_started", self.created_at)

    @classmethod
    def for_job(cls, job_id: str, tenant: str, url: str) -> Delivery:
        # One id per job, on every try and every redelivery: receivers dedupe on it.
        return cls(job_id=job_id, tenant=tenant, webhook_id=f"msg_{job_id}", url=url)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Delivery:
        data = json.loads(raw)
        data["attempts"] = tuple(data.get("attempts", ()))
        return cls(**data)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came back with, and what it means for the schedule."""

    status: int | None
    final_error: bool  # a failure no retry can fix (the URL is now forbidden)
    delay: float | None  # seconds until the next try; None once the 3 days are used up


@dataclass(frozen=True)
class DeliveryRule:
    """``states`` + ``event`` [+ ``when``] -> ``then`` (None: the state stays)."""

    states: tuple[State, ...]
    event: Literal["outcome", "redeliver"]
    when: str | None
    test: Callable[[Outcome], bool] | None
    then: State | None
    effect: str


_ALL: tuple[State, ...] = DELIVERY_STATES

#: The delivery state machine: the first rule that matches decides. Every outcome is
#: added to the attempts; ``docs/state-machine.md`` is rendered from this.
DELIVERY_RULES: tuple[DeliveryRule, ...] = (
    DeliveryRule((DELIVERY_DELIVERED, DELIVERY_FAILED), "outcome", "a late or duplicate outcome",
                 None, None, "the attempt is recorded, nothing else changes"),
    DeliveryRule((DELIVERY_PENDING,), "outcome", "a 2xx answer",
                 lambda o: o.status is not None and 200 <= o.status < 300, DELIVERY_DELIVERED,
                 "no next try"),
    DeliveryRule((DELIVERY_PENDING,), "outcome", "another 4xx, or a URL now forbidden",
                 lambda o: o.final_error or not retryable(o.status), DELIVERY_FAILED,
                 "no next try"),
    DeliveryRule((DELIVERY_PENDING,), "outcome", "retryable, but the 3 days are used up",
                 lambda o: o.delay is None, DELIVERY_FAILED, "no next try"),
    DeliveryRule((DELIVERY_PENDING,), "outcome",
                 "retryable (timeout, connection error, 5xx, 429)", None, DELIVERY_PENDING,
                 "the next try after the schedule's delay"),
    DeliveryRule(_ALL, "redeliver", None, None, DELIVERY_PENDING,
                 "a new round of tries, due now, the same webhook id"),
)


def _delivery_rule(state: State, event: str, outcome: Outcome | None = None) -> DeliveryRule:
    for rule in DELIVERY_RULES:
        if state in rule.states and rule.event == event and (
            rule.test is None or (outcome is not None and rule.test(outcome))
        ):
            return rule
    raise AssertionError(f"no delivery rule for {state} + {event}")  # the table is total


def redelivered(delivery: Delivery, now: float) -> Delivery:
    """A new round of tries, due now, with the same webhook id; history kept."""
    rule = _delivery_rule(delivery.state, "redeliver")
    return replace(delivery, state=rule.then or delivery.state, next_attempt_at=now,
                   round_started=now)


def after_attempt(
    delivery: Delivery, status: int | None, error: str | None, duration_ms: int,
    now: float, scale: float = 1.0, final_error: bool = False,
) -> Delivery:
    """The delivery once an attempt's outcome is known, as ``DELIVERY_RULES`` says.
    ``final_error``: a failure no retry can fix (the URL is now forbidden)."""
    attempt = {"at": now, "statusCode": status, "error": error, "durationMs": duration_ms}
    attempts = (*delivery.attempts, attempt)
    failures = sum(1 for a in attempts if a["at"] >= delivery.round_started)
    delay = next_delay(failures, now - delivery.round_started, scale)
    rule = _delivery_rule(delivery.state, "outcome", Outcome(status, final_error, delay))
    if rule.then is None:
        return replace(delivery, attempts=attempts)
    due = now + delay if rule.then == DELIVERY_PENDING and delay is not None else None
    return replace(delivery, state=rule.then, attempts=attempts, next_attempt_at=due)


class DeliveryStore:
    """Delivery records in Redis and the sorted set of those due."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def add(pipe: redis.client.Pipeline, delivery: Delivery) -> None:
        """Queue the writes that create ``delivery``, due now (inside a MULTI)."""
        pipe.set(delivery_redis_key(delivery.job_id), delivery.to_json(), ex=RECORD_TTL_SECONDS)
        pipe.zadd(DUE_DELIVERIES_REDIS_KEY, {delivery.job_id: delivery.created_at})

    def get(self, job_id: str) -> Delivery | None:
        raw = self.redis.get(delivery_redis_key(job_id))
        return Delivery.from_json(raw) if raw is not None else None

    def claim_due(
        self, now: float, limit: int = 100, job_id: str | None = None
    ) -> list[tuple[str, str]]:
        """Deliveries due now (or ``job_id``'s), each pushed CLAIM_SECONDS out and
        given a new claim token, so two dispatchers never hand out the same attempt
        and only the newest task of a delivery may make it."""
        if job_id is not None:
            candidates = [job_id]
        else:
            candidates = [m.decode() for m in self.redis.zrangebyscore(
                DUE_DELIVERIES_REDIS_KEY, "-inf", now, start=0, num=limit)]
        claimed = []
        for candidate in candidates:
            token = uuid.uuid4().hex

            def claim(pipe: redis.client.Pipeline, member: str = candidate,
                      token: str = token) -> bool:
                score = pipe.zscore(DUE_DELIVERIES_REDIS_KEY, member)
                pipe.multi()
                if score is None or score > now:
                    return False
                pipe.zadd(DUE_DELIVERIES_REDIS_KEY, {member: now + CLAIM_SECONDS})
                pipe.hset(DELIVERY_CLAIMS_REDIS_KEY, member, token)
                return True

            if self.redis.transaction(claim, DUE_DELIVERIES_REDIS_KEY, value_from_callable=True):
                claimed.append((candidate, token))
        return claimed

    def claim_of(self, job_id: str) -> str | None:
        token = self.redis.hget(DELIVERY_CLAIMS_REDIS_KEY, job_id)
        return token.decode() if token is not None else None

    def forget(self, job_id: str) -> None:
        """Stop handing out a delivery whose records are gone (expired)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(DUE_DELIVERIES_REDIS_KEY, job_id)
        pipe.hdel(DELIVERY_CLAIMS_REDIS_KEY, job_id)
        pipe.execute()

    def update(self, job_id: str, change: Any, claim: str | None = None) -> Delivery:
        """Apply ``change(delivery) -> delivery`` atomically and reschedule it; with
        ``claim``, only if it is the delivery's current claim (`StaleClaim` if not),
        which it then uses up."""
        key = delivery_redis_key(job_id)
        out: list[Delivery] = []

        def run(pipe: redis.client.Pipeline) -> None:
            raw = pipe.get(key)
            if raw is None:
                raise JobNotFound(job_id)
            if claim is not None:
                current = pipe.hget(DELIVERY_CLAIMS_REDIS_KEY, job_id)
                if current is None or current.decode() != claim:
                    raise StaleClaim(job_id)
            changed = change(Delivery.from_json(raw))
            pipe.multi()
            if claim is not None:
                pipe.hdel(DELIVERY_CLAIMS_REDIS_KEY, job_id)
            pipe.set(key, changed.to_json(), ex=RECORD_TTL_SECONDS)
            if changed.state == DELIVERY_PENDING and changed.next_attempt_at is not None:
                pipe.zadd(DUE_DELIVERIES_REDIS_KEY, {job_id: changed.next_attempt_at})
            elif changed.state != DELIVERY_PENDING:
                pipe.zrem(DUE_DELIVERIES_REDIS_KEY, job_id)
            out[:] = [changed]

        self.redis.transaction(run, key, DELIVERY_CLAIMS_REDIS_KEY)
        return out[0]
