"""``Idempotency-Key``: the same key and request within 24 h get the same response.

One Redis key per (tenant, Idempotency-Key) holds the request's fingerprint and,
once the first request has finished, its response. `begin` claims the key
atomically (SET NX), so of any number of concurrent requests exactly one does
the work; the others wait for its response or learn that their body differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import redis

from jobs.constants import IDEMPOTENCY_TTL_SECONDS, idempotency_redis_key
from jobs.store import unavailable_on_connection_error

Outcome = Literal["new", "replay", "mismatch", "pending"]


@dataclass(frozen=True)
class Stored:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Begin:
    outcome: Outcome
    response: Stored | None = None


class IdempotencyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @staticmethod
    def _key(tenant: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return idempotency_redis_key(tenant, digest)

    def begin(self, tenant: str, idempotency_key: str, fingerprint: str) -> Begin:
        key = self._key(tenant, idempotency_key)
        claim = json.dumps({"fingerprint": fingerprint})
        with unavailable_on_connection_error():
            if self.redis.set(key, claim, nx=True, ex=IDEMPOTENCY_TTL_SECONDS):
                return Begin("new")
            raw = self.redis.get(key)
        if raw is None:  # expired or abandoned in between: try once more
            return self.begin(tenant, idempotency_key, fingerprint)
        record = json.loads(raw)
        if record["fingerprint"] != fingerprint:
            return Begin("mismatch")
        if "status" not in record:
            return Begin("pending")
        return Begin("replay", Stored(record["status"], record["body"], record["headers"]))

    def finish(self, tenant: str, idempotency_key: str, fingerprint: str, response: Stored):
        record = {"fingerprint": fingerprint, "status": response.status, "body": response.body,
                  "headers": response.headers}
        with unavailable_on_connection_error():
            self.redis.set(self._key(tenant, idempotency_key), json.dumps(record),
                           ex=IDEMPOTENCY_TTL_SECONDS)

    def abandon(self, tenant: str, idempotency_key: str) -> None:
        """The request failed: forget the claim, so a retry does the work again."""
        with unavailable_on_connection_error():
            self.redis.delete(self._key(tenant, idempotency_key))
