"""``audioUrl``: a job's input fetched from a client's URL, through the SSRF guard,
on a real stack. Hostile URLs are refused at submission (400 ``forbidden_url``)
before any connection; a redirect to a forbidden place fails the job with
``forbidden_url`` at fetch time, again before any connection."""

from __future__ import annotations

import socket
import threading
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import devstack as st
from tests.helpers.e2e import poll, submit
from tests.helpers.hostile import HOSTILE_URLS
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import start_api


class Canary:
    """A TCP listener that only counts connections: none may ever arrive."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def file_server(canary_port: int) -> ThreadingHTTPServer:
    audio = SAMPLE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/sample.mp3":
                self.send_response(200)
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio)
                return
            if self.path == "/to-canary":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{canary_port}/x.mp3")
            elif self.path == "/to-metadata":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            else:
                self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory):
    tmp_path: Path = tmp_path_factory.mktemp("audio-url")
    canary = Canary()
    files = file_server(canary.port)
    port = files.server_address[1]
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        # only the file server is exempt from the guard, not the canary
        running = start_api(stack, tmp_path, redis_url, ALLOW_PRIVATE_URLS=f"127.0.0.1:{port}")
        stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))
        yield running, f"http://127.0.0.1:{port}", canary
    files.shutdown()
    canary.sock.close()


def test_a_job_from_an_audio_url_completes(urls):
    running, base, _ = urls
    job = submit(running, {"kind": "prepare", "audioUrl": f"{base}/sample.mp3"})
    assert job["audioUrl"] == f"{base}/sample.mp3" and job["audioKey"] is None
    done, _ = poll(running, job["jobId"])
    assert done["status"] == "complete", done["error"]
    assert abs(done["result"]["duration"] - 20.0) < 0.1
    log = (running.workdir / "worker.log").read_text()
    assert f"{base}/sample.mp3" not in log  # a client's URL may be signed: never logged


@pytest.mark.parametrize(("path", "code"), [
    ("/to-canary", "forbidden_url"), ("/to-metadata", "forbidden_url"),
    ("/missing.mp3", "download_failed"),
])
def test_a_bad_audio_url_fails_the_job_with_a_code(urls, path: str, code: str):
    running, base, canary = urls
    job = submit(running, {"kind": "prepare", "audioUrl": f"{base}{path}"})
    done, _ = poll(running, job["jobId"])
    assert done["status"] == "failed" and done["error"]["code"] == code, done["error"]
    assert canary.connections == 0


#: Every hostile form the guard's unit tests refuse, but those that need a fake DNS
#: (the API process resolves for real) and the one too long for the field.
API_HOSTILE = [u for u in HOSTILE_URLS if ".example" not in u and len(u) <= 2048]


@pytest.mark.parametrize("template", API_HOSTILE)
def test_hostile_audio_urls_are_refused_at_submission_before_any_connection(urls, template):
    running, _, canary = urls
    url = template.format(port=canary.port)
    response = running.client().post(running.url("/v1/jobs"), timeout=10,
                                     json={"kind": "prepare", "audioUrl": url})
    assert response.status_code == 400, (url, response.text)
    error = response.json()["error"]
    assert error["code"] == "forbidden_url" and error["field"] == "audioUrl", (url, error)
    assert canary.connections == 0


def test_the_hostile_list_is_long_enough():
    assert len(API_HOSTILE) >= 25


@pytest.mark.parametrize("body", [
    {"kind": "prepare"},
    {"kind": "prepare", "audioUrl": "https://example.com/a.mp3", "audioKey": "uploads/a/b.mp3"},
])
def test_exactly_one_of_audio_key_and_audio_url(urls, body):
    running, _, _ = urls
    response = running.client().post(running.url("/v1/jobs"), json=body, timeout=10)
    assert response.status_code == 400
    assert "either audioKey" in response.json()["error"]["message"]
