"""Fair share of a queue between tenants: per-tenant pending lists in Redis, moved into
the broker a unit at a time, at most ``limit`` units of a tenant in flight.

A *unit* is one task's worth of work, named by its task id: a job's own task (its
job id), a window of a split render (``{jobId}.{index}``) or its join
(``{jobId}.join``). Each queue (``render``, ``preview``) has, per tenant:

    pending:{tenant}   list of units waiting for a turn, oldest first
    inflight:{tenant}  hash unit -> when it was released (sent, not yet ended)
    tenants            the tenants with units in either

and the queue's ``queued`` sorted set holds the released *jobs* not yet started (a
released job's rank there is its ``queuePosition``).

Every change is one Lua script (`step`): units that ended leave the in-flight hash
(and the pending list, if they never got a turn), new units join the pending list,
then units move from the pending list to the in-flight hash while the tenant is
under its limit. The script returns what it moved; the caller sends those. A
process that dies between the script and the send leaves units in flight with no
message in the broker: the reaper sends those again (``api.reaper``), so nothing is
lost between the list and the broker.

Fairness comes from the limit: a tenant never has more than ``limit`` units sent and
not ended, so another tenant's unit, sent as soon as that tenant is under its own
limit, waits in the broker behind at most ``limit`` units of each other tenant
(fewer: those already running are not ahead of it). A tenant's pending units go to
the broker as its own units end: one out, one in.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from jobs.constants import (
    fair_inflight_redis_key,
    fair_pending_redis_key,
    fair_tenants_redis_key,
    queued_redis_key,
)
from jobs.store import unavailable_on_connection_error

#: KEYS: pending list, in-flight hash, tenants set, the queue's released-jobs zset.
#: ARGV: limit, now, tenant, front (1: new units go first), number of ended units,
#: the ended units, then the new units. Returns the units moved into flight.
_STEP = """
local limit = tonumber(ARGV[1])
local ended = tonumber(ARGV[5])
for i = 6, 5 + ended do
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('LREM', KEYS[1], 0, ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
end
if ARGV[4] == '1' then
  for i = #ARGV, 6 + ended, -1 do redis.call('LPUSH', KEYS[1], ARGV[i]) end
else
  for i = 6 + ended, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
end
local moved = {}
while redis.call('HLEN', KEYS[2]) < limit do
  local unit = redis.call('LPOP', KEYS[1])
  if not unit then break end
  redis.call('HSET', KEYS[2], unit, ARGV[2])
  if not string.find(unit, '.', 1, true) then
    redis.call('ZADD', KEYS[4], ARGV[2], unit)
  end
  moved[#moved + 1] = unit
end
if redis.call('HLEN', KEYS[2]) == 0 and redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[3])
else
  redis.call('SADD', KEYS[3], ARGV[3])
end
return moved
"""


@dataclass(frozen=True)
class Standing:
    """Where a unit is: waiting its turn (``pending``, with its index in its tenant's
    list), sent and not ended (``inflight``, since ``released_at``), or neither."""

    pending: int | None = None
    released_at: float | None = None

    @property
    def inflight(self) -> bool:
        return self.released_at is not None


class FairShareStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._step = client.register_script(_STEP)

    def step(self, queue: str, tenant: str, limit: int, *, ended: Sequence[str] = (),
             added: Sequence[str] = (), front: bool = False) -> list[str]:
        """Drop ``ended`` units, queue ``added`` ones (first in line if ``front``), then
        move the tenant's units into flight while it is under ``limit``: the units to
        send now, in order."""
        keys = [fair_pending_redis_key(queue, tenant), fair_inflight_redis_key(queue, tenant),
                fair_tenants_redis_key(queue), queued_redis_key(queue)]
        args = [limit, repr(time.time()), tenant, int(front), len(ended), *ended, *added]
        with unavailable_on_connection_error():
            moved = self._step(keys=keys, args=args)
        return [unit.decode() for unit in moved]

    def tenants(self, queue: str) -> list[str]:
        """Tenants with units pending or in flight in ``queue``."""
        with unavailable_on_connection_error():
            return sorted(member.decode() for member in
                          self.redis.smembers(fair_tenants_redis_key(queue)))

    def inflight(self, queue: str, tenant: str) -> dict[str, float]:
        """The tenant's units in flight in ``queue``, with when each was released."""
        with unavailable_on_connection_error():
            raw = self.redis.hgetall(fair_inflight_redis_key(queue, tenant))
        return {unit.decode(): float(at) for unit, at in raw.items()}

    def standing(self, queue: str, tenant: str, units: Iterable[str]) -> dict[str, Standing]:
        """Where each unit is, in one round trip."""
        units = list(units)
        if not units:
            return {}
        with unavailable_on_connection_error():
            # one MULTI: a unit moving from the line into flight meanwhile is seen in one
            pipe = self.redis.pipeline(transaction=True)
            for unit in units:
                pipe.hget(fair_inflight_redis_key(queue, tenant), unit)
                pipe.lpos(fair_pending_redis_key(queue, tenant), unit)
            answers = pipe.execute()
        return {unit: Standing(pending=answers[2 * i + 1],
                               released_at=float(answers[2 * i]) if answers[2 * i] else None)
                for i, unit in enumerate(units)}

    def position(self, queue: str, tenant: str, job_id: str) -> int:
        """How many units start before this queued job, as round-robin gives turns.

        Released (in the broker): the released jobs sent before it. Pending at index
        ``i`` of its tenant's list: every released job, the ``i`` units of its tenant
        ahead of it, and of each other tenant as many units as get a turn meanwhile
        (one per turn of its own tenant: ``min(their pending, i + 1)``)."""
        with unavailable_on_connection_error():
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrank(queued_redis_key(queue), job_id)
            pipe.zcard(queued_redis_key(queue))
            pipe.lpos(fair_pending_redis_key(queue, tenant), job_id)
            pipe.smembers(fair_tenants_redis_key(queue))
            rank, released, index, tenants = pipe.execute()
            if rank is not None:
                return rank
            if index is None:
                return released  # moving from the list into the broker: at its back
            others = sorted(t.decode() for t in tenants if t.decode() != tenant)
            pipe = self.redis.pipeline(transaction=False)
            for other in others:
                pipe.llen(fair_pending_redis_key(queue, other))
            waiting = pipe.execute()
        return released + index + sum(min(count, index + 1) for count in waiting)

    def depth(self, queue: str) -> int:
        """Units waiting in ``queue``: released jobs not started, and every pending unit."""
        with unavailable_on_connection_error():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(queued_redis_key(queue))
            pipe.smembers(fair_tenants_redis_key(queue))
            released, tenants = pipe.execute()
            pipe = self.redis.pipeline(transaction=False)
            for tenant in tenants:
                pipe.llen(fair_pending_redis_key(queue, tenant.decode()))
            return released + sum(pipe.execute())
