"""Per-tenant submission limits in Redis: a token bucket of submissions per minute and
a ceiling on queued jobs, checked and taken in one Lua script, so the limits hold
across gunicorn processes and API replicas (no process keeps a count of its own).

The bucket holds ``per_minute`` tokens and refills at ``per_minute`` a minute; a
submission takes one. The queued jobs are the tenant's set of jobs not yet started
(``tenant_queued_redis_key``, kept by `JobStore`); a submission that is let in is
added to it by the script itself, so two racing submissions cannot both take the
last place. A refused submission takes nothing. Time is Redis's own (``TIME``), one
clock for every replica.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import redis

from jobs.constants import rate_bucket_redis_key, tenant_queued_redis_key
from jobs.store import unavailable_on_connection_error

#: The bucket's window: it refills completely in this many seconds.
WINDOW_SECONDS = 60

#: KEYS: the bucket hash, the tenant's queued set. ARGV: per minute (0: no rate limit),
#: max queued (0: no ceiling), the job id, the window. Returns {allowed, refused by
#: ("" | "rate" | "queued"), tokens left, queued now}.
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local size = tonumber(ARGV[1])
local ceiling = tonumber(ARGV[2])
local window = tonumber(ARGV[4])
local tokens = size
if size > 0 then
  local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
  local at = tonumber(bucket[2]) or now
  tokens = math.min(size, (tonumber(bucket[1]) or size) + math.max(0, now - at) * size / window)
end
local queued = redis.call('ZCARD', KEYS[2])
local refused = ''
if size > 0 and tokens < 1 then
  refused = 'rate'
elseif ceiling > 0 and queued >= ceiling then
  refused = 'queued'
else
  if size > 0 then tokens = tokens - 1 end
  queued = queued + 1
  redis.call('ZADD', KEYS[2], now, ARGV[3])
end
if size > 0 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], window + 1)
end
return {refused == '' and 1 or 0, refused, tostring(tokens), queued}
"""


@dataclass(frozen=True)
class Decision:
    """What the limiter said about one submission, and where the tenant stands."""

    allowed: bool
    refused_by: Literal["", "rate", "queued"]
    per_minute: int
    max_queued: int
    #: Tokens left in the bucket (fractional: it refills continuously).
    tokens: float
    #: The tenant's queued jobs, this one included if it was let in.
    queued: int

    @property
    def rate(self) -> float:
        """Tokens gained per second."""
        return self.per_minute / WINDOW_SECONDS

    @property
    def seconds_to_token(self) -> int:
        """Seconds until the bucket holds a whole token again (0: it does)."""
        return 0 if self.tokens >= 1 or not self.rate else math.ceil((1 - self.tokens) / self.rate)

    @property
    def seconds_to_full(self) -> int:
        """Seconds until the bucket is full again."""
        return math.ceil((self.per_minute - self.tokens) / self.rate) if self.rate else 0


class LimitStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._take = client.register_script(_TAKE)

    def take(self, tenant: str, job_id: str, per_minute: int, max_queued: int) -> Decision:
        """Let ``job_id`` in (a token taken, a queued place held for it) or refuse it."""
        with unavailable_on_connection_error():
            allowed, refused, tokens, queued = self._take(
                keys=[rate_bucket_redis_key(tenant), tenant_queued_redis_key(tenant)],
                args=[per_minute, max_queued, job_id, WINDOW_SECONDS])
        refused_by = refused.decode() if isinstance(refused, bytes) else refused
        return Decision(bool(allowed), refused_by, per_minute, max_queued,
                        float(tokens), int(queued))

    def give_back(self, tenant: str, job_id: str) -> None:
        """The place held for a submission that failed after it was let in (its token
        is spent: the request was made)."""
        with unavailable_on_connection_error():
            self.redis.zrem(tenant_queued_redis_key(tenant), job_id)
