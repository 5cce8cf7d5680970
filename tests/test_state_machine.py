"""The job state machine: every allowed and forbidden transition, and reports
that arrive twice, late or out of order."""

from __future__ import annotations

import itertools
import threading

import pytest

from storage import Event, Job, JobNotFound, JobStore
from storage.constants import CANCELED, COMPLETE, FAILED, QUEUED, RUNNING, STATES
from storage.jobs import TRANSITIONS, apply

EVENTS = {
    "start": Event.started(max_attempts=3),
    "progress": Event.progressed(0.5, "rendering"),
    "complete": Event.completed({"videoKey": "renders/x/output.mp4", "format": "mp4",
                                 "duration": 3.0}),
    "fail": Event.failed("render_failed", "ffmpeg died"),
    "cancel": Event.canceled(),
}


def make_job(status: str = QUEUED, progress: float = 0.0, **extra) -> Job:
    return Job(job_id="j" * 32, tenant="acme", kind="render", audio_key="uploads/a/b.mp3",
               output_key="renders/j/output.mp4", status=status, progress=progress, **extra)


EXPECTED = {
    (QUEUED, "start"): RUNNING,
    (RUNNING, "start"): RUNNING,
    (QUEUED, "progress"): RUNNING,
    (QUEUED, "complete"): COMPLETE,
    (QUEUED, "fail"): FAILED,
    (RUNNING, "progress"): RUNNING,
    (RUNNING, "complete"): COMPLETE,
    (RUNNING, "fail"): FAILED,
    (QUEUED, "cancel"): CANCELED,
    (RUNNING, "cancel"): CANCELED,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
def test_every_transition_is_allowed_or_ignored_as_the_table_says(state: str, event: str):
    job = make_job(status=state, progress=0.25 if state != QUEUED else 0.0)
    after = apply(job, EVENTS[event])
    if (state, event) in EXPECTED:
        assert after is not None and after.status == EXPECTED[(state, event)]
    else:
        assert after is None, f"{state} + {event} must be ignored"


def test_the_table_in_code_is_the_one_tested():
    assert TRANSITIONS == EXPECTED


def test_terminal_states_are_sticky():
    for status in (COMPLETE, FAILED, CANCELED):
        job = make_job(status=status, progress=1.0)
        for event in EVENTS.values():
            assert apply(job, event) is None


def test_progress_never_goes_backwards():
    job = make_job(status=RUNNING, progress=0.6, stage="rendering")
    assert apply(job, Event.progressed(0.4, "downloading")) is None
    later = apply(job, Event.progressed(0.7))
    assert later is not None and later.progress == 0.7 and later.stage == "rendering"


def test_each_start_is_an_attempt_and_past_max_attempts_the_job_fails_worker_lost():
    job = make_job()
    for attempt in (1, 2):
        job = apply(job, Event.started(max_attempts=2))
        assert job.status == RUNNING and job.attempts == attempt
    given_up = apply(job, Event.started(max_attempts=2))
    assert given_up.status == FAILED and given_up.error["code"] == "worker_lost"
    assert apply(given_up, Event.started(max_attempts=2)) is None  # sticky


def test_a_redelivery_keeps_the_progress_and_stage_already_shown():
    job = make_job(status=RUNNING, progress=0.6, stage="rendering", attempts=1)
    again = apply(job, Event.started(max_attempts=3))
    assert (again.progress, again.stage, again.attempts) == (0.6, "rendering", 2)


def test_a_late_report_from_an_earlier_stage_is_ignored():
    job = make_job(status=RUNNING, progress=0.95, stage="uploading")
    assert apply(job, Event.progressed(0.95, "rendering")) is None
    assert apply(job, Event.progressed(0.97, "rendering")) is None
    assert apply(job, Event.progressed(0.97, "uploading")).progress == 0.97


def test_duplicate_progress_report_is_ignored():
    job = make_job(status=RUNNING, progress=0.5, stage="rendering")
    assert apply(job, Event.progressed(0.5, "rendering")) is None


def test_progress_is_clamped_and_nan_ignored():
    job = make_job()
    assert apply(job, Event.progressed(float("nan"))) is None
    assert apply(job, Event.progressed(7.0)).progress == 1.0


def test_complete_sets_result_and_full_progress():
    after = apply(make_job(status=RUNNING, progress=0.3), EVENTS["complete"])
    assert after.progress == 1.0 and after.result["videoKey"] == "renders/x/output.mp4"
    assert after.error is None


def test_failure_keeps_the_stage_it_failed_in():
    job = make_job(status=RUNNING, progress=0.3, stage="uploading")
    after = apply(job, EVENTS["fail"])
    assert after.stage == "uploading"
    assert after.error == {"code": "render_failed", "message": "ffmpeg died"}


# --- the Redis-backed store ------------------------------------------------------


def test_store_round_trips_and_reports_whether_an_event_applied(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    job, applied = store.report("j" * 32, Event.progressed(0.2, "downloading"))
    assert applied and job.status == RUNNING
    job, applied = store.report("j" * 32, EVENTS["complete"])
    assert applied and store.get("j" * 32).status == COMPLETE
    job, applied = store.report("j" * 32, Event.progressed(0.9, "rendering"))
    assert not applied and job.status == COMPLETE and job.progress == 1.0
    job, applied = store.report("j" * 32, EVENTS["fail"])
    assert not applied and store.get("j" * 32).status == COMPLETE


def test_store_refuses_a_second_create_and_unknown_jobs(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    with pytest.raises(ValueError):
        store.create(make_job())
    with pytest.raises(JobNotFound):
        store.report("x" * 32, EVENTS["fail"])
    with pytest.raises(JobNotFound):
        store.get("x" * 32)


def test_racing_reports_end_with_the_highest_progress_and_one_terminal_state(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    events = [Event.progressed(i / 100, "rendering") for i in range(100)]
    events.insert(60, EVENTS["complete"])
    threads = [threading.Thread(target=store.report, args=("j" * 32, e)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.get("j" * 32)
    assert final.status == COMPLETE and final.progress == 1.0
