"""The job state machine: every allowed and forbidden transition, and reports
that arrive twice, late or out of order."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace

import pytest

from jobs.constants import CANCELED, COMPLETE, FAILED, QUEUED, RUNNING, STATES, TIMED_OUT
from jobs.errors import JobNotFound
from jobs.store import RULES, Event, Job, JobStore, apply, lease_action, rule_for

A1 = "a1"  # the current attempt of a running job in these tests

EVENTS = {
    "start": Event.started(max_attempts=3, attempt_id="a2", worker="w1@host/2"),
    "progress": Event.progressed(0.5, "rendering", A1),
    "complete": Event.completed({"videoKey": "renders/x/output.mp4", "format": "mp4",
                                 "duration": 3.0}, A1),
    "fail": Event.failed("render_failed", "ffmpeg died", A1),
    "cancel": Event.canceled(),
    "time_out": Event.timed_out(),
    "requeue": Event.requeued(max_attempts=3),
    "release": Event.released("w1@host/1", {"code": "time_limit_exceeded", "message": "x"}),
    "hand_off": Event.handed_off(A1, result={"videoKey": "renders/x/output.mp4"}),
    "reuse": Event.reused({"videoKey": "renders/x/output.mp4", "format": "mp4",
                           "duration": 3.0, "cached": True}),
}


def unpack(report) -> tuple[Job, bool]:  # noqa: ANN001
    return report.job, report.applied


def make_job(status: str = QUEUED, progress: float = 0.0, **extra) -> Job:
    if status == RUNNING:
        extra = {"attempt_id": A1, "worker": "w1@host/1", "attempts": 1, **extra}
    return Job(job_id="j" * 32, tenant="acme", kind="render", audio_key="uploads/a/b.mp3",
               output_key="renders/j/output.mp4", status=status, progress=progress, **extra)


EXPECTED = {
    (QUEUED, "start"): RUNNING,
    (RUNNING, "start"): RUNNING,
    (RUNNING, "progress"): RUNNING,
    (RUNNING, "complete"): COMPLETE,
    (RUNNING, "fail"): FAILED,
    (RUNNING, "release"): FAILED,
    (QUEUED, "cancel"): CANCELED,
    (RUNNING, "cancel"): CANCELED,
    (QUEUED, "time_out"): TIMED_OUT,
    (RUNNING, "time_out"): TIMED_OUT,
    (RUNNING, "requeue"): QUEUED,
    (RUNNING, "hand_off"): RUNNING,
    (QUEUED, "reuse"): COMPLETE,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
def test_every_transition_is_allowed_or_ignored_as_the_table_says(state: str, event: str):
    job = make_job(status=state, progress=0.25 if state != QUEUED else 0.0)
    after = apply(job, EVENTS[event])  # no live lease
    if (state, event) in EXPECTED:
        assert after is not None and after.status == EXPECTED[(state, event)]
    else:
        assert after is None, f"{state} + {event} must be ignored"


#: A split job's events, about its running windows (tests/test_split_machine.py).
SPLIT_PAIRS = {(RUNNING, event) for event in (
    "split", "segment_start", "segment_progress", "segment_end", "segment_release",
    "segment_requeue")}


def test_the_table_has_rules_for_exactly_these_pairs_and_none_for_an_ended_job():
    pairs = {(state, rule.event) for rule in RULES for state in rule.states}
    assert pairs == set(EXPECTED) | SPLIT_PAIRS


@pytest.mark.parametrize(("state", "event"), list(itertools.product(STATES, EVENTS)))
@pytest.mark.parametrize("lease_alive", [False, True])
@pytest.mark.parametrize("attempts", [1, 3])
@pytest.mark.parametrize("same_attempt", [False, True])
def test_the_table_decides_every_outcome_conditions_included(
    state: str, event: str, lease_alive: bool, attempts: int, same_attempt: bool
):
    job = make_job(status=state, progress=0.25 if state != QUEUED else 0.0, attempts=attempts)
    happening = replace(EVENTS[event], attempt_id=A1) if same_attempt else EVENTS[event]
    rule = rule_for(job, happening, lease_alive)
    after = apply(job, happening, lease_alive=lease_alive)
    if rule is None or rule.then is None:
        assert after is None
    else:
        assert after is not None and after.status == rule.then
    assert lease_action(job, happening, lease_alive) == (rule.lease if rule else None)


def test_the_three_outcomes_a_bare_state_table_could_not_tell():
    running = make_job(status=RUNNING, attempts=3)
    # a start or a requeue of a job whose deliveries are spent ends it failed
    assert apply(running, Event.started(3, attempt_id="b2")).status == FAILED
    assert apply(running, Event.requeued(3)).status == FAILED
    # the parent's release without an error ends the attempt, not the job
    released = apply(running, Event.released("w1@host/1"))
    assert released.status == RUNNING and released.attempt_id is None


def test_a_start_while_the_lease_lives_does_nothing_and_once_it_died_takes_over():
    job = make_job(status=RUNNING, progress=0.4, stage="rendering")
    assert apply(job, EVENTS["start"], lease_alive=True) is None
    taken = apply(job, EVENTS["start"], lease_alive=False)
    assert (taken.attempt_id, taken.worker, taken.attempts) == ("a2", "w1@host/2", 2)
    assert (taken.progress, taken.stage) == (0.4, "rendering")  # nothing goes back


@pytest.mark.parametrize("event", ["progress", "complete", "fail"])
def test_reports_of_a_stale_attempt_or_of_none_are_ignored(event: str):
    job = make_job(status=RUNNING, attempt_id="a9")  # another attempt took over
    assert apply(job, EVENTS[event]) is None
    assert apply(make_job(status=RUNNING), replace(EVENTS[event], attempt_id=None)) is None


def test_release_counts_only_from_the_holder_and_without_error_keeps_the_record():
    job = make_job(status=RUNNING)
    assert apply(job, Event.released("w2@host/1", {"code": "x", "message": "y"})) is None
    ended = apply(job, Event.released("w1@host/1"))  # the attempt ends, the job stays
    assert ended.status == RUNNING and ended.attempt_id is None
    assert apply(ended, EVENTS["progress"]) is None  # the dead child's late heartbeat
    failed = apply(job, EVENTS["release"])
    assert failed.status == FAILED and failed.error["code"] == "time_limit_exceeded"


def test_a_start_repeated_by_the_same_attempt_changes_nothing():
    job = make_job(status=RUNNING)
    assert apply(job, Event.started(3, attempt_id=A1), lease_alive=True) is None


def test_requeue_needs_a_dead_lease_and_past_max_attempts_gives_up():
    job = make_job(status=RUNNING, progress=0.3, stage="rendering")
    assert apply(job, EVENTS["requeue"], lease_alive=True) is None
    queued = apply(job, EVENTS["requeue"])
    assert queued.status == QUEUED and queued.attempt_id is None and queued.progress == 0.3
    spent = apply(replace(job, attempts=3), EVENTS["requeue"])
    assert spent.status == FAILED and spent.error["code"] == "worker_lost"


def test_a_requeued_attempts_reports_no_longer_count():
    queued = apply(make_job(status=RUNNING), EVENTS["requeue"])
    assert apply(queued, EVENTS["complete"]) is None
    assert apply(queued, EVENTS["progress"]) is None


def test_terminal_states_are_sticky():
    for status in (COMPLETE, FAILED, CANCELED):
        job = make_job(status=status, progress=1.0)
        for event in EVENTS.values():
            assert apply(job, event) is None


def test_progress_never_goes_backwards():
    job = make_job(status=RUNNING, progress=0.6, stage="rendering")
    assert apply(job, Event.progressed(0.4, "downloading", A1)) is None
    later = apply(job, Event.progressed(0.7, None, A1))
    assert later is not None and later.progress == 0.7 and later.stage == "rendering"


def test_each_start_is_an_attempt_and_past_max_attempts_the_job_fails_worker_lost():
    job = make_job()
    for attempt in (1, 2):
        job = apply(job, Event.started(max_attempts=2))  # each time the lease had died
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
    assert apply(job, Event.progressed(0.95, "rendering", A1)) is None
    assert apply(job, Event.progressed(0.97, "rendering", A1)) is None
    assert apply(job, Event.progressed(0.97, "uploading", A1)).progress == 0.97


def test_duplicate_progress_report_is_ignored():
    job = make_job(status=RUNNING, progress=0.5, stage="rendering")
    assert apply(job, Event.progressed(0.5, "rendering", A1)) is None


def test_progress_is_clamped_and_nan_ignored():
    job = make_job(status=RUNNING)
    assert apply(job, Event.progressed(float("nan"), None, A1)) is None
    assert apply(job, Event.progressed(7.0, None, A1)).progress == 1.0


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


def start(store: JobStore, worker: str = "w1@host/1") -> str:
    report = store.apply("j" * 32, Event.started(3, worker=worker))
    assert report.current
    return report.job.attempt_id


def test_store_round_trips_and_reports_whether_an_event_applied(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    attempt = start(store)
    job, applied = unpack(store.apply("j" * 32, Event.progressed(0.2, "downloading", attempt)))
    assert applied and job.status == RUNNING
    job, applied = unpack(store.apply("j" * 32, replace(EVENTS["complete"], attempt_id=attempt)))
    assert applied and store.get("j" * 32).status == COMPLETE
    job, applied = unpack(store.apply("j" * 32, Event.progressed(0.9, "rendering", attempt)))
    assert not applied and job.status == COMPLETE and job.progress == 1.0
    job, applied = unpack(store.apply("j" * 32, replace(EVENTS["fail"], attempt_id=attempt)))
    assert not applied and store.get("j" * 32).status == COMPLETE
    assert not store.lease_alive("j" * 32) and list(store.active()) == []


def test_store_lease_taken_at_start_renewed_by_progress_and_dropped_at_the_end(redis_client):
    store = JobStore(redis_client, lease_seconds=0.5)
    store.create(make_job())
    attempt = start(store)
    assert store.lease_alive("j" * 32)
    second = store.apply("j" * 32, Event.started(3, worker="w2@host/1"))
    assert not second.current and second.job.attempt_id == attempt  # did nothing
    for _ in range(4):  # heartbeats keep it alive past its TTL
        time.sleep(0.25)
        assert store.apply("j" * 32, Event.progressed(0.1, "rendering", attempt)).current
    assert store.lease_alive("j" * 32)
    time.sleep(0.7)  # no heartbeat: the worker is gone
    assert not store.lease_alive("j" * 32)
    takeover = store.apply("j" * 32, Event.started(3, worker="w2@host/1"))
    assert takeover.current and takeover.job.attempts == 2
    stale = store.apply("j" * 32, Event.progressed(0.5, "rendering", attempt))
    assert not stale.applied and not stale.current
    store.apply("j" * 32, Event.canceled())
    assert not store.lease_alive("j" * 32)


def test_a_release_by_the_holders_parent_drops_the_lease_at_once(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    attempt = start(store, "w1@host/7")
    assert not store.apply("j" * 32, Event.released("w1@host/8")).current
    assert store.lease_alive("j" * 32)
    assert store.apply("j" * 32, Event.released("w1@host/7")).current
    assert not store.lease_alive("j" * 32)
    late = store.apply("j" * 32, Event.progressed(0.3, "rendering", attempt))
    assert late.current is False
    assert not store.lease_alive("j" * 32)  # a late heartbeat of the dead child
    assert store.apply("j" * 32, Event.started(3, worker="w1@host/9")).current


def test_a_start_whose_answer_was_lost_is_current_when_asked_again(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    first = store.apply("j" * 32, Event.started(3, attempt_id="abc", worker="w/1"))
    again = store.apply("j" * 32, Event.started(3, attempt_id="abc", worker="w/2"))
    assert first.current and again.current and not again.applied
    assert again.job.attempts == 1 and store.lease_alive("j" * 32)


def test_store_refuses_a_second_create_and_unknown_jobs(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    with pytest.raises(ValueError):
        store.create(make_job())
    with pytest.raises(JobNotFound):
        store.apply("x" * 32, EVENTS["fail"])
    with pytest.raises(JobNotFound):
        store.get("x" * 32)


def test_racing_reports_end_with_the_highest_progress_and_one_terminal_state(redis_client):
    store = JobStore(redis_client)
    store.create(make_job())
    attempt = start(store)
    events = [Event.progressed(i / 100, "rendering", attempt) for i in range(100)]
    events.insert(60, replace(EVENTS["complete"], attempt_id=attempt))
    threads = [threading.Thread(target=store.apply, args=("j" * 32, e)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.get("j" * 32)
    assert final.status == COMPLETE and final.progress == 1.0


def test_the_job_list_pages_through_jobs_created_in_the_same_millisecond(redis_client):
    store = JobStore(redis_client)
    same = "2026-11-25T12:00:00.000Z"
    ids = [f"{n:032x}" for n in range(5)]
    for job_id in ids:
        store.create(Job(job_id=job_id, tenant="acme", kind="render", audio_key="uploads/a/b",
                         output_key=f"renders/{job_id}/output.mp4", created_at=same))
    seen, after = [], None
    while True:
        rows = store.tenant_jobs("acme", after, 1)
        if not rows:
            break
        seen.append(rows[0][0])
        after = (rows[0][1], rows[0][0])
    assert seen == sorted(ids, reverse=True)  # every one, once


def test_a_new_attempt_remembers_the_progress_it_started_from():
    job = make_job(status=RUNNING, progress=0.9, stage="rendering")
    again = apply(job, Event.started(3, attempt_id="b2"))
    assert again.start_progress == 0.9 and again.stage_at == {"downloading": again.started_at}


def test_the_documented_tables_are_the_ones_in_the_code():
    from jobs.tables import PAGE, markdown

    assert PAGE.read_text(encoding="utf-8") == markdown(), "run python -m jobs.tables"


def test_a_handed_off_job_is_held_for_its_callback_and_never_run_again():
    running = make_job(status=RUNNING, progress=0.97)
    held = apply(running, EVENTS["hand_off"])
    assert held.status == RUNNING and held.handoff["status"] == COMPLETE
    assert lease_action(running, EVENTS["hand_off"]) == "hold"
    # the heartbeat's last beat does not shorten the held lease
    assert apply(held, Event.progressed(0.99, "finalizing", A1)) is None
    assert lease_action(held, Event.progressed(0.99, "finalizing", A1)) is None
    # the result callback reports the end
    done = apply(held, replace(EVENTS["complete"], attempt_id=A1))
    assert done.status == COMPLETE
    # a redelivery of the message once the lease is gone does nothing...
    assert apply(held, Event.started(3, attempt_id="b2")) is None
    # ...and the reaper ends the job from the hand-off instead of rendering it again
    ended = apply(held, Event.requeued(3))
    assert ended.status == COMPLETE and ended.result == {"videoKey": "renders/x/output.mp4"}
    failed = apply(running, Event.handed_off(A1, error={"code": "render_failed", "message": "x"}))
    assert apply(failed, Event.requeued(3)).error["code"] == "render_failed"
    # a stale attempt cannot hand off
    assert apply(running, Event.handed_off("other", result={})) is None


def test_a_report_records_each_stage_at_the_time_its_worker_reached_it():
    started = "2026-11-25T12:00:00.000Z"
    running = make_job(status=RUNNING, progress=0.0, stage="downloading", started_at=started,
                       stage_at={"downloading": started})
    # one PATCH after three stages passed: each gets its own time, not the report's
    report = Event.progressed(0.95, "uploading", A1, stages={
        "downloading": 0.001, "analyzing": 0.012, "uploading": 0.041})
    moved = apply(running, report, now="2026-11-25T12:00:00.050Z")
    assert moved.stage == "uploading" and moved.stage_at == {
        "downloading": started,  # the start's own time stays
        "analyzing": "2026-11-25T12:00:00.012Z", "uploading": "2026-11-25T12:00:00.041Z"}
    # never later than the report itself (the worker's clock may run ahead)
    late = Event.progressed(0.95, "uploading", A1, stages={"uploading": 9.0})
    assert apply(running, late, now="2026-11-25T12:00:00.050Z").stage_at["uploading"] == (
        "2026-11-25T12:00:00.050Z")
    # a stage time the record lacks is news even when progress and stage are not
    again = Event.progressed(0.95, "uploading", A1, stages={"finalizing": 0.045})
    assert apply(replace(moved, stage_at={"downloading": started}), again,
                 now="2026-11-25T12:00:00.060Z") is not None
    assert apply(moved, Event.progressed(0.95, "uploading", A1, stages={
        "analyzing": 0.02}), now="2026-11-25T12:00:00.060Z") is None  # a duplicate


def test_the_hand_off_carries_the_last_progress_and_stage_times():
    started = "2026-11-25T12:00:00.000Z"
    running = make_job(status=RUNNING, progress=0.05, stage="analyzing", started_at=started,
                       stage_at={"downloading": started, "analyzing": started})
    event = Event.handed_off(A1, result={"videoKey": "renders/x/output.mp4"}, progress=0.99,
                             stage="finalizing", stages={"uploading": 0.03, "finalizing": 0.04})
    held = apply(running, event, now="2026-11-25T12:00:00.050Z")
    assert held.status == RUNNING and held.handoff["status"] == COMPLETE
    assert held.progress == 0.99 and held.stage == "finalizing"
    assert held.stage_at["uploading"] == "2026-11-25T12:00:00.030Z"
    assert held.stage_at["finalizing"] == "2026-11-25T12:00:00.040Z"
    # a PATCH still in flight when the task handed off lands after it: ignored
    assert apply(held, Event.progressed(0.95, "uploading", A1)) is None
    # without a progress (a failure's hand-off) the record keeps its own
    failed = apply(running, Event.handed_off(A1, error={"code": "x", "message": "y"}))
    assert failed.progress == 0.05 and failed.stage == "analyzing"


def test_a_result_callback_landing_before_the_hand_off_keeps_the_stage_times():
    # the task hands off on a thread of its own as it returns: its callback can win
    started = "2026-11-25T12:00:00.000Z"
    running = make_job(status=RUNNING, progress=0.05, stage="analyzing", started_at=started,
                       stage_at={"downloading": started, "analyzing": started})
    stages = {"downloading": 0.0, "analyzing": 0.01, "uploading": 0.03, "finalizing": 0.04}
    ended = apply(running, Event.completed({"videoKey": "renders/x/output.mp4"}, A1, stages),
                  now="2026-11-25T12:00:00.050Z")
    assert ended.status == COMPLETE and ended.progress == 1.0 and ended.stage == "done"
    assert ended.stage_at == {"downloading": started, "analyzing": started,
                              "uploading": "2026-11-25T12:00:00.030Z",
                              "finalizing": "2026-11-25T12:00:00.040Z"}
    assert lease_action(running, Event.completed({}, A1, stages)) == "drop"
    # the hand-off landing afterwards changes nothing, and holds no lease
    late = Event.handed_off(A1, result={"videoKey": "renders/x/output.mp4"}, progress=0.99,
                            stage="finalizing", stages=stages)
    assert apply(ended, late) is None and lease_action(ended, late) is None
