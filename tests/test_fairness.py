"""Many tenants on one fleet: fair share of each queue and per-tenant submission limits.

The pieces against a private redis-server (the Lua scripts are the whole of each
step), then the live stack: a tenant's one job against another's backlog on real
workers, the order round-robin gives, the queue positions it promises, the limits
across two API replicas, and the faults between the pending list and the broker."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

import devstack as st
from config.settings import SettingsError
from jobs.constants import (
    PREVIEW_QUEUE,
    RENDER_QUEUE,
    expected_result_keys,
    fair_inflight_redis_key,
    fair_pending_redis_key,
    join_task_id,
    segment_task_id,
    unit_parts,
)
from jobs.fairshare import FairShareStore
from jobs.limits import LimitStore
from jobs.store import epoch_of
from tests.helpers.e2e import poll, record, wait_for, wait_for_line
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import settings_for, start_api

A, B = st.TENANT, st.OTHER_TENANT


# --- the fair-share store ---------------------------------------------------------


def test_a_tenant_has_at_most_its_limit_in_flight_and_the_rest_wait_in_order(redis_client):
    fair = FairShareStore(redis_client)
    moved = fair.step(RENDER_QUEUE, A, 2, added=["a0", "a1", "a2", "a3"])
    assert moved == ["a0", "a1"]
    assert set(fair.inflight(RENDER_QUEUE, A)) == {"a0", "a1"}
    # one out, one in, oldest first
    assert fair.step(RENDER_QUEUE, A, 2, ended=["a1"]) == ["a2"]
    # a unit that ends while waiting leaves the line and moves nothing
    assert fair.step(RENDER_QUEUE, A, 2, ended=["a3"]) == []
    assert fair.step(RENDER_QUEUE, A, 2, ended=["a0", "a2"]) == []
    assert fair.inflight(RENDER_QUEUE, A) == {}
    assert fair.tenants(RENDER_QUEUE) == []  # nothing pending or in flight: forgotten


def test_each_queue_and_each_tenant_has_its_own_share(redis_client):
    fair = FairShareStore(redis_client)
    assert fair.step(RENDER_QUEUE, A, 1, added=["a0", "a1"]) == ["a0"]
    assert fair.step(RENDER_QUEUE, B, 1, added=["b0"]) == ["b0"]
    assert fair.step(PREVIEW_QUEUE, A, 1, added=["p0"]) == ["p0"]
    assert fair.tenants(RENDER_QUEUE) == [A, B] and fair.tenants(PREVIEW_QUEUE) == [A]


def test_the_join_goes_first_in_line(redis_client):
    fair = FairShareStore(redis_client)
    job = "f" * 32
    windows = [segment_task_id(job, i) for i in range(3)]
    assert fair.step(RENDER_QUEUE, A, 2, added=[job, "other"]) == [job, "other"]
    # the job's task planned its windows: they take its place
    assert fair.step(RENDER_QUEUE, A, 2, ended=[job], added=windows) == windows[:1]
    assert fair.step(RENDER_QUEUE, A, 2, ended=["other"]) == windows[1:2]
    assert fair.step(RENDER_QUEUE, A, 2, ended=windows[:1]) == windows[2:]
    assert fair.step(RENDER_QUEUE, A, 2, added=["later"]) == []
    assert fair.step(RENDER_QUEUE, A, 2, ended=windows[1:], added=[join_task_id(job)],
                     front=True) == [join_task_id(job), "later"]
    assert unit_parts(join_task_id(job)) == (job, None, True)
    assert unit_parts(windows[2]) == (job, 2, False) and unit_parts(job) == (job, None, False)


def test_a_queue_position_counts_the_turns_round_robin_gives(redis_client):
    fair = FairShareStore(redis_client)
    a = [f"{i:032x}" for i in range(4)]
    b = [f"{i:032x}" for i in range(10, 13)]
    fair.step(PREVIEW_QUEUE, A, 1, added=a)
    fair.step(PREVIEW_QUEUE, B, 1, added=b)
    positions = {unit: fair.position(PREVIEW_QUEUE, tenant, unit)
                 for tenant, units in ((A, a), (B, b)) for unit in units}
    # released: a0 then b0; then a turn each, a tie counted as ahead (never too early)
    assert [positions[u] for u in a] == [0, 3, 5, 6]
    assert [positions[u] for u in b] == [1, 3, 5]
    assert fair.depth(PREVIEW_QUEUE) == 7


# --- the limiter ------------------------------------------------------------------


def test_the_bucket_refuses_past_its_size_and_a_refusal_takes_nothing(redis_client):
    limits = LimitStore(redis_client)
    taken = [limits.take(A, f"job{i}", per_minute=3, max_queued=0) for i in range(5)]
    assert [d.allowed for d in taken] == [True, True, True, False, False]
    assert [d.refused_by for d in taken][3:] == ["rate", "rate"]
    assert math.floor(taken[2].tokens) == 0 and taken[3].seconds_to_token >= 1
    assert limits.take(B, "other", per_minute=3, max_queued=0).allowed  # per tenant
    # 3 a minute: a token is back within 20 s, the bucket full within 60 s
    assert 0 < taken[3].seconds_to_token <= 20 and 0 < taken[3].seconds_to_full <= 60


def test_the_queued_ceiling_holds_a_place_per_job_and_gives_it_back(redis_client):
    limits = LimitStore(redis_client)
    assert limits.take(A, "j1", per_minute=0, max_queued=2).allowed
    assert limits.take(A, "j2", per_minute=0, max_queued=2).allowed
    refused = limits.take(A, "j3", per_minute=0, max_queued=2)
    assert not refused.allowed and refused.refused_by == "queued" and refused.queued == 2
    limits.give_back(A, "j2")
    assert limits.take(A, "j3", per_minute=0, max_queued=2).allowed


def test_the_limits_hold_for_many_clients_at_once(redis_url):
    """Each thread its own connection, as gunicorn processes and replicas have."""
    clients = [redis.Redis.from_url(redis_url) for _ in range(8)]
    clients[0].flushdb()
    allowed: list[bool] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        decision = LimitStore(clients[i % 8]).take(A, f"job{i}", per_minute=1000, max_queued=7)
        with lock:
            allowed.append(decision.allowed)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(submit, range(64)))
    assert allowed.count(True) == 7


def test_tenant_limits_are_read_from_one_variable():
    settings = settings_for({"TENANT_LIMITS": f"{A}:5:2, {B}:0:0",
                             "SUBMISSIONS_PER_MINUTE": "100", "MAX_QUEUED_JOBS": "50"})
    assert (settings.limits_of(A).per_minute, settings.limits_of(A).max_queued) == (5, 2)
    assert (settings.limits_of(B).per_minute, settings.limits_of(B).max_queued) == (0, 0)
    other = settings.limits_of("initech")
    assert (other.per_minute, other.max_queued) == (100, 50)
    for bad in ("acme:5", "acme:x:1", "acme:1:1,acme:2:2", ":1:1"):
        with pytest.raises(SettingsError, match="TENANT_LIMITS"):
            settings_for({"TENANT_LIMITS": bad})
    with pytest.raises(SettingsError, match="TENANT_MAX_INFLIGHT"):
        settings_for({"TENANT_MAX_INFLIGHT": "0"})


# --- the live stack ---------------------------------------------------------------


@pytest.fixture
def parts(tmp_path: Path):
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        yield stack, redis_url, tmp_path


def upload_as(running: st.Stack, key: str, path: Path) -> str:
    with open(path, "rb") as audio:
        answer = running.client(key).post(running.url("/v1/uploads"), timeout=30,
                                          files={"file": (path.name, audio)})
    assert answer.status_code == 201, answer.text
    return answer.json()["audioKey"]


def submit_as(running: st.Stack, key: str, body: dict) -> dict:
    answer = running.client(key).post(running.url("/v1/jobs"), json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    return answer.json()


def ended_as(running: st.Stack, key: str, job_id: str, timeout: float = 120) -> dict:
    """Poll one of ``key``'s tenant's jobs until it ends."""
    def check() -> dict | None:
        job = running.client(key).get(running.url(f"/v1/jobs/{job_id}"), timeout=10).json()
        return job if job["status"] in ("complete", "failed", "canceled", "timed_out") else None
    return wait_for(check, timeout, f"job {job_id} to end")


def started(running: st.Stack, job_id: str) -> float:
    return epoch_of(record(running, job_id).started_at)


def test_one_job_of_a_tenant_starts_before_another_tenants_backlog(parts):
    """A holds 40 queued jobs, B submits one: B's starts once A's places free, behind
    at most TENANT_MAX_INFLIGHT of A's jobs, while most of A's still wait."""
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url, TENANT_MAX_INFLIGHT="2")
    wav = st.one_second_wav(tmp_path / "one.wav")
    a_audio, b_audio = upload_as(running, running.api_key, wav), upload_as(
        running, running.other_api_key, wav)
    backlog = [submit_as(running, running.api_key, {"kind": "prepare", "audioKey": a_audio})
               for _ in range(40)]
    assert [job["queuePosition"] for job in backlog[:4]] == [0, 1, 2, 3]
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", concurrency=2))
    wait_for(lambda: record(running, backlog[2]["jobId"]).status != "queued", 60,
             "A's backlog to be under way")
    mine = submit_as(running, running.other_api_key, {"kind": "prepare", "audioKey": b_audio})
    # behind at most A's two places, not A's backlog
    assert mine["queuePosition"] <= 2
    last = running.client().get(running.url(f"/v1/jobs/{backlog[-1]['jobId']}"),
                                timeout=10).json()
    assert last["status"] != "queued" or last["queuePosition"] > 20
    assert ended_as(running, running.other_api_key, mine["jobId"])["status"] == "complete"
    for job in backlog:
        assert poll(running, job["jobId"], timeout=180)[0]["status"] == "complete"
    b_start = started(running, mine["jobId"])
    a_starts = [started(running, job["jobId"]) for job in backlog]
    submitted = epoch_of(mine["createdAt"])
    between = [t for t in a_starts if submitted <= t < b_start]
    assert len(between) <= 2, f"{len(between)} of A's jobs started between B's submit and start"
    assert sum(t > b_start for t in a_starts) >= 20  # most of A's backlog was still waiting


def test_a_tasks_hand_off_sends_its_tenants_next_job_before_the_callback_lands(parts):
    """The hand-off (the work is over, the outputs stored) frees the job's place: the
    tenant's next job goes to the broker then, in the order the work ended, not when
    a result callback lands (two callbacks may land in either order)."""
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url, TENANT_MAX_INFLIGHT="1")
    audio = upload_as(running, running.api_key, st.one_second_wav(tmp_path / "one.wav"))
    first, second = (submit_as(running, running.api_key, {"kind": "prepare", "audioKey": audio})
                     for _ in range(2))
    broker = redis.Redis.from_url(redis_url)
    assert broker.llen(PREVIEW_QUEUE) == 1 and second["queuePosition"] >= 1  # in line
    worker, job_id = running.worker_client(), first["jobId"]
    start = worker.post(running.url(f"/internal/jobs/{job_id}/start"), timeout=10,
                        json={"worker": "w1@host/1", "attempt": "a" * 32}).json()
    result = {**expected_result_keys("prepare", job_id, f"prepared/{job_id}/audio.wav"),
              "format": "wav", "duration": 1.0, "sampleRate": 44100, "channels": 1}
    handed = worker.post(running.url(f"/internal/jobs/{job_id}/handoff"), timeout=10, json={
        "jobId": job_id, "status": "complete", "attempt": start["attempt"], "result": result})
    assert handed.json()["applied"] and record(running, job_id).status == "running"
    assert broker.llen(PREVIEW_QUEUE) == 2  # the second job was sent at the hand-off
    # the callback's report ends the first job and sends nothing more
    worker.post(running.url("/internal/webhooks/worker"), timeout=10, json={
        "jobId": job_id, "status": "complete", "attempt": start["attempt"], "result": result})
    assert record(running, job_id).status == "complete" and broker.llen(PREVIEW_QUEUE) == 2


def test_two_tenants_backlogs_take_turns(parts):
    """With one place each and one worker slot, the tenants alternate, whoever
    submitted first: B's three jobs all start before A's fourth."""
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url, TENANT_MAX_INFLIGHT="1")
    wav = st.one_second_wav(tmp_path / "one.wav")
    a_audio, b_audio = upload_as(running, running.api_key, wav), upload_as(
        running, running.other_api_key, wav)
    a = [submit_as(running, running.api_key, {"kind": "prepare", "audioKey": a_audio})["jobId"]
         for _ in range(4)]
    b = [submit_as(running, running.other_api_key,
                   {"kind": "prepare", "audioKey": b_audio})["jobId"] for _ in range(3)]
    stack.enter_context(st.worker(running.env, tmp_path / "cb.log", name="cb",
                                  queues="callbacks"))
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", queues="preview",
                                  concurrency=1))
    for job_id in a:
        assert poll(running, job_id, timeout=120)[0]["status"] == "complete"
    for job_id in b:
        assert ended_as(running, running.other_api_key, job_id)["status"] == "complete"
    order = sorted(a + b, key=lambda job_id: started(running, job_id))
    names = "".join("a" if job_id in a else "b" for job_id in order)
    assert names.rindex("b") < names.rindex("a"), names
    assert "aa" not in names[:6] and "bb" not in names[:6], names


def test_renders_and_previews_have_their_own_fair_share(parts):
    """A tenant at its limit of renders still has its previews sent at once."""
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url, TENANT_MAX_INFLIGHT="1")
    wav = st.one_second_wav(tmp_path / "one.wav")
    audio = upload_as(running, running.api_key, wav)
    renders = [submit_as(running, running.api_key, {"kind": "render", "audioKey": audio})
               for _ in range(3)]
    preview = submit_as(running, running.api_key, {"kind": "preview", "audioKey": audio})
    assert [job["queuePosition"] for job in renders] == [0, 1, 2]
    assert preview["queuePosition"] == 0
    broker = redis.Redis.from_url(redis_url)
    assert broker.llen(RENDER_QUEUE) == 1 and broker.llen(PREVIEW_QUEUE) == 1
    assert broker.llen(fair_pending_redis_key(RENDER_QUEUE, A)) == 2
    # a canceled job that waited leaves the line; the one in flight frees its place
    client = running.client()
    client.delete(running.url(f"/v1/jobs/{renders[1]['jobId']}"), timeout=10)
    client.delete(running.url(f"/v1/jobs/{renders[0]['jobId']}"), timeout=10)
    last = client.get(running.url(f"/v1/jobs/{renders[2]['jobId']}"), timeout=10).json()
    assert last["queuePosition"] == 0
    assert broker.llen(fair_pending_redis_key(RENDER_QUEUE, A)) == 0


def test_limits_answer_429_with_ratelimit_fields_across_two_replicas(parts):
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url,
                        TENANT_LIMITS=f"{A}:10:0,{B}:0:2")
    port = st.free_port()
    stack.enter_context(st.api_server(running.env, port, tmp_path / "api2.log"))
    replicas = [running.base_url, f"http://127.0.0.1:{port}"]
    audio = upload_as(running, running.api_key, st.one_second_wav(tmp_path / "one.wav"))
    body = {"kind": "prepare", "audioKey": audio}
    first = running.client().post(running.url("/v1/jobs"), json=body, timeout=30,
                                  headers={"Idempotency-Key": "first"})
    assert first.status_code == 202
    assert first.headers["RateLimit-Policy"] == '"submissions";q=10;w=60'
    assert first.headers["RateLimit"].startswith('"submissions";r=9;t=')

    def post(i: int):  # noqa: ANN202
        return running.client().post(f"{replicas[i % 2]}/v1/jobs", json=body, timeout=30)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, range(24)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(202) == 9 and statuses.count(429) == 15  # 10 a minute, in all
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 6  # 10 a minute: one every 6 s
    assert refused.headers["RateLimit"].startswith('"submissions";r=0;t=')
    # an idempotent replay takes no token and is not refused
    again = running.client().post(running.url("/v1/jobs"), json=body, timeout=30,
                                  headers={"Idempotency-Key": "first"})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["jobId"] == first.json()["jobId"]
    # the other tenant: no rate, two queued at most; a place comes back when one ends
    other = upload_as(running, running.other_api_key, st.one_second_wav(tmp_path / "two.wav"))
    theirs = [running.client(running.other_api_key).post(
        running.url("/v1/jobs"), json={"kind": "prepare", "audioKey": other}, timeout=30)
        for _ in range(3)]
    assert [answer.status_code for answer in theirs] == [202, 202, 429]
    assert theirs[1].headers["RateLimit"] == '"queued";r=0'
    assert theirs[1].headers["RateLimit-Policy"] == '"queued";q=2;qu="concurrent-requests"'
    assert theirs[2].json()["error"]["code"] == "rate_limited"
    assert "queued" in theirs[2].json()["error"]["message"]
    running.client(running.other_api_key).delete(
        running.url(f"/v1/jobs/{theirs[0].json()['jobId']}"), timeout=10)
    fourth = running.client(running.other_api_key).post(
        running.url("/v1/jobs"), json={"kind": "prepare", "audioKey": other}, timeout=30)
    assert fourth.status_code == 202


def test_work_moved_into_flight_but_never_sent_is_sent_by_the_reaper(parts):
    """A process dies between fair share's move and the send (the move made here, the
    send never), and another dies between the record and the line: the reaper sends
    the first again and puts the second back in line; each completes once."""
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url, TENANT_MAX_INFLIGHT="1",
                        LEASE_SECONDS="6", REAP_INTERVAL="1")
    stack.enter_context(st.beat(running.env, tmp_path))
    stack.enter_context(st.worker(running.env, tmp_path / "cb.log", name="cb",
                                  queues="callbacks"))
    audio = upload_as(running, running.api_key, st.one_second_wav(tmp_path / "one.wav"))
    ids = [submit_as(running, running.api_key, {"kind": "prepare", "audioKey": audio})["jobId"]
           for _ in range(3)]
    broker = redis.Redis.from_url(redis_url)
    pending = fair_pending_redis_key(PREVIEW_QUEUE, A)
    assert broker.llen(PREVIEW_QUEUE) == 1 and broker.lrange(pending, 0, -1) == [
        ids[1].encode(), ids[2].encode()]
    # the second: moved into flight by a process that then died (no message sent)
    assert FairShareStore(broker).step(PREVIEW_QUEUE, A, 2) == [ids[1]]
    # the third: its record written, its place in line lost
    assert broker.lrem(pending, 0, ids[2]) == 1
    assert broker.llen(PREVIEW_QUEUE) == 1
    wait_for(lambda: broker.llen(PREVIEW_QUEUE) == 2, 30, "the reaper to send it again")
    wait_for_line(tmp_path / "api.log", f"job {ids[1]} was queued with no message in the "
                  "broker; sent again")
    wait_for_line(tmp_path / "api.log", f"job {ids[2]} was queued in no tenant's line; put "
                  "back in line")
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", queues="preview"))
    for job_id in ids:
        done, _ = poll(running, job_id, timeout=60)
        assert done["status"] == "complete" and done["attempts"] == 1
    log = (tmp_path / "w1.log").read_text()
    assert all(log.count(f"job {job_id}: prepare of") == 1 for job_id in ids)
    assert broker.hlen(fair_inflight_redis_key(PREVIEW_QUEUE, A)) == 0


def test_a_split_renders_windows_take_their_tenants_places_not_the_whole_queue(parts):
    """A's render split in four windows (and its audio's unit) holds two places (its
    limit), so B's render, submitted once A's is split, starts before A's last units."""
    stack, redis_url, tmp_path = parts
    running = start_api(stack, tmp_path, redis_url, TENANT_MAX_INFLIGHT="2",
                        SPLIT_MIN_SECONDS="10", SEGMENT_SECONDS="5")
    small = {"width": 640, "height": 360}
    a_audio = upload_as(running, running.api_key, SAMPLE)
    b_audio = upload_as(running, running.other_api_key, SAMPLE)
    stack.enter_context(st.worker(running.env, tmp_path / "w1.log", concurrency=2))
    a_job = submit_as(running, running.api_key,
                      {"kind": "render", "audioKey": a_audio, "options": small})["jobId"]
    wait_for(lambda: record(running, a_job).split is not None, 60, "A's render to split")
    broker = redis.Redis.from_url(redis_url)
    b_job = submit_as(running, running.other_api_key, {
        "kind": "render", "audioKey": b_audio, "options": {**small, "split": False}})["jobId"]
    most = 0

    def a_done() -> bool:
        nonlocal most
        most = max(most, broker.hlen(fair_inflight_redis_key(RENDER_QUEUE, A)))
        return record(running, a_job).status in ("complete", "failed")

    wait_for(a_done, 120, "A's render")
    assert poll(running, a_job)[0]["status"] == "complete"
    assert ended_as(running, running.other_api_key, b_job)["status"] == "complete"
    units = record(running, a_job).split["windows"]  # four windows, then the audio's unit
    assert len(units) == 5 and units[-1].get("audio")
    assert most <= 2
    log = (tmp_path / "w1.log").read_text()
    received = {task_id: log.index(f"[{task_id}] received")
                for task_id in [b_job, *(segment_task_id(a_job, i) for i in range(5))]}
    assert received[b_job] < received[segment_task_id(a_job, 3)], received
    assert received[b_job] < received[segment_task_id(a_job, 4)], received
