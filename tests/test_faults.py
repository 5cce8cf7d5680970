"""Faults done for real: processes are killed by pid and Redis is restarted.
Each test runs its own redis-server, API and worker, so the shared stacks of the
other tests are never disturbed."""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

import devstack as st
from tests.helpers.e2e import poll, submit, upload, wait_for, wait_for_line
from tests.helpers.media import probe
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import SLOW, ffmpeg_encoders, start_api


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [int(p) for p in out.split()]


@pytest.fixture
def parts(tmp_path: Path):
    """Build a stack piece by piece: redis (restartable), API, workers."""
    with ExitStack() as stack:
        yield stack, tmp_path


def start_stack(stack: ExitStack, tmp_path: Path, **extra: str):  # noqa: ANN201
    """redis-server, the API and one worker; returns (stack, worker process)."""
    redis_url = stack.enter_context(st.redis_server(tmp_path))
    running = start_api(stack, tmp_path, redis_url, **extra)
    return running, stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))


def test_a_worker_child_killed_mid_render_is_redelivered_and_completes_once(parts):
    stack, tmp_path = parts
    running, worker = start_stack(stack, tmp_path)
    job = submit(running, {**SLOW, "audioKey": upload(running, SAMPLE)})
    job_id = job["jobId"]
    client = running.client()
    wait_for(lambda: client.get(running.url(f"/v1/jobs/{job_id}"), timeout=10).json()
             ["progress"] >= 0.15, 60, "the render to be under way")
    ((encoder, child),) = wait_for(lambda: rendering_children(worker.pid), 20, "an encoder")
    os.kill(child, signal.SIGKILL)

    done, seen = poll(running, job_id, timeout=180)
    assert done["status"] == "complete", done["error"]
    assert seen == sorted(seen)  # the second attempt's progress never showed as a step back
    log = (tmp_path / "worker.log").read_text()
    assert log.count(f"Task soundreel.render_job[{job_id}] received") == 2  # redelivered once
    assert "WorkerLostError" in log or "signal 9" in log
    # the killed child's ffmpeg died with it (PDEATHSIG), its temp dir was swept
    assert encoder not in [p for p, _ in ffmpeg_encoders()]
    assert list((tmp_path / "tmp").glob("soundreel-*")) == []
    video = tmp_path / "storage" / f"renders/{job_id}/output.mp4"
    assert abs(float(probe(video)["format"]["duration"]) - 20.0) < 0.1
    # one video and its poster: nothing left of the attempt that was killed
    assert sorted(p.name for p in video.parent.iterdir()) == ["output.mp4", "thumbnail.jpg"]


def rendering_children(worker_pid: int) -> list[tuple[int, int]]:
    """(ffmpeg encoder, pool child) pairs; the pool is read afresh, since Celery
    replaces a killed child with a new process."""
    pool = set(children(worker_pid))
    return [(p, pp) for p, pp in ffmpeg_encoders() if pp in pool]


def kill_the_child_rendering(worker_pid: int) -> None:
    ((_, child),) = wait_for(lambda: rendering_children(worker_pid), 60, "an encoder")
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: child not in children(worker_pid), 10, "the child to be gone")


def test_a_poison_job_fails_worker_lost_after_max_attempts_and_others_complete(parts):
    stack, tmp_path = parts
    running, worker = start_stack(stack, tmp_path, MAX_ATTEMPTS="2")
    audio = upload(running, SAMPLE)
    poison = submit(running, {**SLOW, "audioKey": audio})["jobId"]
    for _ in range(2):  # it "crashes" its worker child on every attempt
        kill_the_child_rendering(worker.pid)
    done, _ = poll(running, poison, timeout=120)
    assert done["status"] == "failed" and done["error"]["code"] == "worker_lost"
    assert done["attempts"] == 3  # two that died, the third refused before any work
    wait_for_line(tmp_path / "worker.log", f"job {poison} is failed: this delivery does nothing")
    other, _ = poll(running, submit(running, {"kind": "prepare", "audioKey": audio})["jobId"])
    assert other["status"] == "complete"


def test_redis_restart_with_aof_keeps_queued_jobs(parts):
    stack, tmp_path = parts
    port = st.free_port()
    with st.redis_server(tmp_path, port=port) as redis_url:
        running = start_api(stack, tmp_path, redis_url)
        audio = upload(running, SAMPLE)
        jobs = [submit(running, {"kind": "prepare", "audioKey": audio})["jobId"]
                for _ in range(5)]
    # Redis is down now (SIGTERM: it wrote its AOF); nothing took the jobs yet
    down = running.client().get(running.url(f"/v1/jobs/{jobs[0]}"), timeout=20)
    assert down.status_code == 503
    stack.enter_context(st.redis_server(tmp_path, port=port))
    stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))
    for job_id in jobs:
        done, _ = poll(running, job_id, timeout=120)
        assert done["status"] == "complete", done["error"]


def test_redis_down_on_submit_is_503_creates_nothing_and_recovers(parts):
    stack, tmp_path = parts
    port = st.free_port()
    with st.redis_server(tmp_path, port=port) as redis_url:
        running = start_api(stack, tmp_path, redis_url)
        audio = upload(running, SAMPLE)
    refused = running.client().post(running.url("/v1/jobs"), timeout=30,
                                    json={"kind": "prepare", "audioKey": audio})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "service_unavailable"
    redis_url = stack.enter_context(st.redis_server(tmp_path, port=port))
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_url)
    assert list(client.scan_iter("soundreel:job:*")) == []  # no record without a task
    assert client.llen("render") == 0  # and no task without a record
    stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))
    job = submit(running, {"kind": "prepare", "audioKey": audio})
    done, _ = poll(running, job["jobId"], timeout=120)
    assert done["status"] == "complete"
    assert requests.get(done["downloadUrl"], timeout=30).status_code == 200


def test_warm_shutdown_mid_render_finishes_the_job(parts):
    stack, tmp_path = parts
    running, worker = start_stack(stack, tmp_path)
    job_id = submit(running, {**SLOW, "audioKey": upload(running, SAMPLE)})["jobId"]
    wait_for(lambda: rendering_children(worker.pid), 60, "the render to be under way")
    os.kill(worker.pid, signal.SIGTERM)  # what `docker stop` sends to the worker: warm shutdown
    worker.wait(timeout=120)
    log = (tmp_path / "worker.log").read_text()
    assert f"Task soundreel.render_job[{job_id}] succeeded" in log  # it finished the render
    # its completion report is a queued callback task: the next worker delivers it
    stack.enter_context(st.worker(running.env, tmp_path / "worker2.log", name="w2"))
    done, _ = poll(running, job_id, timeout=60)
    assert done["status"] == "complete", done["error"]
    assert abs(done["result"]["duration"] - 20.0) < 0.1
    assert f"job {job_id}: render of" not in (tmp_path / "worker2.log").read_text()


@pytest.mark.timeout(900)  # 200 jobs on 2 cores
def test_200_jobs_on_2_workers_all_complete_once(parts):
    stack, tmp_path = parts
    redis_url = stack.enter_context(st.redis_server(tmp_path))
    running = start_api(stack, tmp_path, redis_url)
    for name in ("w1", "w2"):
        stack.enter_context(st.worker(running.env, tmp_path / f"{name}.log", name=name))
    audio = upload(running, SAMPLE)
    jobs = [submit(running, {"kind": "prepare", "audioKey": audio})["jobId"]
            for _ in range(200)]
    results = [poll(running, job_id, timeout=600)[0] for job_id in jobs]
    assert [r["status"] for r in results] == ["complete"] * 200
    outputs = list((tmp_path / "storage" / "prepared").glob("*/audio.wav"))
    assert len(outputs) == 200
    logs = (tmp_path / "w1.log").read_text() + (tmp_path / "w2.log").read_text()
    starts = [logs.count(f"job {job_id}: prepare of") for job_id in jobs]
    assert starts == [1] * 200  # each rendered exactly once, none twice
    assert "w1@" in logs and "w2@" in logs
    assert logs.count(": prepare of") == 200 and all(r["attempts"] == 1 for r in results)
