"""What operators see: /healthz, /readyz, Prometheus /metrics, JSON logs with a
request id that follows a job from the API into the worker and back, and no
secrets in any log. Against the real processes."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

import devstack as st
from api import create_app
from api.reports import WORKER_SEEN_EVERY
from jobs.constants import WORKER_SEEN_REDIS_KEY
from tests.helpers.e2e import poll, upload, wait_for
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import settings_for, start_api


def metric_samples(stack: st.Stack) -> dict[tuple[str, tuple], float]:
    text = requests.get(stack.url("/metrics"), timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name
               and all(dict(ls).get(k) == want for k, want in labels.items()))


def test_health_ready_and_metrics_of_a_job(local_stack):
    assert requests.get(local_stack.url("/healthz"), timeout=10).json() == {"status": "ok"}
    ready = wait_for(lambda: (r := requests.get(local_stack.url("/readyz"), timeout=10))
                     .status_code == 200 and r.json()["workers"]["lastSeenSecondsAgo"] is not None
                     and r.json(), 40, "a worker to be seen")
    assert ready["checks"] == {"redis": "ok", "storage": "ok"}
    assert 0 <= ready["workers"]["lastSeenSecondsAgo"] < 60

    before = metric_samples(local_stack)
    client = local_stack.client()
    response = client.post(local_stack.url("/v1/jobs"), timeout=10, json={
        "kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    done, _ = poll(local_stack, response.json()["jobId"])
    assert done["status"] == "complete"
    after: dict = {}

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    def counted() -> bool:  # the API counts a job's end just after it commits the record
        after.update(metric_samples(local_stack))
        return grew("soundreel_realtime_factor_count", kind="prepare") >= 1
    wait_for(counted, 15, "the job's end to be counted")

    assert grew("soundreel_jobs_submitted_total", kind="prepare") == 1
    assert grew("soundreel_jobs_finished_total", kind="prepare", status="complete") == 1
    assert grew("soundreel_render_seconds_count", kind="prepare") == 1
    assert grew("soundreel_realtime_factor_count", kind="prepare") == 1
    assert grew("soundreel_http_request_seconds_count", route="/v1/jobs", method="POST",
                status="202") == 1
    # the fleet's gauges are the exporter's, not every replica's
    assert not any(name == "soundreel_queue_depth" for name, _ in after)


def test_readyz_is_200_without_workers_and_503_without_redis(tmp_path: Path):
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url)
        # no worker has ever called: the API can still take and queue jobs
        response = requests.get(running.url("/readyz"), timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["workers"] == {"lastSeenSecondsAgo": None}
        job = running.client().post(running.url("/v1/jobs"), timeout=10, json={
            "kind": "prepare", "audioKey": upload(running, SAMPLE)})
        assert job.status_code == 202 and job.json()["status"] == "queued"
        stack.close()  # everything stops; start the API alone again, with no Redis
    with ExitStack() as stack:
        env = {**running.env, "REDIS_URL": f"redis://127.0.0.1:{st.free_port()}/0"}
        port = st.free_port()
        stack.enter_context(st.api_server({**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
                                          port, tmp_path / "api2.log"))
        response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json()["checks"]["redis"].startswith("unreachable")


def test_worker_calls_refresh_the_seen_mark_at_most_every_few_seconds(tmp_path, redis_url,
                                                                       redis_client):
    # heartbeats come several times a second per render: not one Redis write each
    reports = create_app(settings_for({"STORAGE_DIR": str(tmp_path), "REDIS_URL": redis_url})
                         ).extensions["soundreel"].reports
    redis_client.delete(WORKER_SEEN_REDIS_KEY)
    reports.seen_worker()
    first = redis_client.get(WORKER_SEEN_REDIS_KEY)
    assert first is not None
    for _ in range(100):
        reports.seen_worker()
    assert redis_client.get(WORKER_SEEN_REDIS_KEY) == first
    reports._worker_marked -= WORKER_SEEN_EVERY  # as if that long had passed
    reports.seen_worker()
    assert float(redis_client.get(WORKER_SEEN_REDIS_KEY)) > float(first)


def test_a_request_id_follows_the_job_and_no_secret_reaches_a_log(local_stack):
    client = local_stack.client()
    audio = upload(local_stack, SAMPLE)
    response = client.post(local_stack.url("/v1/jobs"), timeout=10,
                           headers={"X-Request-ID": "trace-me-42"},
                           json={"kind": "render", "audioKey": audio,
                                 "options": {"width": 320, "height": 240}})
    assert response.headers["X-Request-ID"] == "trace-me-42"
    job_id = response.json()["jobId"]
    done, _ = poll(local_stack, job_id)
    requests.get(done["downloadUrl"], timeout=10).raise_for_status()  # a signed link, used
    requests.get(done["shareUrl"], timeout=10)  # the status page, with its token

    def lines(name: str) -> list[dict]:
        out = []
        for line in (local_stack.workdir / name).read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    worker = [r for r in lines("worker.log") if r.get("job_id") == job_id]
    api = [r for r in lines("api.log") if r.get("job_id") == job_id]
    assert worker and all(r.get("request_id") == "trace-me-42" for r in worker
                          if r["logger"].startswith("tasks.render"))
    assert any(r.get("request_id") == "trace-me-42" and r.get("tenant") == "acme" for r in api)
    # the worker's own reports carried the id back to the API
    assert any(r.get("request_id") == "trace-me-42" and r["logger"] == "api.reports"
               and "complete" in r["message"] for r in api)
    everything = "".join((local_stack.workdir / name).read_text()
                         for name in ("api.log", "worker.log", "beat.log"))
    for secret in (local_stack.api_key, local_stack.other_api_key, local_stack.worker_token,
                   "signature=", "token=", "X-Amz-Signature"):
        assert secret not in everything, secret


def test_each_replica_exports_its_own_counts_and_spends_no_redis_command_on_them(tmp_path):
    """Two API replicas (gunicorn, 2 processes each) on one Redis: each /metrics sums its
    own processes, so Prometheus' sum() over replicas is the true total; and counting a
    request costs Redis nothing."""
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        for name in ("one", "two"):
            (tmp_path / name).mkdir()
        one = start_api(stack, tmp_path / "one", redis_url)
        two = start_api(stack, tmp_path / "two", redis_url)
        def healthz_counts() -> list[float]:
            return [value(metric_samples(running), "soundreel_http_request_seconds_count",
                          route="/healthz") for running in (one, two)]

        before = healthz_counts()  # the start-up checks
        redis_client = redis.Redis.from_url(redis_url)
        commands = redis_client.info("stats")["total_commands_processed"]
        for running, count in ((one, 7), (two, 3)):
            for _ in range(count):  # a new connection each: they spread over the processes
                assert requests.get(running.url("/healthz"), timeout=10).ok
        assert redis_client.info("stats")["total_commands_processed"] - commands <= 1  # INFO
        after = healthz_counts()
        # each replica counts all of its processes' requests and none of the other's
        assert [a - b for a, b in zip(after, before, strict=True)] == [7, 3]


def test_the_exporter_reports_queue_depth_and_worker_presence(tmp_path):
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url)
        port = st.free_port()
        stack.enter_context(st.process(
            [str(st.BIN / "python"), "-m", "jobs.exporter", "--port", str(port),
             "--address", "127.0.0.1"], tmp_path / "exporter.log", running.env))
        url = f"http://127.0.0.1:{port}/metrics"

        def scrape() -> dict:
            text = requests.get(url, timeout=5).text
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(text) for s in f.samples}

        first = wait_for(lambda: _try(scrape), 30, "the exporter")
        assert first[("soundreel_workers_seen", ())] == 0
        audio = upload(running, SAMPLE)
        for _ in range(3):  # no worker runs: they wait
            running.client().post(running.url("/v1/jobs"), timeout=10,
                                  json={"kind": "render", "audioKey": audio})
        samples = scrape()
        assert samples[("soundreel_queue_depth", (("queue", "render"),))] == 3
        assert samples[("soundreel_queue_depth", (("queue", "preview"),))] == 0
        redis.Redis.from_url(redis_url).set(WORKER_SEEN_REDIS_KEY, time.time() - 5)
        samples = scrape()
        assert samples[("soundreel_workers_seen", ())] == 1
        assert 5 <= samples[("soundreel_worker_last_seen_seconds", ())] < 30


def _try(scrape):  # noqa: ANN001, ANN202 - the exporter may not listen yet
    try:
        return scrape()
    except requests.ConnectionError:
        return None
