"""What a poll shows besides the status: queue position, ETA, timings, stages; the
job list; and previews that never wait behind renders. On real processes."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

import devstack as st
from jobs.constants import STAGES
from tests.helpers.e2e import poll, record, submit, upload, wait_for
from tests.helpers.media import long_audio
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import SLOW, start_api


@pytest.fixture
def parts(tmp_path: Path):
    with ExitStack() as stack:
        redis_url = stack.enter_context(st.redis_server(tmp_path))
        running = start_api(stack, tmp_path, redis_url)
        yield stack, running, tmp_path


def job_of(running: st.Stack, job_id: str) -> dict:
    return running.client().get(running.url(f"/v1/jobs/{job_id}"), timeout=10).json()


def test_queue_position_counts_the_jobs_ahead_and_moves_up(parts):
    stack, running, tmp_path = parts
    audio = upload(running, SAMPLE)
    ids = [submit(running, {**SLOW, "audioKey": audio})["jobId"] for _ in range(3)]
    assert [job_of(running, i)["queuePosition"] for i in ids] == [0, 1, 2]
    running.client().delete(running.url(f"/v1/jobs/{ids[0]}"), timeout=10)
    assert [job_of(running, i)["queuePosition"] for i in ids] == [None, 0, 1]
    # a preview waits on its own queue, behind nothing
    preview = submit(running, {"kind": "preview", "audioKey": audio})
    assert preview["queuePosition"] == 0


def test_timings_eta_and_stages_of_a_render(parts):
    stack, running, tmp_path = parts
    stack.enter_context(st.worker(running.env, tmp_path / "worker.log"))
    audio = upload(running, SAMPLE)
    first, _ = poll(running, submit(running, {"kind": "prepare", "audioKey": audio})["jobId"])
    timings = first["timings"]
    assert set(timings) == {"queued", "rendering", "uploading"}
    assert all(value >= 0 for value in timings.values()) and timings["rendering"] > 0
    stage_at = record(running, first["jobId"]).stage_at
    assert {"downloading", "analyzing", "uploading", "finalizing"} <= set(stage_at)
    assert sorted(stage_at, key=stage_at.get) == sorted(stage_at, key=STAGES.index)

    job_id = submit(running, {**SLOW, "audioKey": audio})["jobId"]
    seen = []

    def sample() -> bool:
        job = job_of(running, job_id)
        seen.append((job["status"], job["stage"], job["progress"], job["eta"]))
        return job["status"] == "complete"

    wait_for(sample, 180, "the render")
    running_etas = [eta for status, _, p, eta in seen if status == "running" and p >= 0.1]
    assert running_etas and all(eta is not None and eta >= 0 for eta in running_etas)
    assert record(running, job_id).audio_seconds == pytest.approx(20.0, abs=0.1)
    stages = [stage for _, stage, _, _ in seen]
    assert [STAGES.index(s) for s in stages] == sorted(STAGES.index(s) for s in stages)
    assert "rendering" in stages and seen[-1][3] is None  # no eta once ended
    assert job_of(running, job_id)["timings"]["rendering"] > 0
    # the deployment has measured its renders: a queued one now has an eta at once
    queued = submit(running, {**SLOW, "audioKey": audio})
    assert queued["status"] == "queued" and queued["eta"] > 0


def test_the_job_list_is_newest_first_paginated_filtered_and_per_tenant(parts):
    stack, running, tmp_path = parts
    audio = upload(running, SAMPLE)
    ids = [submit(running, {"kind": "prepare", "audioKey": audio})["jobId"] for _ in range(3)]
    preview = submit(running, {"kind": "preview", "audioKey": audio})["jobId"]
    client = running.client()

    page = client.get(running.url("/v1/jobs?limit=2"), timeout=10).json()
    assert [j["jobId"] for j in page["jobs"]] == [preview, ids[2]]
    rest = client.get(running.url(f"/v1/jobs?limit=2&cursor={page['nextCursor']}"),
                      timeout=10).json()
    assert [j["jobId"] for j in rest["jobs"]] == [ids[1], ids[0]] and rest["nextCursor"] is None

    prepares = client.get(running.url("/v1/jobs?kind=prepare"), timeout=10).json()
    assert [j["jobId"] for j in prepares["jobs"]] == ids[::-1]
    client.delete(running.url(f"/v1/jobs/{ids[1]}"), timeout=10)
    canceled = client.get(running.url("/v1/jobs?status=canceled"), timeout=10).json()
    assert [j["jobId"] for j in canceled["jobs"]] == [ids[1]]
    other = running.client(running.other_api_key).get(running.url("/v1/jobs"), timeout=10)
    assert other.json() == {"jobs": [], "nextCursor": None}
    for bad in ("limit=0", "limit=101", "status=lost", "kind=movie", "cursor=abc", "x=1"):
        response = client.get(running.url(f"/v1/jobs?{bad}"), timeout=10)
        assert response.status_code == 400, bad


def test_previews_do_not_wait_behind_renders(parts):
    stack, running, tmp_path = parts
    # as the Procfile runs them: renders, previews and callbacks each on their own worker
    stack.enter_context(st.worker(running.env, tmp_path / "render.log", name="r1",
                                  queues="render"))
    stack.enter_context(st.worker(running.env, tmp_path / "preview.log", name="p1",
                                  queues="preview"))
    stack.enter_context(st.worker(running.env, tmp_path / "callbacks.log", name="c1",
                                  queues="callbacks"))
    audio = upload(running, SAMPLE)
    # renders long enough to keep both children busy for minutes on any machine
    long = upload(running, long_audio(tmp_path, 180))
    renders = [submit(running, {**SLOW, "audioKey": long})["jobId"] for _ in range(3)]
    wait_for(lambda: all(job_of(running, r)["status"] == "running" for r in renders[:2]), 60,
             "both render children busy")
    preview, _ = poll(running, submit(running, {"kind": "preview", "audioKey": audio})["jobId"])
    assert preview["status"] == "complete"
    assert job_of(running, renders[2])["status"] == "queued"  # still waiting for a child
    for job_id in renders:  # they stop within seconds: a quick teardown
        running.client().delete(running.url(f"/v1/jobs/{job_id}"), timeout=10)
    assert f"render_job[{preview['jobId']}] received" in (tmp_path / "preview.log").read_text()
