"""What operators and load balancers call: ``/healthz``, ``/readyz``, ``/metrics``;
and the request hooks that give every request an id and a latency sample."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.metrics import HTTP_BUCKETS, RedisCollector
from config import logs
from jobs.constants import PREVIEW_QUEUE, RENDER_QUEUE, WORKER_SEEN_REDIS_KEY
from storage.errors import StorageError

bp = Blueprint("observability", __name__)

#: Methods counted by name; any other (clients may send anything) is "OTHER", so
#: the metrics cannot be grown without limit.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: /readyz wants a worker to have called the API within this many seconds (the
#: reaper alone does every REAP_INTERVAL).
WORKER_SEEN_WITHIN = 60


def install(app: Flask) -> None:
    """Request ids and latency for every request of ``app``."""

    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if logs.REQUEST_ID.match(given) else uuid.uuid4().hex
        logs.request_id.set(g.request_id)
        logs.tenant.set(None)
        logs.job_id.set((request.view_args or {}).get("job_id"))

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        if "started" in g:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            service = current_app.extensions["soundreel"]
            service.metrics.observe(
                "soundreel_http_request_seconds", time.perf_counter() - g.started, HTTP_BUCKETS,
                method=request.method if request.method in METHODS else "OTHER",
                route=route, status=str(response.status_code),
            )
        return response


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """Redis and storage reachable, and a worker seen within a minute; 503 otherwise."""
    service = current_app.extensions["soundreel"]
    checks: dict[str, str] = {}
    try:
        service.jobs.redis.ping()
        checks["redis"] = "ok"
        seen = service.jobs.redis.get(WORKER_SEEN_REDIS_KEY)
        age = time.time() - float(seen) if seen else None
        checks["workers"] = (
            "ok" if age is not None and age <= WORKER_SEEN_WITHIN
            else "none seen in the last minute"
        )
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = f"unreachable ({type(exc).__name__})"
        checks["workers"] = "unknown"
    try:
        service.objects.ping()
        checks["storage"] = "ok"
    except StorageError as exc:
        checks["storage"] = f"unreachable ({type(exc).__name__})"
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition of the deployment's metrics (see api.metrics)."""
    registry = CollectorRegistry()
    registry.register(RedisCollector(current_app.extensions["soundreel"].jobs.redis,
                                     (RENDER_QUEUE, PREVIEW_QUEUE)))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
