"""Driving a running stack as a client would: upload, submit, poll, download."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests

from devstack import Stack
from jobs.constants import TERMINAL_STATES, job_redis_key
from jobs.store import Job
from tests.helpers.samples import SAMPLE

TERMINAL = TERMINAL_STATES


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """Poll ``check()`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def wait_for_line(log: Path, text: str, timeout: float = 30) -> None:
    """Wait until ``text`` is in the log file: a process may log a step a moment after
    the API already shows its effect."""
    wait_for(lambda: text in log.read_text(), timeout, f"{text!r} in {log.name}")


def upload(stack: Stack, path: Path, name: str | None = None) -> str:
    with open(path, "rb") as file:
        response = stack.client().post(
            stack.url("/v1/uploads"), files={"file": (name or path.name, file)}, timeout=60
        )
    assert response.status_code == 201, response.text
    assert response.json()["bytes"] == path.stat().st_size
    return response.json()["audioKey"]


def submit(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.client().post(stack.url("/v1/jobs"), json=body, timeout=30)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['jobId']}"
    return response.json()


def poll(stack: Stack, job_id: str, timeout: float = 240) -> tuple[dict[str, Any], list[float]]:
    """Poll until the job ends; return it and every progress value seen."""
    client = stack.client()
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(stack.url(f"/v1/jobs/{job_id}"), timeout=30).json()
        seen.append(job["progress"])
        if job["status"] in TERMINAL:
            return job, seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def run(stack: Stack, audio: Path, body: dict[str, Any]) -> tuple[dict[str, Any], list[float]]:
    key = upload(stack, audio)
    job = submit(stack, {**body, "audioKey": key})
    assert job["status"] == "queued" and job["progress"] == 0.0
    return poll(stack, job["jobId"])


def download(job: dict[str, Any], dest: Path) -> Path:
    """GET the job's downloadUrl with no credentials at all."""
    response = requests.get(job["downloadUrl"], timeout=60)
    assert response.status_code == 200, response.text[:300]
    dest.write_bytes(response.content)
    return dest


def record(stack: Stack, job_id: str) -> Job:
    """The job record as the API keeps it in Redis (what clients never see: the
    current attempt and who runs it)."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return Job.from_json(client.get(job_redis_key(job_id)))
    finally:
        client.close()


def attempt_of(stack: Stack, job_id: str) -> str | None:
    return record(stack, job_id).attempt_id


class AudioServer:
    """The sample's bytes (or ``audio``) over HTTP at any path (a client's ``audioUrl``,
    a store's signed link), counting the GETs; ``asked`` is set at the first."""

    def __init__(self, audio: bytes | None = None) -> None:
        audio, served = SAMPLE.read_bytes() if audio is None else audio, self
        self.asked = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                served.gets += 1
                served.asked.set()
                self.send_response(200)
                self.send_header("Content-Length", str(len(audio)))
                self.end_headers()
                self.wfile.write(audio)

            def log_message(self, *args: object) -> None:
                pass

        self.gets = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server_address = self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/episode.mp3"

    def shutdown(self) -> None:
        self.server.shutdown()
