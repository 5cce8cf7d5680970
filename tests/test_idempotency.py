"""Idempotency-Key on POST /v1/jobs and /v1/uploads, against the real stack."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import redis

from jobs.constants import job_redis_key
from tests.helpers.e2e import poll, upload
from tests.helpers.samples import ARTWORK, SAMPLE


def post_job(stack, body: dict, key: str, api_key: str | None = None):  # noqa: ANN001
    return stack.client(api_key).post(stack.url("/v1/jobs"), json=body, timeout=60,
                                      headers={"Idempotency-Key": key})


def test_same_key_and_body_returns_the_same_job(local_stack):
    body = {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)}
    key = str(uuid.uuid4())
    first, again = post_job(local_stack, body, key), post_job(local_stack, body, key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert first.headers["Location"] == again.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    poll(local_stack, first.json()["jobId"])


def test_same_key_with_another_body_is_422(local_stack):
    audio = upload(local_stack, SAMPLE)
    key = str(uuid.uuid4())
    assert post_job(local_stack, {"kind": "prepare", "audioKey": audio}, key).status_code == 202
    other = post_job(local_stack, {"kind": "preview", "audioKey": audio}, key)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_keys_belong_to_a_tenant(local_stack):
    key = str(uuid.uuid4())
    mine = post_job(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)},
                    key)
    other = local_stack.client(local_stack.other_api_key)
    audio = other.post(local_stack.url("/v1/uploads"), timeout=30,
                       files={"file": ("a.mp3", SAMPLE.read_bytes())}).json()["audioKey"]
    theirs = post_job(local_stack, {"kind": "prepare", "audioKey": audio}, key,
                      local_stack.other_api_key)
    assert theirs.status_code == 202 and theirs.json()["jobId"] != mine.json()["jobId"]


def test_a_failed_request_is_not_remembered(local_stack):
    key = str(uuid.uuid4())
    bad = post_job(local_stack, {"kind": "prepare", "audioKey": "uploads/nope/a.mp3"}, key)
    assert bad.status_code == 400
    # the corrected request may reuse the key: the failure left no claim behind
    fixed = post_job(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)},
                     key)
    assert fixed.status_code == 202
    poll(local_stack, fixed.json()["jobId"])


def test_100_concurrent_posts_with_one_key_create_exactly_one_job(local_stack):
    body = {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)}
    key = str(uuid.uuid4())
    client = redis.Redis.from_url(local_stack.redis_url)
    before = set(client.scan_iter(job_redis_key("*")))
    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(lambda _: post_job(local_stack, body, key), range(100)))
    assert {r.status_code for r in responses} == {202}
    job_ids = {r.json()["jobId"] for r in responses}
    assert len(job_ids) == 1
    created = set(client.scan_iter(job_redis_key("*"))) - before
    assert created == {job_redis_key(job_ids.pop()).encode()}
    poll(local_stack, responses[0].json()["jobId"])


def test_uploads_are_idempotent_too(local_stack):
    key = str(uuid.uuid4())
    client = local_stack.client()

    def send(path):  # noqa: ANN001
        with open(path, "rb") as file:
            return client.post(local_stack.url("/v1/uploads"), files={"file": (path.name, file)},
                               headers={"Idempotency-Key": key}, timeout=30)

    first, again = send(SAMPLE), send(SAMPLE)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert send(ARTWORK).status_code == 422
