"""Prometheus metrics, as prometheus-client keeps them: per process, summed by the server.

Each API process counts its own events in prometheus-client's counters and
histograms. Under gunicorn (several worker processes) the counters live in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by
``api.gunicorn_conf``), and ``/metrics`` sums the live and dead workers of this replica;
Prometheus then sums over replicas with ``sum()``. Counting costs no network call.

What is the same for every replica (queue depth, when a worker last called) is
not exported here but once, by the exporter (``python -m jobs.exporter``), so a
``sum()`` over API replicas never multiplies it.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

#: Histogram buckets (seconds, and realtime factor).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RENDER_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
REALTIME_BUCKETS = (0.5, 1, 2, 4, 8, 16, 32, 64)

JOBS_SUBMITTED = Counter("soundreel_jobs_submitted", "Jobs accepted", ("kind",))
JOBS_FINISHED = Counter(
    "soundreel_jobs_finished", "Jobs ended, by final status and error code",
    ("kind", "status", "code"),
)
RENDER_SECONDS = Histogram(
    "soundreel_render_seconds", "Seconds from a job's start to its end", ("kind",),
    buckets=RENDER_BUCKETS,
)
REALTIME_FACTOR = Histogram(
    "soundreel_realtime_factor", "Seconds of audio per second of work", ("kind",),
    buckets=REALTIME_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "soundreel_render_cache_lookups",
    "Render cache lookups, by outcome: hit, miss, stale (the entry's output was gone), "
    "error (the copy failed)", ("kind", "outcome"),
)
WEBHOOK_ATTEMPTS = Counter(
    "soundreel_webhook_attempts", "Client webhook attempts, by outcome", ("outcome",)
)
HTTP_REQUEST_SECONDS = Histogram(
    "soundreel_http_request_seconds", "API request latency", ("method", "route", "status"),
    buckets=HTTP_BUCKETS,
)


def exposition() -> tuple[bytes, str]:
    """This replica's metrics in the text format: every process of it, when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
