"""Leases and the reaper, for real: a whole worker SIGKILLed mid-render, a job past
its deadline, a second delivery of a job that is alive. Each test runs its own
redis-server, API, Celery beat and workers, with a short lease so the reaper acts
within seconds."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

import devstack as st
from config.settings import Settings
from jobs.store import epoch_of
from tasks.celeryapp import create_celery
from tests.helpers.e2e import poll, record, submit, upload, wait_for, wait_for_line
from tests.helpers.media import long_audio, probe
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import SLOW, ffmpeg_encoders, start_api

#: A lease this short is lost 6 s after the last heartbeat (workers beat every 2 s, so
#: a loaded machine may miss two beats before the reaper takes a live job away).
FAST_REAPER = {"LEASE_SECONDS": "6", "REAP_INTERVAL": "1"}


@pytest.fixture
def parts(tmp_path: Path):
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url, **FAST_REAPER)
        running.procs["beat"] = stack.enter_context(st.beat(running.env, tmp_path))
        yield stack, running, tmp_path


def test_a_whole_worker_killed_mid_render_completes_on_another_after_lease_expiry(parts):
    stack, running, tmp_path = parts
    first = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW, "audioKey": upload(running, SAMPLE)})["jobId"]
    wait_for(lambda: record(running, job_id).progress >= 0.15, 60, "the render under way")
    assert record(running, job_id).worker.startswith("w1@")
    # frozen at once (no more heartbeats, no more frames), so the render cannot finish
    # while the second worker boots on a busy machine; then killed
    os.killpg(first.pid, signal.SIGSTOP)
    second = stack.enter_context(st.worker(running.env, tmp_path / "w2.log", name="w2"))
    os.killpg(first.pid, signal.SIGKILL)  # the parent, its pool and their ffmpeg: no goodbye
    first.wait()

    done, seen = poll(running, job_id, timeout=180)
    assert done["status"] == "complete", done["error"]
    after = record(running, job_id)
    assert after.attempts == 2 and after.worker.startswith("w2@")
    assert seen == sorted(seen)  # the bar never went back
    assert "worker was lost; queued again" in (tmp_path / "api.log").read_text()
    assert (tmp_path / "w2.log").read_text().count(f"render_job[{job_id}] received") == 1
    video = tmp_path / "storage" / f"renders/{job_id}/output.mp4"
    assert abs(float(probe(video)["format"]["duration"]) - 20.0) < 0.1
    # one video and its poster: nothing left of the attempt that was killed
    assert sorted(p.name for p in video.parent.iterdir()) == ["output.mp4", "thumbnail.jpg"]
    assert second.poll() is None


def test_a_second_delivery_of_a_job_whose_worker_is_alive_does_nothing(parts):
    stack, running, tmp_path = parts
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    job_id = submit(running, {**SLOW, "audioKey": upload(running, SAMPLE)})["jobId"]
    wait_for(lambda: record(running, job_id).progress >= 0.1, 60, "the render under way")
    holder = record(running, job_id).attempt_id
    # the broker hands the same job out again (as after a visibility timeout)
    app = create_celery(Settings.from_env(running.env))
    job = record(running, job_id)
    app.send_task("soundreel.render_job", task_id=job_id, kwargs={
        "job_id": job_id, "kind": job.kind, "audio_key": job.audio_key,
        "output_key": job.output_key, "options": job.options,
    })
    log = tmp_path / "w1.log"
    wait_for_line(log, f"job {job_id} is running: this delivery does nothing", 30)
    done, _ = poll(running, job_id, timeout=180)
    assert done["status"] == "complete" and done["attempts"] == 1
    assert record(running, job_id).attempt_id == holder


def test_a_job_past_its_deadline_ends_timed_out_queued_or_running(parts):
    stack, running, tmp_path = parts
    audio = upload(running, long_audio(tmp_path, 240))
    # queued, with no worker for its queue (only one for callbacks, which runs the reaper)
    stack.enter_context(st.worker(running.env, tmp_path / "c1.log", name="c1",
                                  queues="callbacks"))
    queued = submit(running, {"kind": "prepare", "audioKey": audio, "timeoutSeconds": 10})
    done, _ = poll(running, queued["jobId"], timeout=60)
    assert done["status"] == "timed_out" and done["error"]["code"] == "timed_out"
    assert done["attempts"] == 0 and done["deadlineAt"] == queued["deadlineAt"]

    worker = stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    log = tmp_path / "w1.log"
    wait_for_line(log, f"job {queued['jobId']} is timed_out: this delivery does nothing", 30)
    # running when the deadline passes: the worker stops at its next heartbeat
    slow = submit(running, {**SLOW, "audioKey": audio, "timeoutSeconds": 12})["jobId"]
    wait_for(lambda: record(running, slow).status == "running", 30, "the render to start")
    done, _ = poll(running, slow, timeout=60)
    assert done["status"] == "timed_out" and done["result"] is None
    wait_for_line(log, f"job {slow}: stopped, the API said this attempt is over", 15)
    wait_for(lambda: not ffmpeg_encoders(under=tmp_path), 10, "its ffmpeg to be gone")
    assert not (tmp_path / "storage" / f"renders/{slow}").exists()
    assert list((tmp_path / "tmp").glob("soundreel-*")) == []
    assert worker.poll() is None


def test_a_queued_job_whose_message_was_lost_is_sent_again(parts):
    stack, running, tmp_path = parts
    stack.enter_context(st.worker(running.env, tmp_path / "c1.log", name="c1",
                                  queues="callbacks"))
    job_id = submit(running, {"kind": "prepare", "audioKey": upload(running, SAMPLE)})["jobId"]
    broker = redis.Redis.from_url(running.redis_url)
    # the message is gone (as after a half-done send); prepares go to the preview queue
    assert broker.delete("preview") == 1
    wait_for(lambda: broker.llen("preview") == 1, 30, "the reaper to send it again")
    wait_for_line(tmp_path / "api.log", "was queued with no message in the broker; sent again")
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1"))
    done, _ = poll(running, job_id, timeout=60)
    assert done["status"] == "complete" and done["attempts"] == 1


def test_a_render_longer_than_the_visibility_timeout_is_rendered_once(parts):
    stack, running, tmp_path = parts
    # the broker hands the message out again 3 s after delivery, mid-render
    env = {**running.env, "BROKER_VISIBILITY_TIMEOUT": "3"}
    stack.enter_context(st.worker(env, tmp_path / "w1.log", name="w1"))
    audio = upload(running, long_audio(tmp_path, 30))  # a render of 20 s or more
    job_id = submit(running, {**SLOW, "audioKey": audio})["jobId"]
    done, _ = poll(running, job_id, timeout=300)
    assert done["status"] == "complete" and done["attempts"] == 1
    log = (tmp_path / "w1.log").read_text()
    assert log.count(f"render_job[{job_id}] received") >= 2  # it was delivered again...
    assert f"job {job_id} is running: this delivery does nothing" in log  # ...and refused
    assert log.count(f"job {job_id}: render of") == 1  # rendered once
    video = tmp_path / "storage" / f"renders/{job_id}/output.mp4"
    assert abs(float(probe(video)["format"]["duration"]) - 30.0) < 0.1


# --- between a task's end and its result callback ------------------------------------


def handed_off_without_a_callback(stack: ExitStack, running: st.Stack, tmp_path: Path) -> str:
    """A small render on a worker that consumes no callbacks: its task ends, hands the
    outcome off, and its result callback waits in the queue."""
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", name="w1",
                                  queues="render,preview"))
    job_id = submit(running, {"kind": "render", "audioKey": upload(running, SAMPLE),
                              "options": {"width": 320, "height": 180}})["jobId"]
    wait_for(lambda: record(running, job_id).handoff, 90, "the task to hand off")
    return job_id


def reap_after(running: st.Stack, job_id: str, seconds: float) -> dict:
    """Run the reaper once ``seconds`` have passed since the job's hand-off."""
    handed = epoch_of(record(running, job_id).handoff["at"])
    wait_for(lambda: time.time() > handed + seconds, seconds + 30, f"{seconds} s to pass")
    answer = running.worker_client().post(running.url("/internal/reap"), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_job_whose_result_callback_waits_is_held_and_reported_once(parts):
    stack, running, tmp_path = parts
    job_id = handed_off_without_a_callback(stack, running, tmp_path)
    # past a whole lease (6 s) since the task's end: an unheld job would be handed on
    counts = reap_after(running, job_id, 6 + 2)
    job = record(running, job_id)
    assert counts["requeued"] == 0 and job.status == "running" and job.attempts == 1
    stack.enter_context(st.worker(running.env, tmp_path / "cb.log", name="cb",
                                  queues="callbacks"))
    done, _ = poll(running, job_id, timeout=60)
    assert done["status"] == "complete" and done["attempts"] == 1
    assert (tmp_path / "w1.log").read_text().count(f"render_job[{job_id}] received") == 1
    wait_for_line(tmp_path / "cb.log", f"job {job_id}: reported complete")


def test_a_result_callback_later_than_the_hold_finds_the_job_ended_from_the_hand_off(
    tmp_path: Path,
):
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url, **FAST_REAPER, HANDOFF_SECONDS="8")
        job_id = handed_off_without_a_callback(stack, running, tmp_path)
        counts = reap_after(running, job_id, 8 + 2)
        assert counts["fromHandoff"] == 1 and counts["requeued"] == 0
        done = record(running, job_id)
        assert done.status == "complete" and done.attempts == 1  # rendered once
        assert done.result["videoKey"] == f"renders/{job_id}/output.mp4"
        # the late callback is accepted and ignored: the record does not change
        stack.enter_context(st.worker(running.env, tmp_path / "cb.log", name="cb",
                                      queues="callbacks"))
        wait_for_line(tmp_path / "cb.log", f"job {job_id}: reported complete")
        assert record(running, job_id) == done
        assert "ended complete from the hand-off" in (tmp_path / "api.log").read_text()
