"""Prometheus metrics kept in Redis, so every API process (gunicorn runs several),
and every restart, reports the same numbers.

prometheus-client's own registry is per process: with several gunicorn workers a
scrape would see one worker's share. Here each event is one pipelined HINCRBY on
a hash, and `RedisCollector` turns the hashes into metric families at scrape time
(prometheus-client does the exposition format).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from jobs.constants import METRICS_REDIS_KEY, queued_redis_key

#: Histogram buckets (seconds, and realtime factor).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RENDER_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
REALTIME_BUCKETS = (0.5, 1, 2, 4, 8, 16, 32, 64)


def _field(name: str, labels: dict[str, str], suffix: str = "") -> str:
    return json.dumps([name + suffix, sorted(labels.items())], separators=(",", ":"))


class Metrics:
    """Where events are counted. Failures to count never fail a request."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        self._write([(_field(name, labels), amount)])

    def observe(self, name: str, value: float, buckets: Sequence[float], **labels: str) -> None:
        writes = [(_field(name, labels, "_sum"), value), (_field(name, labels, "_count"), 1)]
        for bound in buckets:  # every bucket exists from the first sample (0 if above)
            writes.append((_field(name, {**labels, "le": repr(float(bound))}, "_bucket"),
                           1 if value <= bound else 0))
        self._write(writes)

    def _write(self, writes: list[tuple[str, float]]) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for field, amount in writes:
                pipe.hincrbyfloat(METRICS_REDIS_KEY, field, amount)
            pipe.execute()
        except redis.RedisError:
            pass


#: name -> (kind, help, label names, buckets)
SPECS: dict[str, tuple[str, str, tuple[str, ...], Sequence[float]]] = {
    "soundreel_jobs_submitted": ("counter", "Jobs accepted", ("kind",), ()),
    "soundreel_jobs_finished": (
        "counter", "Jobs ended, by final status and error code", ("kind", "status", "code"), ()),
    "soundreel_render_seconds": (
        "histogram", "Seconds from a job's start to its end", ("kind",), RENDER_BUCKETS),
    "soundreel_realtime_factor": (
        "histogram", "Seconds of audio per second of work", ("kind",), REALTIME_BUCKETS),
    "soundreel_webhook_attempts": (
        "counter", "Client webhook attempts, by outcome", ("outcome",), ()),
    "soundreel_http_request_seconds": (
        "histogram", "API request latency", ("method", "route", "status"), HTTP_BUCKETS),
}


class RedisCollector(Collector):
    """Metric families from the Redis hash, plus live queue depths."""

    def __init__(self, client: redis.Redis, queues: Sequence[str]) -> None:
        self.redis = client
        self.queues = queues

    def collect(self) -> Iterator[object]:
        raw = self.redis.hgetall(METRICS_REDIS_KEY)
        values: dict[str, list[tuple[dict[str, str], float]]] = {}
        for field, value in raw.items():
            name, labels = json.loads(field)
            values.setdefault(name, []).append((dict(labels), float(value)))
        for name, (kind, text, label_names, _) in SPECS.items():
            if kind == "counter":
                family = CounterMetricFamily(name, text, labels=label_names)
                for labels, value in values.get(name, []):
                    family.add_metric([labels.get(n, "") for n in label_names], value)
                yield family
            else:
                yield self._histogram(name, text, label_names, values)
        depth = GaugeMetricFamily("soundreel_queue_depth", "Jobs waiting, per queue",
                                  labels=("queue",))
        for queue in self.queues:
            depth.add_metric([queue], self.redis.zcard(queued_redis_key(queue)))
        yield depth

    @staticmethod
    def _histogram(name: str, text: str, label_names: tuple[str, ...],
                   values: dict[str, list[tuple[dict[str, str], float]]]) -> object:
        family = HistogramMetricFamily(name, text, labels=label_names)
        series: dict[tuple[str, ...], dict[str, object]] = {}
        for suffix in ("_sum", "_count", "_bucket"):
            for labels, value in values.get(name + suffix, []):
                key = tuple(labels.get(n, "") for n in label_names)
                entry = series.setdefault(key, {"sum": 0.0, "count": 0.0, "buckets": {}})
                if suffix == "_bucket":
                    entry["buckets"][float(labels["le"])] = value  # type: ignore[index]
                else:
                    entry[suffix[1:]] = value
        for key, entry in series.items():
            buckets = sorted(entry["buckets"].items())  # type: ignore[union-attr]
            rows = [(repr(bound), count) for bound, count in buckets]
            rows.append(("+Inf", entry["count"]))
            family.add_metric(list(key), rows, entry["sum"])
        return family
