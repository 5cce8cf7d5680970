"""``Idempotency-Key`` on ``POST /v1/jobs`` and ``POST /v1/uploads``.

A client that retries a POST after a timeout sends the same key: within 24 h
the same key with the same request returns the first response (same status,
body and ``Location``; ``Idempotent-Replayed: true``), so a job is never created
twice. The same key with a different request is 422 ``idempotency_key_reused``.
Only successful responses are kept: a request that failed can be retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import g, request

from api.errors import Conflict, Unprocessable
from jobs.idempotency import IdempotencyStore, Stored

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
#: How long a concurrent duplicate waits for the first request's response.
WAIT_SECONDS = 15.0

Response = tuple[dict[str, Any], int, dict[str, str]]


def idempotent(
    store: IdempotencyStore, fingerprint: Callable[[], str], produce: Callable[[], Response]
) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return produce()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Unprocessable(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters (a UUID is ideal).",
            code="invalid_idempotency_key",
        )
    tenant, digest = g.tenant, fingerprint()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        begun = store.begin(tenant, key, digest)
        if begun.outcome == "new":
            break
        if begun.outcome == "mismatch":
            raise Unprocessable(
                f"This {HEADER} was used for a different request; use a new key.",
                code="idempotency_key_reused",
            )
        if begun.outcome == "replay":
            assert begun.response is not None
            stored = begun.response
            return stored.body, stored.status, {**stored.headers, "Idempotent-Replayed": "true"}
        if time.monotonic() > deadline:
            raise Conflict(
                f"A request with this {HEADER} is still being processed; retry shortly.",
                code="idempotency_in_progress",
            )
        time.sleep(0.05)
    try:
        body, status, headers = produce()
    except BaseException:
        store.abandon(tenant, key)
        raise
    store.finish(tenant, key, digest, Stored(status, body, headers))
    return body, status, headers
