"""`celery -A tasks flower` shows operators the workers and the render tasks."""

from __future__ import annotations

import time

import requests

from devstack import BIN, free_port, process, wait_until
from tests.helpers.e2e import poll, submit, upload
from tests.helpers.samples import SAMPLE

AUTH = ("ops", "flower-test-password")


def test_flower_lists_the_worker_and_the_render_task(local_stack):
    port = free_port()
    log = local_stack.workdir / "flower.log"
    env = {**local_stack.env, "FLOWER_BASIC_AUTH": ":".join(AUTH)}
    cmd = [str(BIN / "celery"), "-A", "tasks", "flower", "--address=127.0.0.1", f"--port={port}"]
    base = f"http://127.0.0.1:{port}"
    with process(cmd, log, env):
        wait_until(lambda: requests.get(f"{base}/healthcheck", timeout=1).ok, 30, "Flower", log)
        assert requests.get(f"{base}/api/workers", timeout=10).status_code == 401
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
