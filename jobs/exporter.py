"""The fleet's own metrics, exported once: ``python -m jobs.exporter [--port 9808]``.

Queue depth and when a worker last called the API are the same whatever API
replica is asked, so they are not exported by the API (a Prometheus ``sum()``
over replicas would multiply them) but by this one small process, an entry of
its own in the Procfile and the compose file. It reads Redis at scrape time and
holds no state.

    soundreel_queue_depth{queue}             work waiting in each queue: jobs sent and not
                                             started, and every tenant's pending units
    soundreel_worker_last_seen_seconds       seconds since a worker last called the API
    soundreel_workers_seen                   1 if a worker called within WORKERS_SEEN_WITHIN
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import redis
from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from jobs.constants import PREVIEW_QUEUE, RENDER_QUEUE, WORKER_SEEN_REDIS_KEY
from jobs.fairshare import FairShareStore

#: The exporter's port: 9808 is free in Prometheus' default port allocations list.
DEFAULT_PORT = 9808
#: A worker that called within this many seconds counts as seen (the reaper alone,
#: sent by beat to the callbacks worker, calls every REAP_INTERVAL).
WORKERS_SEEN_WITHIN = 60.0


class FleetCollector(Collector):
    """Queue depths and worker presence, read from Redis at each scrape."""

    def __init__(self, client: redis.Redis, queues: Sequence[str] = (RENDER_QUEUE, PREVIEW_QUEUE)):
        self.redis = client
        self.queues = queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("soundreel_queue_depth", "Jobs waiting, per queue",
                                  labels=("queue",))
        fair = FairShareStore(self.redis)
        for queue in self.queues:
            depth.add_metric([queue], fair.depth(queue))
        yield depth
        seen = self.redis.get(WORKER_SEEN_REDIS_KEY)
        age = time.time() - float(seen) if seen else float("inf")
        yield GaugeMetricFamily("soundreel_worker_last_seen_seconds",
                                "Seconds since a worker last called the API", value=age)
        yield GaugeMetricFamily("soundreel_workers_seen",
                                f"1 if a worker called the API within {WORKERS_SEEN_WITHIN:g} s",
                                value=1.0 if age <= WORKERS_SEEN_WITHIN else 0.0)


def main(argv: Sequence[str] | None = None) -> int:
    from config import logs
    from config.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m jobs.exporter",
                                     description="Export queue depth and worker presence.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="0.0.0.0")  # noqa: S104 - a metrics port, for the scraper
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logs.setup(settings.log_level)
    REGISTRY.register(FleetCollector(redis.Redis.from_url(settings.redis_url)))
    server, thread = start_http_server(args.port, args.address)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
