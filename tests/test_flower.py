"""`python -m tasks.flower` (the Procfile's and compose file's ``flower``) shows
operators the workers and the render tasks, behind a password, on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devstack import ROOT, free_port, process, wait_until
from tests.helpers.e2e import poll, submit, upload
from tests.helpers.samples import SAMPLE

AUTH = ("ops", "flower-test-password")
FLOWER = [sys.executable, "-m", "tasks.flower"]
#: /proc/net/tcp's LISTEN state, and 127.0.0.1 as it writes it.
LISTEN, LOOPBACK = "0A", "0100007F"


def flower_env(stack, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in stack.env.items() if not key.startswith("FLOWER_")}
    return {**env, "FLOWER_PORT": str(port), **extra}


def listening_on(port: int) -> set[str]:
    """The local addresses (as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            host, _, hex_port = fields[1].partition(":")
            if fields[3] == LISTEN and int(hex_port, 16) == port:
                found.add(host)
    return found


@pytest.mark.parametrize("auth", [None, "", "ops", "ops:", ":secret", "ops:pw,nobody"])
def test_flower_does_not_start_without_a_password(local_stack, auth):
    port = free_port()
    extra = {"FLOWER_BASIC_AUTH": auth} if auth is not None else {}
    ended = subprocess.run(FLOWER, env=flower_env(local_stack, port, **extra), cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert ended.returncode == 2
    assert "FLOWER_BASIC_AUTH" in ended.stderr
    assert listening_on(port) == set()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_flower_lists_the_worker_and_the_render_task(local_stack):
    port = free_port()
    log = local_stack.workdir / "flower.log"
    env = flower_env(local_stack, port, FLOWER_BASIC_AUTH=":".join(AUTH))
    base = f"http://127.0.0.1:{port}"
    with process(FLOWER, log, env):
        wait_until(lambda: requests.get(f"{base}/healthcheck", timeout=1).ok, 30, "Flower", log)
        # on loopback only, unless FLOWER_ADDRESS says otherwise
        assert listening_on(port) == {LOOPBACK}
        assert requests.get(f"{base}/api/workers", timeout=10).status_code == 401
        assert requests.get(f"{base}/", timeout=10).status_code == 401
        # as the README says: Flower serves its Prometheus metrics without the password
        metrics = requests.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200 and "flower_" in metrics.text
        audio = upload(local_stack, SAMPLE)
        # Flower sees only the events sent after it subscribed, which may be a moment
        # after it answers: a job it missed is followed by another one
        for _ in range(3):
            job = submit(local_stack, {"kind": "prepare", "audioKey": audio})
            poll(local_stack, job["jobId"])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                workers = requests.get(f"{base}/api/workers", auth=AUTH, timeout=20).json()
                tasks = requests.get(f"{base}/api/tasks", auth=AUTH, timeout=20).json()
                seen = tasks.get(job["jobId"]) or {}
                # all of its life: a job whose first events came before Flower listened
                # shows without its name
                if seen.get("state") == "SUCCESS" and seen.get("name") and workers:
                    break
                time.sleep(0.5)
            else:
                continue
            break
        assert job["jobId"] in tasks, "Flower showed none of 3 jobs"
        assert any(name.startswith("w1@") for name in workers)
        assert tasks[job["jobId"]]["name"] == "soundreel.render_job"
        assert tasks[job["jobId"]]["state"] == "SUCCESS"
