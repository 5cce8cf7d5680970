"""Client webhooks: Standard Webhooks signatures, the retry schedule, at-least-once
with one webhook-id, the deliveries endpoints, and the SSRF guard on webhookUrl.

The end-to-end tests run a real stack (redis-server, gunicorn, a Celery worker and
beat) and a real HTTP receiver in this process; the retry schedule is shrunk by
WEBHOOK_RETRY_SCALE so "10 minutes down" takes 2 seconds.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

import devstack as st
from config.settings import Settings
from jobs.deliveries import (
    CLAIM_SECONDS,
    GIVE_UP_AFTER,
    Delivery,
    DeliveryStore,
    StaleClaim,
    after_attempt,
    next_delay,
    redelivered,
)
from security.secrets import webhook_secret
from tasks.webhooks import signed_headers
from tests.helpers.e2e import poll, submit, upload, wait_for
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import SLOW, start_api

#: 1/300: the schedule's 5 s, 5 min, 30 min ... become 17 ms, 1 s, 6 s ...
SCALE = 1 / 300
LINKS = ("downloadUrl", "downloadUrlExpiresAt", "thumbnailUrl", "peaksUrl", "shareUrl")

# --- the schedule and the signature, without a stack ---------------------------


def test_the_retry_schedule_is_5s_5min_30min_2h_5h_10h_then_daily_for_3_days():
    delays, elapsed, failures = [], 0.0, 0
    while True:
        failures += 1
        delay = next_delay(failures, elapsed)
        if delay is None:
            break
        delays.append(delay)
        elapsed += delay
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 86400, 86400]
    assert elapsed <= GIVE_UP_AFTER < elapsed + 86400


@pytest.mark.parametrize(("status", "state", "retried"), [
    (200, "delivered", False), (204, "delivered", False), (400, "failed", False),
    (410, "failed", False), (429, "pending", True), (500, "pending", True),
    (503, "pending", True), (None, "pending", True),
])
def test_what_is_retried(status: int | None, state: str, retried: bool):
    delivery = Delivery.for_job("j" * 32, "acme", "https://example.com/hook")
    after = after_attempt(delivery, status, None if status else "timed_out", 12, time.time())
    assert after.state == state and (after.next_attempt_at is not None) == retried
    assert len(after.attempts) == 1 and after.webhook_id == f"msg_{'j' * 32}"


def test_a_redelivery_starts_a_new_round_with_the_same_id():
    delivery = Delivery.for_job("j" * 32, "acme", "https://example.com/hook", )
    failed = after_attempt(delivery, 404, None, 5, time.time())
    again = redelivered(failed, time.time() + 10)
    assert again.state == "pending" and again.webhook_id == failed.webhook_id
    assert again.attempts == failed.attempts


def test_only_the_newest_task_of_a_delivery_may_record_an_attempt(redis_client):
    store = DeliveryStore(redis_client)
    with redis_client.pipeline() as pipe:
        DeliveryStore.add(pipe, Delivery.for_job("j" * 32, "acme", "https://example.com/h"))
        pipe.execute()
    now = time.time()
    ((job_id, first),) = store.claim_due(now)
    assert store.claim_due(now) == []  # claimed: not handed out twice
    ((_, second),) = store.claim_due(now + CLAIM_SECONDS + 1)  # its task never reported
    with pytest.raises(StaleClaim):  # the first task, running late
        store.update(job_id, lambda d: after_attempt(d, 500, None, 1, now), first)
    done = store.update(job_id, lambda d: after_attempt(d, 200, None, 1, now), second)
    assert done.state == "delivered" and len(done.attempts) == 1
    with pytest.raises(StaleClaim):  # used up
        store.update(job_id, lambda d: after_attempt(d, 200, None, 1, now), second)


def test_signatures_verify_with_the_tenants_secret_and_only_with_it():
    settings = Settings(worker_token="t" * 32)
    secret = webhook_secret(settings, "acme")
    assert secret.startswith("whsec_") and secret != webhook_secret(settings, "globex")
    assert secret == webhook_secret(Settings(worker_token="t" * 32), "acme")  # derived
    body = json.dumps({"jobId": "x", "status": "complete"})
    headers = signed_headers(secret, "msg_x", body, datetime.now(UTC))
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(Exception):  # noqa: B017,PT011 - the library's verification error
        Webhook(webhook_secret(settings, "globex")).verify(body, headers)


# --- end to end -------------------------------------------------------------------


class Receiver:
    """An HTTP server that records every POST and answers from a script of statuses."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.script: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body.decode()})
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory):
    tmp_path: Path = tmp_path_factory.mktemp("webhooks")
    receiver = Receiver()
    down_port = st.free_port()  # nothing listens here until a test starts a receiver
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(
            stack, tmp_path, redis_url, REAP_INTERVAL="1", WEBHOOK_RETRY_SCALE=str(SCALE),
            ALLOW_PRIVATE_URLS=f"127.0.0.1:{receiver.port},127.0.0.1:{down_port}",
        )
        stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))
        stack.enter_context(st.beat(running.env, tmp_path))
        audio = upload(running, SAMPLE)
        yield running, receiver, down_port, audio
    receiver.close()


def deliveries(running: st.Stack, job_id: str, key: str | None = None) -> Any:
    return running.client(key).get(running.url(f"/v1/jobs/{job_id}/deliveries"), timeout=10)


def test_an_ended_job_posts_a_signed_webhook_with_the_job_as_polled(hooks):
    running, receiver, _, audio = hooks
    job = submit(running, {"kind": "prepare", "audioKey": audio,
                           "webhookUrl": receiver.url("/ok")})
    assert job["webhookUrl"] == receiver.url("/ok")
    done, _ = poll(running, job["jobId"])
    (post,) = wait_for(lambda: receiver.posts("/ok"), 30, "the webhook")
    secret = running.client().get(running.url("/v1/webhooks/secret"), timeout=10).json()["secret"]
    payload = Webhook(secret).verify(post["body"], post["headers"])
    assert payload == {k: v for k, v in done.items() if k not in LINKS}
    assert post["headers"]["webhook-id"] == f"msg_{job['jobId']}"
    record = wait_for(lambda: (d := deliveries(running, job["jobId"]).json())["state"]
                      == "delivered" and d, 10, "the outcome recorded")
    assert [a["statusCode"] for a in record["attempts"]] == [200]
    assert record["webhookId"] == post["headers"]["webhook-id"]
    # another tenant sees none of it
    assert deliveries(running, job["jobId"], running.other_api_key).status_code == 404
    other = running.client(running.other_api_key).post(
        running.url(f"/v1/jobs/{job['jobId']}/deliveries/redeliver"), timeout=10)
    assert other.status_code == 404


def test_a_receiver_down_for_10_minutes_gets_it_when_back_with_the_same_id(hooks):
    running, _, down_port, audio = hooks
    job = submit(running, {"kind": "prepare", "audioKey": audio,
                           "webhookUrl": f"http://127.0.0.1:{down_port}/late"})
    done, _ = poll(running, job["jobId"])
    assert done["status"] == "complete"
    failing = wait_for(lambda: len((d := deliveries(running, job["jobId"]).json())["attempts"])
                       >= 2 and d, 30, "failed attempts while the receiver is down")
    assert failing["state"] == "pending" and failing["nextAttemptAt"]
    assert all(a["statusCode"] is None and a["error"] for a in failing["attempts"])
    time.sleep(max(0.0, 600 * SCALE - 1))  # 10 minutes, scaled
    receiver = Receiver(down_port)  # back up, first answering 503 once: retried again
    receiver.script = [503]
    try:
        posts = wait_for(lambda: len(receiver.posts("/late")) >= 2 and receiver.posts("/late"),
                         180, "delivery once the receiver is back")
    finally:
        receiver.close()
    assert {p["headers"]["webhook-id"] for p in posts} == {f"msg_{job['jobId']}"}
    assert len({p["body"] for p in posts}) == 1  # the same bytes on every try
    final = wait_for(lambda: (d := deliveries(running, job["jobId"]).json())["state"]
                     == "delivered" and d, 10, "delivered")
    codes = [a["statusCode"] for a in final["attempts"]]
    assert codes[-2:] == [503, 200] and all(c is None for c in codes[:-2])


def test_a_4xx_is_not_retried_and_redeliver_sends_it_again(hooks):
    running, receiver, _, audio = hooks
    receiver.script = [410]
    job = submit(running, {"kind": "prepare", "audioKey": audio,
                           "webhookUrl": receiver.url("/gone")})
    poll(running, job["jobId"])
    failed = wait_for(lambda: (d := deliveries(running, job["jobId"]).json())["state"]
                      == "failed" and d, 30, "the refusal recorded")
    time.sleep(2)  # several reaper ticks: no retry
    assert len(receiver.posts("/gone")) == 1 and len(failed["attempts"]) == 1
    again = running.client().post(
        running.url(f"/v1/jobs/{job['jobId']}/deliveries/redeliver"), timeout=10)
    assert again.status_code == 202
    wait_for(lambda: len(receiver.posts("/gone")) == 2, 30, "the redelivery")
    posts = receiver.posts("/gone")
    assert posts[0]["headers"]["webhook-id"] == posts[1]["headers"]["webhook-id"]
    final = wait_for(lambda: (d := deliveries(running, job["jobId"]).json())["state"]
                     == "delivered" and d, 10, "delivered")
    assert [a["statusCode"] for a in final["attempts"]] == [410, 200]


def test_a_canceled_job_gets_its_webhook_too(hooks):
    running, receiver, _, audio = hooks
    job = submit(running, {**SLOW, "audioKey": audio, "webhookUrl": receiver.url("/cancel")})
    running.client().delete(running.url(f"/v1/jobs/{job['jobId']}"), timeout=10)
    (post,) = wait_for(lambda: receiver.posts("/cancel"), 30, "the webhook")
    assert json.loads(post["body"])["status"] == "canceled"


def test_redeliver_before_the_end_or_without_a_webhook_is_409(hooks):
    running, _, _, audio = hooks
    plain = submit(running, {"kind": "prepare", "audioKey": audio})
    response = running.client().post(
        running.url(f"/v1/jobs/{plain['jobId']}/deliveries/redeliver"), timeout=10)
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_webhook"
    assert deliveries(running, plain["jobId"]).json()["state"] == "none"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/latest",
    "http://[::1]/", "http://10.0.0.1/", "http://2130706433/", "ftp://example.com/",
    "http://user:pw@example.com/",
])
def test_a_forbidden_webhook_url_is_400_at_submission(hooks, url: str):
    running, _, _, audio = hooks
    response = running.client().post(running.url("/v1/jobs"), timeout=10, json={
        "kind": "prepare", "audioKey": audio, "webhookUrl": url})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden_url" and error["field"] == "webhookUrl"
