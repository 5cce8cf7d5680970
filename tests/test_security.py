"""What a security review found, each pinned against the live stack (gunicorn API,
redis-server, a Celery worker; moto's S3 server where the store matters): worker
reports, content types of stored files, headers, symlinks in the local store, slash
redirects and the metrics token. outputKey ownership is in test_output_keys.py,
Flower in test_flower.py; docs/security.md lists every control and its test."""

from __future__ import annotations

import io
import uuid
import wave
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from devstack import Stack
from jobs.constants import expected_result_keys
from storage.objects import LocalObjectStore, local_signing_key, object_store
from tests.helpers.e2e import attempt_of, poll, submit, upload, wait_for
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE
from tests.helpers.stacks import settings_for, start_api

JOB = "/v1/jobs"


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


# --- stored files: their types, their links, the store's root -----------------------------


def wav_bytes() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(8000)
        file.writeframes(b"\0\0" * 800)
    return out.getvalue()


def upload_as(stack: Stack, name: str, data: bytes, content_type: str) -> requests.Response:
    return stack.client().post(stack.url("/v1/uploads"), timeout=30,
                               files={"file": (name, data, content_type)})


def test_an_upload_is_served_by_s3_with_the_type_its_content_shows(s3_stack):
    store = object_store(settings_for(s3_stack.env))
    cases = [  # name, bytes, the type and disposition a presigned GET must answer
        ("cover.png", ARTWORK.read_bytes(), "image/png", "inline"),
        ("voice.mp3", wav_bytes(), "audio/wav", "inline"),  # WAV under an MP3 name
        ("subs.srt", CAPTIONS.read_bytes(), "application/x-subrip", "attachment"),
        ("subs.vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\n<b>hi</b>\n", "text/vtt",
         "attachment"),
    ]
    for name, data, media_type, disposition in cases:
        stored = upload_as(s3_stack, name, data, "text/html")  # what the client claims
        assert stored.status_code == 201, stored.text
        served = requests.get(store.presigned_url(stored.json()["audioKey"], 60), timeout=10)
        assert served.status_code == 200 and served.content == data
        assert served.headers["Content-Type"] == media_type, name
        assert served.headers["Content-Disposition"] == disposition, name
    page = upload_as(s3_stack, "cover.png", b"<html><script>alert(1)</script></html>",
                     "image/png")
    assert page.status_code == 415 and error_of(page)["code"] == "content_mismatch"


def local_store(stack: Stack) -> LocalObjectStore:
    """The stack's local store as the API holds it: its links are the API's own."""
    return LocalObjectStore(Path(stack.env["STORAGE_DIR"]), base_url=stack.base_url,
                            signing_key=local_signing_key(settings_for(stack.env)))


def test_local_file_links_serve_media_in_place_and_anything_else_as_an_attachment(
        local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    done, _ = poll(local_stack, job["jobId"])
    captions = upload_as(local_stack, "subs.srt", CAPTIONS.read_bytes(), "text/html")
    links = [
        (done["downloadUrl"], "audio/", "inline"),  # audio/wav or audio/x-wav by the system
        (done["peaksUrl"], "application/json", "attachment"),
        (local_store(local_stack).presigned_url(captions.json()["audioKey"], 60),
         "application/x-subrip", "attachment"),
    ]
    for url, media_type, disposition in links:
        served = requests.get(url, timeout=10)
        assert served.status_code == 200
        assert served.headers["Content-Type"].split(";")[0].startswith(media_type)
        assert served.headers["Content-Disposition"] == disposition
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        policy = served.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy


def test_the_local_store_follows_no_symlink_out_of_its_directory(local_stack, tmp_path):
    root = Path(local_stack.env["STORAGE_DIR"])
    secret = tmp_path / "secret.txt"
    secret.write_text("not the store's")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "output.mp4").write_text("not the store's either")
    inside = root / "renders" / uuid.uuid4().hex
    inside.mkdir(parents=True)
    (inside / "output.mp4").write_bytes(b"the store's own")
    file_link, folder_link = uuid.uuid4().hex, uuid.uuid4().hex
    (root / "renders" / file_link).mkdir()
    (root / "renders" / file_link / "output.mp4").symlink_to(secret)
    (root / "renders" / folder_link).symlink_to(tmp_path / "folder")
    (inside / "thumbnail.jpg").symlink_to(inside / "output.mp4")  # stays inside: served
    store = local_store(local_stack)

    def get(key: str) -> requests.Response:
        return requests.get(store.presigned_url(key, 60), timeout=10)

    for key in (f"renders/{file_link}/output.mp4", f"renders/{folder_link}/output.mp4"):
        refused = get(key)
        assert refused.status_code == 404 and error_of(refused)["code"] == "not_found"
        assert "store's" not in refused.text
    assert get(f"renders/{inside.name}/output.mp4").content == b"the store's own"
    assert get(f"renders/{inside.name}/thumbnail.jpg").content == b"the store's own"


# --- headers ------------------------------------------------------------------------------


def test_every_answer_says_nosniff(local_stack):
    client = local_stack.client()
    answers = [
        requests.get(local_stack.url(path), timeout=10)
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/",
                     "/v1/jobs", "/no/such/route", f"/jobs/{'0' * 32}?token=x",
                     "/files/renders/x/output.mp4?expires=1&signature=x")
    ] + [
        client.get(local_stack.url(f"{JOB}/{'0' * 32}"), timeout=10),
        client.post(local_stack.url(JOB), json={"kind": "nope"}, timeout=10),
        client.post(local_stack.url("/v1/uploads"), timeout=10,
                    files={"file": ("page.html", b"<html>", "text/html")}),
        requests.post(local_stack.url("/internal/reap"), timeout=10),
    ]
    for response in answers:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url


def test_answers_with_links_share_urls_or_the_webhook_secret_are_never_cached(local_stack):
    client = local_stack.client()
    posted = client.post(local_stack.url(JOB), timeout=30, json={
        "kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    job_id = posted.json()["jobId"]
    done, _ = poll(local_stack, job_id)
    token = done["shareUrl"].split("token=")[1]
    answers = {
        "POST /v1/jobs": posted,
        "GET /v1/jobs/<id>": client.get(local_stack.url(f"{JOB}/{job_id}"), timeout=10),
        "GET /v1/jobs": client.get(local_stack.url(JOB), timeout=10),
        "GET /v1/webhooks/secret": client.get(local_stack.url("/v1/webhooks/secret"),
                                              timeout=10),
        "GET status.json": requests.get(local_stack.url(f"/jobs/{job_id}/status.json"),
                                        headers={"X-Share-Token": token}, timeout=10),
        "GET status page": requests.get(done["shareUrl"], timeout=10),
    }
    assert "downloadUrl" in answers["GET /v1/jobs/<id>"].json()
    for name, response in answers.items():
        assert response.status_code in (200, 202), name
        assert response.headers.get("Cache-Control") == "no-store", name


# --- redirects and absolute URLs ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/files//a", "/files//renders/x/output.mp4?expires=1",
                                  "/v1//jobs", "/docs//docs.css", "/jobs//x"])
def test_a_doubled_slash_is_a_json_404_never_a_redirect_to_the_host_sent(local_stack, path):
    response = requests.get(local_stack.url(path), headers={"Host": "evil.example"},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert "Location" not in response.headers
    assert "evil.example" not in response.text


def test_absolute_urls_name_public_base_url_whatever_host_is_sent(local_stack):
    client = local_stack.client()
    client.headers["Host"] = "evil.example"
    posted = client.post(local_stack.url(JOB), timeout=30, json={
        "kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    assert posted.status_code == 202
    assert posted.json()["shareUrl"].startswith(f"{local_stack.base_url}/jobs/")
    poll(local_stack, posted.json()["jobId"])
    job = client.get(local_stack.url(f"{JOB}/{posted.json()['jobId']}"), timeout=10).json()
    for link in ("shareUrl", "downloadUrl", "peaksUrl"):
        assert job[link].startswith(f"{local_stack.base_url}/"), link
    document = requests.get(local_stack.url("/openapi.json"), headers={"Host": "evil.example"},
                            timeout=10).json()
    assert document["servers"] == [{"url": local_stack.base_url}]


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_answer_only_the_metrics_token_when_one_is_set(redis_url, tmp_path):
    token = "metrics-" + uuid.uuid4().hex
    with ExitStack() as stack:
        api = start_api(stack, tmp_path, redis_url, METRICS_TOKEN=token)
        url = api.url("/metrics")
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Basic {token}"},
                        {"Authorization": f"Bearer {api.api_key}"},
                        {"Authorization": f"Bearer {api.worker_token}"}):
            refused = requests.get(url, headers=headers, timeout=10)
            assert refused.status_code == 401, headers
            assert error_of(refused)["code"] == "unauthorized"
            assert "soundreel_" not in refused.text
        served = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert served.status_code == 200 and "soundreel_http_request_seconds" in served.text
        # the rest of the API is as it was
        assert requests.get(api.url("/healthz"), timeout=10).status_code == 200


def test_metrics_stay_open_when_no_token_is_set(local_stack):
    # the default (documented): an operator who keeps the port private needs no token
    assert requests.get(local_stack.url("/metrics"), timeout=10).status_code == 200
