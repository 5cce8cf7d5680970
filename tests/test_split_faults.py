"""The fault matrix of split renders, done for real: processes killed by pid, Redis
restarted, the store hanging. Each test runs its own redis-server, API, beat and
workers with windows of 5 s past 10 s of clip (the 20 s sample makes 4 windows), a
6 s lease and a reaper every second. Each ends with the job complete once or ended
with a code, one output at most, and nothing left under ``work/{jobId}/``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest

import devstack as st
from jobs.store import Job
from tests.helpers.e2e import poll, record, submit, upload, wait_for
from tests.helpers.faulty_s3 import HANG, PASSTHROUGH, FaultyS3
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import ffmpeg_encoders, start_api

FLEET = {"SPLIT_MIN_SECONDS": "10", "SEGMENT_SECONDS": "5", "LEASE_SECONDS": "6",
         "REAP_INTERVAL": "1"}
#: Windows slow enough to be caught mid-way: 720p60 at high quality.
SLOW_SPLIT = {"kind": "render", "options": {"width": 1280, "height": 720, "fps": 60,
                                            "quality": 18}}


@pytest.fixture
def parts(tmp_path: Path):
    with ExitStack() as stack:
        yield stack, tmp_path


def start(stack: ExitStack, tmp_path: Path, redis_url: str | None = None,  # noqa: ANN201
          storage: dict[str, str] | None = None):
    redis_url = redis_url or stack.enter_context(st.redis_server(tmp_path))
    running = start_api(stack, tmp_path, redis_url, storage, **FLEET)
    running.procs["beat"] = stack.enter_context(st.beat(running.env, tmp_path))
    return running


def encoders_of(worker: subprocess.Popen[bytes]) -> list[int]:
    """The window encoders running in ``worker``'s pool (other stacks' left out)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(worker.pid)], capture_output=True,
                         text=True, check=False).stdout
    pool = {int(pid) for pid in out.split()}
    return [pid for pid, parent in ffmpeg_encoders() if parent in pool]


def windows(job: Job) -> list[dict]:
    return (job.split or {"windows": []})["windows"]


def running_windows(running, job_id: str, count: int) -> list[tuple[int, dict]]:  # noqa: ANN001
    """Wait until ``count`` windows are under way (started, some progress)."""
    def check() -> list[tuple[int, dict]] | None:
        busy = [(i, w) for i, w in enumerate(windows(record(running, job_id)))
                if w["attempt"] and w["progress"] > 0.05]
        return busy if len(busy) >= count else None
    return wait_for(check, 120, f"{count} window(s) under way")


def work_left(tmp_path: Path, job_id: str) -> list[Path]:
    folder = tmp_path / "storage" / "work" / job_id
    return sorted(folder.iterdir()) if folder.exists() else []


def assert_cleaned(tmp_path: Path, job_id: str) -> None:
    wait_for(lambda: not work_left(tmp_path, job_id), 30, "work/ removed")


def test_a_windows_worker_child_killed_is_redelivered_alone(parts):
    stack, tmp_path = parts
    running = start(stack, tmp_path)
    worker = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW_SPLIT, "audioKey": upload(running, SAMPLE)})["jobId"]
    (index, window), *_ = running_windows(running, job_id, 1)
    child = int(window["worker"].rsplit("/", 1)[1])
    assert child in {ppid for _, ppid in ffmpeg_encoders()}  # mid-window
    os.kill(child, signal.SIGKILL)

    done, seen = poll(running, job_id, timeout=240)
    assert done["status"] == "complete", done["error"]
    assert seen == sorted(seen)
    kept = record(running, job_id)
    assert kept.split["planAttempts"] == 1  # the clip was not analysed again
    assert [w["attempts"] for w in windows(kept)] == [
        2 if i == index else 1 for i in range(len(windows(kept)))]
    assert (tmp_path / "storage" / f"renders/{job_id}/output.mp4").stat().st_size > 0
    assert worker.poll() is None
    assert_cleaned(tmp_path, job_id)


def test_a_whole_worker_killed_holding_two_windows_completes_on_another(parts):
    stack, tmp_path = parts
    running = start(stack, tmp_path)
    first = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW_SPLIT, "audioKey": upload(running, SAMPLE)})["jobId"]
    held = running_windows(running, job_id, 2)
    os.killpg(first.pid, signal.SIGSTOP)  # frozen: no heartbeat, no frame
    stack.enter_context(st.worker(running.env, tmp_path / "w2.log", name="w2"))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    done, seen = poll(running, job_id, timeout=300)
    assert done["status"] == "complete", done["error"]
    assert seen == sorted(seen)
    kept = record(running, job_id)
    for index, _ in held:  # each sent again alone, after its lease died
        assert windows(kept)[index]["attempts"] == 2
    assert "lost its worker; sent again" in (tmp_path / "api.log").read_text()
    assert kept.worker is None or kept.worker.startswith("w2@")
    assert_cleaned(tmp_path, job_id)


def test_cancel_mid_split_stops_every_window_and_leaves_nothing(parts):
    stack, tmp_path = parts
    running = start(stack, tmp_path)
    worker = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW_SPLIT, "audioKey": upload(running, SAMPLE)})["jobId"]
    running_windows(running, job_id, 2)
    assert len(encoders_of(worker)) == 2
    answer = running.client().delete(running.url(f"/v1/jobs/{job_id}"), timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "canceled"
    wait_for(lambda: not encoders_of(worker), 20, "every window's encoder stopped")
    time.sleep(3)  # the windows not started yet are delivered and do nothing
    assert not encoders_of(worker)
    log = (tmp_path / "w1.log").read_text()
    # the two windows and the audio's unit still queued: each delivered, each did nothing
    assert log.count("this delivery does nothing") == 3
    assert record(running, job_id).status == "canceled"
    assert_cleaned(tmp_path, job_id)
    assert not (tmp_path / "storage" / "renders" / job_id).exists()


def test_a_window_that_fails_for_good_fails_the_job_with_its_code(parts):
    stack, tmp_path = parts
    running = start(stack, tmp_path)
    worker = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW_SPLIT, "audioKey": upload(running, SAMPLE)})["jobId"]
    wait_for(lambda: record(running, job_id).split, 60, "the job split")
    # the clip's features vanish: the windows not started yet cannot be drawn
    features = tmp_path / "storage" / "work" / job_id / "features.npz"
    features.unlink()
    done, _ = poll(running, job_id, timeout=240)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "internal_error"
    wait_for(lambda: not encoders_of(worker), 20, "the other windows stopped")
    assert not (tmp_path / "storage" / "renders" / job_id).exists()
    assert_cleaned(tmp_path, job_id)


def test_redis_restarted_mid_split_completes_once(parts):
    stack, tmp_path = parts
    port = st.free_port()
    redis_stack = ExitStack()
    redis_url = redis_stack.enter_context(st.redis_server(tmp_path, port=port))
    running = start(stack, tmp_path, redis_url)
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW_SPLIT, "audioKey": upload(running, SAMPLE)})["jobId"]
    running_windows(running, job_id, 1)
    redis_stack.close()  # SIGTERM: Redis writes its AOF and stops
    time.sleep(2)
    stack.enter_context(st.redis_server(tmp_path, port=port))

    done, seen = poll(running, job_id, timeout=300)
    assert done["status"] == "complete", done["error"]
    assert seen == sorted(seen)
    kept = record(running, job_id)
    assert all(w["done"] for w in windows(kept))
    assert (tmp_path / "storage" / f"renders/{job_id}/output.mp4").stat().st_size > 0
    assert_cleaned(tmp_path, job_id)


def test_the_joins_worker_killed_while_joining_completes_once(parts, s3_env):
    stack, tmp_path = parts
    proxy = stack.enter_context(FaultyS3(s3_env["S3_ENDPOINT_URL"]))
    storage = {**s3_env, "S3_ENDPOINT_URL": proxy.url, "S3_READ_TIMEOUT": "60"}
    running = start(stack, tmp_path, storage=storage)
    first = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    proxy.mode = HANG  # the join's upload of the video hangs: the join is caught in the act
    job_id = submit(running, {"kind": "render", "audioKey": upload(running, SAMPLE),
                              "options": {"width": 640, "height": 360}})["jobId"]
    wait_for(lambda: proxy.seen(key=f"renders/{job_id}/output.mp4"),
             120, "the join uploading")
    joining = record(running, job_id)
    assert joining.attempt_id is not None and all(w["done"] for w in windows(joining))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    proxy.mode = PASSTHROUGH
    stack.enter_context(st.worker(running.env, tmp_path / "w2.log", name="w2"))

    done, _ = poll(running, job_id, timeout=240)
    assert done["status"] == "complete", done["error"]
    kept = record(running, job_id)
    assert kept.attempts - kept.split["planAttempts"] == 2  # joined twice, planned once
    assert "the worker joining it was lost; join sent again" in (
        tmp_path / "api.log").read_text()
    assert len((tmp_path / "w2.log").read_text().split("joined and stored at")) == 2
    bucket = boto3.client(
        "s3", endpoint_url=s3_env["S3_ENDPOINT_URL"], region_name=s3_env["AWS_REGION"],
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"])
    wait_for(lambda: not bucket.list_objects_v2(Bucket=s3_env["S3_BUCKET"],
                                                Prefix=f"work/{job_id}/").get("Contents"),
             30, "work/ removed from the bucket")
