"""What a security review found, each pinned against the live stack (gunicorn API,
redis-server, a Celery worker; moto's S3 server where the store matters): worker
reports, content types of stored files, headers, symlinks in the local store, slash
redirects and the metrics token. outputKey ownership is in test_output_keys.py,
Flower in test_flower.py; docs/security.md lists every control and its test."""

from __future__ import annotations

import requests

from jobs.constants import expected_result_keys
from tests.helpers.e2e import attempt_of, poll, submit, upload, wait_for
from tests.helpers.samples import SAMPLE


def error_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    return response.json()["error"]


# --- worker reports ---------------------------------------------------------------------


def test_a_worker_report_whose_result_is_not_a_result_is_400_and_stores_nothing(local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    job_id = job["jobId"]
    attempt = wait_for(lambda: attempt_of(local_stack, job_id), 60, "the job to start")
    good = {**expected_result_keys("prepare", job_id, f"prepared/{job_id}/audio.wav"),
            "format": "wav", "duration": 2.5, "sampleRate": 44100, "channels": 2}
    bad = {
        "result.duration": {**good, "duration": "<b>x</b>"},
        "result.sampleRate": {**good, "sampleRate": "44100"},
        "result.channels": {**good, "channels": 2.5},
        "result.format": {**good, "format": "html"},
        "result.html": {**good, "html": "<script>alert(1)</script>"},
        "result.preparedKey": {**good, "preparedKey": "uploads/someone-else/secret.wav"},
        "result.peaksKey": {**good, "peaksKey": f"prepared/{'0' * 32}/peaks.json"},
        "result.videoKey": {**good, "videoKey": f"renders/{job_id}/output.mp4"},
    }
    worker = local_stack.worker_client()
    for field, result in bad.items():
        # whether the real report has landed yet or not: a result that cannot be is refused
        for path in ("/internal/webhooks/worker", f"/internal/jobs/{job_id}/handoff"):
            response = worker.post(local_stack.url(path), timeout=10, json={
                "jobId": job_id, "status": "complete", "attempt": attempt, "result": result})
            assert response.status_code == 400, (field, path, response.text)
            assert error_of(response)["field"] == field
    done, _ = poll(local_stack, job_id)
    assert done["status"] == "complete"
    result = done["result"]
    assert type(result["duration"]) is float and result["duration"] > 0
    assert set(result) == {"preparedKey", "peaksKey", "format", "duration", "sampleRate",
                           "channels"}
    page = requests.get(done["shareUrl"], timeout=10)
    assert page.status_code == 200
    status = requests.get(local_stack.url(f"/jobs/{job_id}/status.json"), timeout=10,
                          headers={"X-Share-Token": done["shareUrl"].split("token=")[1]})
    assert status.status_code == 200 and status.json()["status"] == "complete"
