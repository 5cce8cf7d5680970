"""The render cache: what its key is made of (unit), and on a live stack (a private
redis-server, the API under gunicorn, a Celery worker, the local store) that a
repeated job completes at submission from copies of its own, per tenant, and that
``cache: false``, other options and a vanished output all render."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

import devstack as st
from api.cache import NOT_IN_KEY, cache_digest
from config.settings import Settings
from jobs.constants import SPEED_REDIS_KEY, render_cache_redis_key, upload_sha256_redis_key
from render.spec import RenderSpec
from storage.objects import object_store
from tests.helpers.e2e import AudioServer, poll, record, submit, upload, wait_for
from tests.helpers.samples import ARTWORK, CAPTIONS, SAMPLE
from tests.helpers.stacks import start_api

AUDIO = "a" * 64
ASSETS = {"artwork": "b" * 64, "captions": "c" * 64, "background": "d" * 64,
          "backgroundVideo": "e" * 64, "intro": "f" * 64, "outro": "0" * 64}


def key(options: dict[str, Any], kind: str = "render", audio: str = AUDIO,
        assets: dict[str, str] | None = None) -> str:
    return cache_digest(kind, RenderSpec.model_validate(options), audio, assets or ASSETS)


# --- the key -------------------------------------------------------------------


@pytest.mark.parametrize("other", [
    {"height": 720, "width": 1280},  # another order, the defaults given
    {"width": 1280, "height": 720, "fps": 30, "quality": 23, "style": "bars", "cache": True},
    {"color": "#F5F5F5"},  # a colour in capitals, or short
    {"textColor": "#FFF", "background": "#14161F"},
    {"text_color": "#ffffff"},  # the Python name of a field
    {"start": 0, "backgroundBlur": 0.0},
    {"cache": False},  # not the picture (a job with it never asks, though)
])
def test_the_same_options_written_differently_are_one_key(other):
    assert key(other) == key({})


def test_a_preset_is_the_size_it_sets():
    assert key({"preset": "square"}) == key({"width": 1080, "height": 1080})


def test_files_are_named_by_their_bytes_not_their_upload():
    one = {"artworkKey": "uploads/1/cover.png", "captionsKey": "uploads/2/talk.srt"}
    two = {"artworkKey": "uploads/3/art.png", "captionsKey": "uploads/4/other.srt"}
    assert key(one) == key(two)
    changed = {**ASSETS, "artwork": "e" * 64}
    assert key(one, assets=changed) != key(two)


def test_previews_of_canvases_of_one_shape_share_a_key():
    assert key({"width": 1280, "height": 720}, "preview") == \
        key({"width": 1920, "height": 1080}, "preview")
    assert key({}, "preview") != key({})


#: One change of every option that draws something else (each against the defaults).
CHANGES = {
    "width": 640, "height": 360, "fps": 25, "quality": 30, "style": "wave",
    "color": "#ff0000", "color2": "#00ff00", "rounded": False, "filled": False,
    "background": "#000000", "background2": "#111111", "backgroundKey": "uploads/1/bg.png",
    "backgroundBlur": 10, "backgroundDarken": 0.5, "artworkKey": "uploads/2/art.png",
    "title": "Episode 1", "subtitle": "A talk", "textColor": "#000000",
    "layout": "minimal", "captionsKey": "uploads/3/talk.srt", "start": 1.0, "end": 5.0,
    "captionsHighlight": "#00ffff",
    "backgroundVideoKey": "uploads/4/loop.webm", "introKey": "uploads/5/intro.mp4",
    "outroKey": "uploads/6/outro.mov", "introFit": "fit", "fadeIn": 1.0, "fadeOut": 2.0,
}


def test_every_option_is_in_the_key_or_said_not_to_draw_anything():
    """A new RenderSpec field must be added to CHANGES (it changes the output) or to
    api.cache.NOT_IN_KEY (it does not), never left out of the decision."""
    aliases = {field.alias or name for name, field in RenderSpec.model_fields.items()}
    assert set(CHANGES) | NOT_IN_KEY == aliases
    assert not set(CHANGES) & NOT_IN_KEY


@pytest.mark.parametrize(("option", "value"), CHANGES.items())
def test_any_option_that_changes_the_picture_changes_the_key(option, value):
    assert key({option: value}) != key({})


def test_the_audio_the_kind_and_the_renderer_version_change_the_key(monkeypatch):
    assert key({}, audio="f" * 64) != key({})
    assert key({}, "preview") != key({}, "render")
    before = key({})
    monkeypatch.setattr("api.cache.RENDERER_VERSION", 2)
    assert key({}) != before


# --- on a live stack ------------------------------------------------------------

#: Small and short: renders take a second or two.
LOOK = {"width": 320, "height": 180, "end": 4.0, "title": "Cached"}


class Receiver:
    """Webhooks, as a client's server gets them."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path: Path = tmp_path_factory.mktemp("cache")
    receiver, files = Receiver(), AudioServer()
    allow = f"127.0.0.1:{receiver.server.server_address[1]},127.0.0.1:{files.server_address[1]}"
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url, RENDER_CACHE="true",
                            ALLOW_PRIVATE_URLS=allow)
        stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))
        yield {"stack": running, "receiver": receiver,
               "audio_url": f"http://127.0.0.1:{files.server_address[1]}/talk.mp3",
               "store": object_store(Settings.from_env(running.env)),
               "redis": redis.Redis.from_url(redis_url)}
    receiver.server.shutdown()
    files.shutdown()


def rendered(stack: st.Stack, body: dict[str, Any]) -> dict[str, Any]:
    """A job submitted and polled to its end: complete."""
    done, _ = poll(stack, submit(stack, body)["jobId"], timeout=120)
    assert done["status"] == "complete", done["error"]
    return done


def submit_as(stack: st.Stack, api_key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.client(api_key).post(stack.url("/v1/jobs"), json=body, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


def poll_as(stack: st.Stack, api_key: str, job_id: str) -> dict[str, Any]:
    client = stack.client(api_key)

    def ended() -> dict[str, Any] | None:
        job = client.get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        return job if job["status"] not in ("queued", "running") else None

    return wait_for(ended, 120, f"job {job_id} to end")


def fetch(url: str) -> bytes:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text[:200]
    return response.content


def entries(client: redis.Redis, tenant: str) -> list[bytes]:
    return sorted(client.scan_iter(match=render_cache_redis_key(tenant, "*")))


def test_a_repeated_job_completes_at_submission_with_its_own_copy(cached):
    stack, store = cached["stack"], cached["store"]
    first = rendered(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE),
                             "options": LOOK})
    assert "cached" not in first["result"] and first["attempts"] == 1

    # the same bytes uploaded again: another upload id, the same input
    again = submit(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE),
                           "options": {**LOOK, "color": "#F5F5F5"},
                           "webhookUrl": f"{cached['receiver'].url}/hook"})
    job_id = again["jobId"]
    assert again["status"] == "complete" and again["progress"] == 1.0
    assert again["stage"] == "done" and again["attempts"] == 0  # no worker took it
    assert again["result"] == {
        "videoKey": f"renders/{job_id}/output.mp4",
        "thumbnailKey": f"renders/{job_id}/thumbnail.jpg",
        "format": "mp4", "duration": first["result"]["duration"], "cached": True,
    }
    assert again["timings"] is None and again["error"] is None
    assert store.exists(f"renders/{job_id}/output.mp4")
    video, thumbnail = fetch(again["downloadUrl"]), fetch(again["thumbnailUrl"])
    assert video == fetch(first["downloadUrl"])
    assert thumbnail == fetch(first["thumbnailUrl"])

    # its webhook goes as for any job's end
    hook = wait_for(lambda: cached["receiver"].bodies, 30, "the webhook")[0]
    assert hook["jobId"] == job_id and hook["status"] == "complete"
    assert hook["result"]["cached"] is True

    # deleting the first job's output leaves the copy
    store.delete(first["result"]["videoKey"])
    store.delete(first["result"]["thumbnailKey"])
    assert fetch(stack.client().get(stack.url(f"/v1/jobs/{job_id}"), timeout=10)
                 .json()["downloadUrl"]) == video


def test_a_preview_and_an_output_key_are_served_too(cached):
    stack = cached["stack"]
    first = rendered(stack, {"kind": "preview", "audioKey": upload(stack, SAMPLE),
                             "options": {**LOOK, "style": "mirror"}})
    again = submit(stack, {"kind": "preview", "audioKey": upload(stack, SAMPLE),
                           "options": {**LOOK, "style": "mirror"},
                           "outputKey": "episodes/cached-preview.mp4"})
    assert again["status"] == "complete" and again["result"]["cached"] is True
    assert again["result"]["previewKey"] == "episodes/cached-preview.mp4"
    assert fetch(again["downloadUrl"]) == fetch(first["downloadUrl"])


def test_another_tenant_with_the_same_bytes_renders(cached):
    stack = cached["stack"]
    body = {"kind": "render", "options": {**LOOK, "style": "circle"}}
    rendered(stack, {**body, "audioKey": upload(stack, SAMPLE)})
    other = stack.other_api_key
    response = stack.client(other).post(stack.url("/v1/uploads"),
                                        files={"file": (SAMPLE.name, SAMPLE.read_bytes())},
                                        timeout=30)
    job = submit_as(stack, other, {**body, "audioKey": response.json()["audioKey"]})
    assert job["status"] == "queued"
    done = poll_as(stack, other, job["jobId"])
    assert done["status"] == "complete" and done["attempts"] == 1
    assert "cached" not in done["result"]


def test_cache_false_and_other_options_render(cached):
    stack = cached["stack"]
    audio = upload(stack, SAMPLE)
    rendered(stack, {"kind": "render", "audioKey": audio, "options": {**LOOK, "style": "wave"}})
    for options in ({**LOOK, "style": "wave", "cache": False},
                    {**LOOK, "style": "wave", "color": "#ff0000"}):
        job = submit(stack, {"kind": "render", "audioKey": audio, "options": options})
        assert job["status"] == "queued", options
        done, _ = poll(stack, job["jobId"], timeout=120)
        assert done["status"] == "complete" and done["attempts"] == 1
        assert "cached" not in done["result"]
    # a job with cache: false neither reads nor writes the cache: still served by the first
    job = submit(stack, {"kind": "render", "audioKey": audio,
                         "options": {**LOOK, "style": "wave"}})
    assert job["status"] == "complete" and job["result"]["cached"] is True


def test_a_different_file_as_artwork_or_captions_misses_the_same_bytes_hit(cached):
    stack = cached["stack"]
    options = {**LOOK, "style": "progress", "artworkKey": upload(stack, ARTWORK),
               "captionsKey": upload(stack, CAPTIONS)}
    rendered(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE), "options": options})
    same = {**options, "artworkKey": upload(stack, ARTWORK),
            "captionsKey": upload(stack, CAPTIONS)}
    assert submit(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE),
                          "options": same})["status"] == "complete"
    other_captions = stack.client().post(
        stack.url("/v1/uploads"), timeout=30,
        files={"file": ("other.srt", b"1\n00:00:00,000 --> 00:00:02,000\nOther words\n")},
    ).json()["audioKey"]
    job = submit(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE),
                         "options": {**same, "captionsKey": other_captions}})
    assert job["status"] == "queued"
    poll(stack, job["jobId"], timeout=120)


def test_an_entry_whose_output_is_gone_is_dropped_and_the_job_renders(cached):
    stack, store, client = cached["stack"], cached["store"], cached["redis"]
    body = {"kind": "render", "options": {**LOOK, "layout": "minimal"}}
    before = set(entries(client, st.TENANT))
    first = rendered(stack, {**body, "audioKey": upload(stack, SAMPLE)})
    (entry,) = set(entries(client, st.TENANT)) - before
    assert json.loads(client.get(entry))["jobId"] == first["jobId"]
    store.delete(first["result"]["videoKey"])

    job = submit(stack, {**body, "audioKey": upload(stack, SAMPLE)})
    assert job["status"] == "queued"
    assert client.get(entry) is None  # dropped at the lookup
    done, _ = poll(stack, job["jobId"], timeout=120)
    assert done["status"] == "complete" and "cached" not in done["result"]
    # the new render fills the entry again
    assert json.loads(client.get(entry))["jobId"] == done["jobId"]
    assert submit(stack, {**body, "audioKey": upload(stack, SAMPLE)})["status"] == "complete"


def test_an_audio_url_is_served_after_its_fetch_and_fills_the_cache(cached):
    stack = cached["stack"]
    # rendered from an upload: a job of the same bytes at a URL is served once fetched
    options = {**LOOK, "style": "bars", "color": "#00ccff"}
    first = rendered(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE),
                             "options": options})
    speed = cached["redis"].hgetall(SPEED_REDIS_KEY)
    job = submit(stack, {"kind": "render", "audioUrl": cached["audio_url"], "options": options})
    assert job["status"] == "queued"
    done, _ = poll(stack, job["jobId"], timeout=120)
    assert done["status"] == "complete" and done["result"]["cached"] is True
    assert done["attempts"] == 1
    # a job served from the cache is no sample of render speed (eta)
    assert cached["redis"].hgetall(SPEED_REDIS_KEY) == speed
    assert done["result"]["videoKey"] == f"renders/{done['jobId']}/output.mp4"
    assert fetch(done["downloadUrl"]) == fetch(first["downloadUrl"])
    log = (stack.workdir / "worker.log").read_text()
    assert f"job {done['jobId']}: render stored" in log  # the task ended as usual ...
    # ... without rendering: the stage went from downloading to finalizing
    assert "rendering" not in record(stack, done["jobId"]).stage_at

    # rendered from a URL first: its bytes' hash fills the entry an upload then hits
    options = {**options, "color": "#ffcc00"}
    from_url = rendered(stack, {"kind": "render", "audioUrl": cached["audio_url"],
                                "options": options})
    assert "cached" not in from_url["result"]
    again = submit(stack, {"kind": "render", "audioKey": upload(stack, SAMPLE),
                           "options": options})
    assert again["status"] == "complete" and again["result"]["cached"] is True


def test_uploads_are_hashed_as_they_stream_in(cached):
    key = upload(cached["stack"], SAMPLE)
    upload_id = key.split("/")[1]
    stored = cached["redis"].get(upload_sha256_redis_key(upload_id))
    assert stored.decode() == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
