"""What operators and load balancers call: ``/healthz``, ``/readyz``, ``/metrics``;
and the request hooks that give every request an id and a latency sample."""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request

from api import answers
from api import metrics as metric
from api.auth import require_token
from config import logs
from jobs.constants import WORKER_SEEN_REDIS_KEY
from storage.errors import StorageError

bp = Blueprint("observability", __name__)

#: Methods counted by name; any other (clients may send anything) is "OTHER", so
#: the metrics cannot be grown without limit.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
            metric.HTTP_REQUEST_SECONDS.labels(
                method=request.method if request.method in METHODS else "OTHER",
                route=route, status=str(response.status_code),
            ).observe(time.perf_counter() - g.started)
        return response


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependency is checked)."""
    return answers.Health(status="ok").body()


@bp.get("/readyz")
def readyz() -> Any:
    """Can this process serve: Redis and the object store reachable; 503 otherwise.

    Workers are not a condition: with every worker down the API still accepts and
    queues jobs, so a load balancer must keep it. When a worker last called is in the
    body (``workers.lastSeenSecondsAgo``, null if never) and in the exporter's metrics.
    """
    service = current_app.extensions["soundreel"]
    checks: dict[str, str] = {}
    last_seen: float | None = None
    try:
        seen = service.jobs.redis.get(WORKER_SEEN_REDIS_KEY)
        checks["redis"] = "ok"
        last_seen = round(time.time() - float(seen), 1) if seen else None
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = f"unreachable ({type(exc).__name__})"
    try:
        service.objects.ping()
        checks["storage"] = "ok"
    except StorageError as exc:
        checks["storage"] = f"unreachable ({type(exc).__name__})"
    ready = all(value == "ok" for value in checks.values())
    body = answers.Readiness.model_validate({
        "status": "ready" if ready else "not ready", "checks": checks,
        "workers": {"lastSeenSecondsAgo": last_seen}})
    return body.body(), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    """This API replica's metrics, every process of it (see api.metrics); only with
    ``Authorization: Bearer <METRICS_TOKEN>`` when the operator set one (queue
    depths and job counts by error code are no business of the public)."""
    token = current_app.extensions["soundreel"].settings.metrics_token
    if token:
        require_token(token, "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'.")
    body, content_type = metric.exposition()
    return Response(body, content_type=content_type)
