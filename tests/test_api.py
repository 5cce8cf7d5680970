"""The HTTP contract: auth, validation, error shapes, worker reports. Against the
real stack (gunicorn + redis-server + worker) unless a test needs its own settings."""

from __future__ import annotations

import io
import json

import pytest
import requests

from api import create_app
from devstack import free_port
from tests.helpers.e2e import attempt_of, poll, submit, upload, wait_for
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import ServedApp, settings_for

JOB = "/v1/jobs"
#: The start of a WAV file: what an upload named .wav must begin with.
WAV_HEADER = b"RIFF\x24\x00\x00\x00WAVEfmt "


def error_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    return response.json()["error"]


# --- auth ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer wrong-key-123"])
def test_v1_refuses_missing_or_wrong_keys_with_401(local_stack, header):
    headers = {"Authorization": header} if header else {}
    for method, path in (("get", f"{JOB}/{'0' * 32}"), ("post", JOB), ("post", "/v1/uploads")):
        response = requests.request(method, local_stack.url(path), headers=headers, timeout=10)
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthorized"


def test_another_tenants_job_is_not_found(local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    other = local_stack.client(local_stack.other_api_key)
    response = other.get(local_stack.url(f"{JOB}/{job['jobId']}"), timeout=10)
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    mine = local_stack.client().get(local_stack.url(f"{JOB}/{job['jobId']}"), timeout=10)
    assert mine.status_code == 200
    poll(local_stack, job["jobId"])


def test_another_tenants_upload_cannot_be_rendered(local_stack):
    key = upload(local_stack, SAMPLE)
    other = local_stack.client(local_stack.other_api_key)
    response = other.post(local_stack.url(JOB), json={"audioKey": key}, timeout=10)
    assert response.status_code == 400
    assert error_of(response)["code"] == "unknown_audio"
    assert error_of(response)["field"] == "audioKey"


@pytest.mark.parametrize("token", [None, "wrong-worker-token-000000", "API_KEY"])
def test_internal_endpoints_refuse_anything_but_the_worker_token(local_stack, token):
    if token == "API_KEY":
        token = local_stack.api_key
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    patch = requests.patch(local_stack.url(f"/internal/jobs/{'0' * 32}"), headers=headers,
                           json={"progress": 0.5}, timeout=10)
    hook = requests.post(local_stack.url("/internal/webhooks/worker"), headers=headers,
                         json={"jobId": "0" * 32, "status": "failed",
                               "error": {"code": "x", "message": "y"}}, timeout=10)
    assert patch.status_code == hook.status_code == 401
    assert error_of(patch)["code"] == error_of(hook)["code"] == "unauthorized"


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "render", "options": {"width": 641}}, "options.width"),
        ({"kind": "render", "options": {"width": 99999}}, "options.width"),
        ({"kind": "render", "options": {"fps": 31}}, "options.fps"),
        ({"kind": "render", "options": {"color": "red"}}, "options.color"),
        ({"kind": "render", "options": {"style": "sparkles"}}, "options.style"),
        ({"kind": "render", "options": {"sparkle": True}}, "options.sparkle"),
        ({"kind": "render", "speed": "fast"}, "speed"),
        ({"kind": "gif"}, "kind"),
        ({"kind": "render", "audioKey": "../../etc/passwd"}, "audioKey"),
        ({"kind": "render", "audioKey": "renders/x/output.mp4"}, "audioKey"),
        ({"kind": "render", "outputKey": "renders/other/output.mp4"}, "outputKey"),
        ({"kind": "render", "outputKey": "../escape.mp4"}, "outputKey"),
        ({"kind": "prepare", "outputKey": "mine/audio.mp4"}, None),
    ],
)
def test_bad_job_requests_are_400_naming_the_field(local_stack, body, field):
    body = {"audioKey": "uploads/0123/a.mp3", **body}
    response = local_stack.client().post(local_stack.url(JOB), json=body, timeout=10)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    if field:
        assert error["field"] == field and error["message"].startswith(field)


def test_a_prepare_job_takes_empty_options_but_refuses_real_ones(local_stack):
    audio = upload(local_stack, SAMPLE)
    job = submit(local_stack, {"kind": "prepare", "audioKey": audio, "options": {}})
    assert job["kind"] == "prepare" and job["status"] in ("queued", "running", "complete")
    response = local_stack.client().post(
        local_stack.url(JOB), json={"kind": "prepare", "audioKey": audio,
                                    "options": {"style": "wave"}}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 400
    assert "takes no options" in error_of(response)["message"]


def test_non_json_body_is_400(local_stack):
    response = local_stack.client().post(local_stack.url(JOB), data="kind=render", timeout=10)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"


def test_upload_without_file_or_of_non_audio_is_refused(local_stack):
    client = local_stack.client()
    none = client.post(local_stack.url("/v1/uploads"), data={"x": "y"}, timeout=10)
    assert none.status_code == 400 and error_of(none)["field"] == "file"
    exe = client.post(local_stack.url("/v1/uploads"),
                      files={"file": ("run.sh", io.BytesIO(b"#!/bin/sh"))}, timeout=10)
    assert exe.status_code == 415 and error_of(exe)["code"] == "unsupported_media_type"


def test_unknown_job_and_unknown_route_are_json_404(local_stack):
    for path in (f"{JOB}/{'f' * 32}", f"{JOB}/not-an-id", "/nope"):
        response = local_stack.client().get(local_stack.url(path), timeout=10)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_upload_limit_is_exact(tmp_path, redis_url):
    port = free_port()
    settings = settings_for({"STORAGE_DIR": str(tmp_path), "MAX_UPLOAD_BYTES": "1000",
                             "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                             "REDIS_URL": redis_url})
    served = ServedApp(create_app(settings), port)

    def post(size: int) -> requests.Response:
        data = (WAV_HEADER + b"\0" * size)[:size]
        return requests.post(
            f"http://127.0.0.1:{port}/v1/uploads",
            headers={"Authorization": "Bearer sk_test_acme_1"},
            files={"file": (f"f{size}.wav", io.BytesIO(data))},
            timeout=10,
        )

    try:
        assert post(1000).status_code == 201
        for size in (1001, 60_000, 200_000):  # past the limit, within and past the slack
            response = post(size)
            assert response.status_code == 413
            assert error_of(response)["code"] == "payload_too_large"
            assert not any(tmp_path.rglob(f"f{size}.wav"))
    finally:
        served.close()


def test_errors_flask_raises_itself_are_json_with_their_headers(local_stack):
    response = requests.put(local_stack.url("/healthz"), timeout=10)
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_unexpected_errors_are_json_500(tmp_path):
    port = free_port()
    app = create_app(settings_for({"STORAGE_DIR": str(tmp_path),
                                   "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}))

    def boom():
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", view_func=boom)
    served = ServedApp(app, port)
    try:
        response = requests.get(f"http://127.0.0.1:{port}/boom", timeout=10)
        assert response.status_code == 500 and error_of(response)["code"] == "internal_error"
        assert "a bug" not in response.text
    finally:
        served.close()


def test_output_key_of_another_tenant_is_409(local_stack):
    key = "clips/shared-name/teaser.mp4"
    body = {"kind": "render", "outputKey": key}
    mine = local_stack.client().post(
        local_stack.url(JOB), json={**body, "audioKey": upload(local_stack, SAMPLE)}, timeout=10
    )
    assert mine.status_code == 202
    again = local_stack.client().post(
        local_stack.url(JOB), json={**body, "audioKey": upload(local_stack, SAMPLE)}, timeout=10
    )
    assert again.status_code == 202  # the owner may write it again
    other = local_stack.client(local_stack.other_api_key)
    key_b = other.post(local_stack.url("/v1/uploads"), timeout=10,
                       files={"file": ("b.mp3", SAMPLE.read_bytes())}).json()["audioKey"]
    theirs = other.post(local_stack.url(JOB), json={**body, "audioKey": key_b}, timeout=10)
    assert theirs.status_code == 409
    assert error_of(theirs)["code"] == "output_key_taken"
    poll(local_stack, mine.json()["jobId"])
    poll(local_stack, again.json()["jobId"])


def test_files_route_refuses_odd_signatures_with_404(local_stack):
    for signature in ("%C3%A9", "", "0" * 64):
        response = requests.get(
            local_stack.url(f"/files/renders/x/output.mp4?expires=99999999999&signature={signature}"),
            timeout=10,
        )
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"


def test_redis_down_is_503_and_nothing_is_stored(tmp_path):
    port, dead = free_port(), free_port()
    settings = settings_for({"STORAGE_DIR": str(tmp_path), "REDIS_URL": f"redis://127.0.0.1:{dead}/0",
                             "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"})
    served = ServedApp(create_app(settings), port)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": "Bearer sk_test_acme_1"}
    try:
        calls = [
            requests.get(f"{base}{JOB}/{'a' * 32}", headers=auth, timeout=20),
            requests.post(f"{base}/v1/uploads", headers=auth, timeout=20,
                          files={"file": ("a.wav", io.BytesIO(WAV_HEADER))}),
        ]
        for response in calls:
            assert response.status_code == 503
            assert error_of(response)["code"] == "service_unavailable"
        assert not any(tmp_path.rglob("*.wav"))
    finally:
        served.close()


# --- worker reports -------------------------------------------------------------


def test_late_and_duplicate_reports_are_accepted_and_ignored(local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    done, _ = poll(local_stack, job["jobId"])
    assert done["status"] == "complete"
    attempt = attempt_of(local_stack, job["jobId"])  # the attempt that completed it
    worker = local_stack.worker_client()
    late_progress = worker.patch(local_stack.url(f"/internal/jobs/{job['jobId']}"),
                                 json={"progress": 0.3, "stage": "rendering",
                                       "attempt": attempt}, timeout=10)
    duplicate = worker.post(local_stack.url("/internal/webhooks/worker"), timeout=10,
                            json={"jobId": job["jobId"], "status": "complete", "attempt": attempt,
                                  "result": {**done["result"], "duration": 99.0}})
    late_failure = worker.post(local_stack.url("/internal/webhooks/worker"), timeout=10,
                               json={"jobId": job["jobId"], "status": "failed", "attempt": attempt,
                                     "error": {"code": "render_failed", "message": "late"}})
    for response in (late_progress, duplicate, late_failure):
        assert response.status_code == 200 and response.json()["applied"] is False
    after = local_stack.client().get(local_stack.url(f"{JOB}/{job['jobId']}"), timeout=10).json()
    assert after["status"] == "complete" and after["progress"] == 1.0
    assert after["result"] == done["result"] and after["error"] is None


def test_a_complete_report_cannot_point_the_download_at_another_object(local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    worker = local_stack.worker_client()
    # a forged report races the real one; whichever lands, no foreign key survives
    forged = {"preparedKey": "uploads/someone-else/secret.wav", "format": "wav", "duration": 1}
    wait_for(lambda: attempt_of(local_stack, job["jobId"]), 60, "the job to start")
    worker.post(local_stack.url("/internal/webhooks/worker"), timeout=10,
                json={"jobId": job["jobId"], "status": "complete", "result": forged,
                      "attempt": attempt_of(local_stack, job["jobId"])})
    done, _ = poll(local_stack, job["jobId"])
    assert "uploads/someone-else" not in json.dumps(done)


def test_reports_about_unknown_jobs_are_404_and_bad_reports_400(local_stack):
    worker = local_stack.worker_client()
    unknown = worker.patch(local_stack.url(f"/internal/jobs/{'e' * 32}"),
                           json={"progress": 0.3, "attempt": "ab"}, timeout=10)
    assert unknown.status_code == 404
    bad = worker.patch(local_stack.url(f"/internal/jobs/{'e' * 32}"),
                       json={"progress": 3, "attempt": "ab"}, timeout=10)
    assert bad.status_code == 400 and error_of(bad)["field"] == "progress"
