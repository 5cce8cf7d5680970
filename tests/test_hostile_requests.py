"""Hostile or repeated requests get 4xx, never 500, and never change a record twice."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers.e2e import attempt_of, poll, submit, upload
from tests.helpers.samples import SAMPLE

NASTY_BODIES = [
    "[]",
    "null",
    '"a string"',
    '{"kind": ["render"]}',
    '{"kind": "render", "audioKey": 12}',
    '{"kind": "render", "audioKey": "uploads/a/b.mp3", "options": {"width": 1e400}}',
    '{"kind": "render", "audioKey": "uploads/a/b.mp3", "options": {"width": '
    + "9" * 5000 + "}}",
    '{"kind": "render", "audioKey": "uploads/a/b.mp3", "options": {"fps": NaN}}',
    '{"kind": "render", "audioKey": "uploads/a/b.mp3", "options": {"title": "\\ud800"}}',
    '{"kind": "render", "audioKey": "uploads/\\u0000/b.mp3"}',
    '{"kind": "render", "audioKey": "uploads/\u202e/b.mp3"}',
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 5000 + "1" + "}" * 5000,
    "{not json",
    "\xff\xfe",
]


@pytest.mark.parametrize("body", NASTY_BODIES, ids=range(len(NASTY_BODIES)))
def test_malformed_job_requests_are_4xx_json(local_stack, body):
    response = local_stack.client().post(
        local_stack.url("/v1/jobs"), data=body.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json"}, timeout=30,
    )
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["error"]["code"]


@pytest.mark.parametrize("body", NASTY_BODIES[:8] + NASTY_BODIES[11:], ids=range(12))
def test_malformed_worker_reports_are_4xx_json(local_stack, body):
    worker = local_stack.worker_client()
    worker.headers["Content-Type"] = "application/json"
    for method, path in (("PATCH", f"/internal/jobs/{'a' * 32}"),
                         ("POST", "/internal/webhooks/worker")):
        response = worker.request(method, local_stack.url(path), data=body.encode(), timeout=30)
        assert 400 <= response.status_code < 500, (method, response.text[:300])


@pytest.mark.parametrize("header", ["Bearer " + "x" * 100_000, "Bearer \x00", "Basic",
                                    "Bearer  ", "bearer sk"])
def test_malformed_tokens_are_401(local_stack, header):
    response = requests.get(local_stack.url(f"/v1/jobs/{'a' * 32}"),
                            headers={"Authorization": header}, timeout=30)
    assert response.status_code in (400, 401, 431), response.text[:200]


def test_thousands_of_duplicate_webhooks_leave_the_record_as_one_did(local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    done, _ = poll(local_stack, job["jobId"])
    assert done["status"] == "complete"
    report = {"jobId": job["jobId"], "status": "complete", "result": done["result"],
              "attempt": attempt_of(local_stack, job["jobId"])}  # the very report that landed
    url = local_stack.url("/internal/webhooks/worker")

    def duplicates(count: int) -> int:
        worker = local_stack.worker_client()
        return sum(worker.post(url, json=report, timeout=30).json()["applied"]
                   for _ in range(count))

    # 2,000 in all, from 4 clients at once: each lands on a record already ended
    with ThreadPoolExecutor(4) as pool:
        applied = sum(pool.map(duplicates, [500] * 4))
    assert applied == 0
    after = local_stack.client().get(local_stack.url(f"/v1/jobs/{job['jobId']}"),
                                     timeout=30).json()
    keep = ("status", "progress", "stage", "result", "error", "updatedAt", "attempts")
    assert {k: after[k] for k in keep} == {k: done[k] for k in keep}
    assert json.dumps(after["result"]) == json.dumps(done["result"])
