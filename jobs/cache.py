"""The render cache's records in Redis: each upload's content hash, the entries (a
tenant's finished outputs, by what made them) and the entry each running job fills.

What a cache key is made of, and when entries are read and written, is
``api.cache``; this module only keeps the records. Every record lives
RECORD_TTL_SECONDS, as the job records do: an entry written when a job completes
goes when that job's record goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from jobs.constants import (
    RECORD_TTL_SECONDS,
    cache_fill_redis_key,
    render_cache_redis_key,
    upload_sha256_redis_key,
)
from jobs.store import unavailable_on_connection_error

#: Delete a key only if it still holds what was read: a stale entry is dropped without
#: dropping the fresh one another job wrote meanwhile.
_DELETE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Entry:
    """A finished job's outputs, as its result names them (``videoKey`` or
    ``previewKey``, ``thumbnailKey``, ``format``, ``duration``)."""

    job_id: str
    result: dict[str, Any]
    #: The entry as Redis holds it (to drop exactly this one).
    raw: bytes = b""

    def to_json(self) -> str:
        return json.dumps({"jobId": self.job_id, "result": self.result}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes) -> Entry:
        data = json.loads(raw)
        return cls(job_id=data["jobId"], result=data["result"], raw=raw)


class CacheStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._delete_if_same = client.register_script(_DELETE_IF_SAME)

    def record_sha256(self, upload_id: str, sha256: str) -> None:
        with unavailable_on_connection_error():
            self.redis.set(upload_sha256_redis_key(upload_id), sha256, ex=RECORD_TTL_SECONDS)

    def sha256s(self, upload_ids: list[str]) -> list[str | None]:
        """The content hash of each upload (None: unknown, e.g. stored before hashing)."""
        if not upload_ids:
            return []
        with unavailable_on_connection_error():
            raws = self.redis.mget([upload_sha256_redis_key(u) for u in upload_ids])
        return [raw.decode() if raw is not None else None for raw in raws]

    def entry(self, tenant: str, digest: str) -> Entry | None:
        with unavailable_on_connection_error():
            raw = self.redis.get(render_cache_redis_key(tenant, digest))
        return Entry.from_json(raw) if raw is not None else None

    def put(self, tenant: str, digest: str, entry: Entry) -> None:
        """Write (or replace) the entry, for another RECORD_TTL_SECONDS."""
        with unavailable_on_connection_error():
            self.redis.set(render_cache_redis_key(tenant, digest), entry.to_json(),
                           ex=RECORD_TTL_SECONDS)

    def drop(self, tenant: str, digest: str, entry: Entry) -> bool:
        """Remove ``entry`` (its objects are gone), unless another job replaced it."""
        with unavailable_on_connection_error():
            return bool(self._delete_if_same(keys=[render_cache_redis_key(tenant, digest)],
                                             args=[entry.raw]))

    def expect(self, job_id: str, digest: str) -> None:
        """The job missed the cache: when it completes, its outputs fill ``digest``."""
        with unavailable_on_connection_error():
            self.redis.set(cache_fill_redis_key(job_id), digest, ex=RECORD_TTL_SECONDS)

    def take_fill(self, job_id: str) -> str | None:
        """The digest the ended job was to fill (and forget it), or None."""
        with unavailable_on_connection_error():
            raw = self.redis.getdel(cache_fill_redis_key(job_id))
        return raw.decode() if raw is not None else None
