"""What the broker holds, read straight from kombu's Redis layout.

The reaper asks it one question: is there still a message for this queued job,
waiting in a queue or delivered and not yet acked? A job whose message is gone
(a send that failed after the record was written, a retry whose publish failed)
would otherwise sit ``queued`` until its deadline.

kombu's Redis transport keeps each queue as a list named after the queue, and
delivered-but-unacked messages in the ``unacked`` hash (tag -> [message,
exchange, routing key]); every message is JSON with the Celery task id in
``headers.id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis

#: kombu.transport.redis.Channel.unacked_key's default.
UNACKED_KEY = "unacked"


def task_ids_in_broker(client: redis.Redis, queues: Iterable[str]) -> set[str]:
    ids: set[str] = set()
    for queue in queues:
        for raw in client.lrange(queue, 0, -1):
            ids.add(_task_id(_loads(raw)))
    for raw in client.hvals(UNACKED_KEY):
        entry = _loads(raw)  # [message, exchange, routing key]
        ids.add(_task_id(entry[0] if isinstance(entry, list) and entry else None))
    ids.discard("")
    return ids


def _loads(raw: str | bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _task_id(message: object) -> str:
    if not isinstance(message, dict) or not isinstance(message.get("headers"), dict):
        return ""
    return str(message["headers"].get("id") or "")
