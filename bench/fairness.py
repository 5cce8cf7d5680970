"""Fair share and limits benchmark: how long one tenant's job waits behind another
tenant's backlog, and what the submission limiter adds to ``POST /v1/jobs``.

Run ``.venv/bin/python bench/fairness.py [--jobs 500] [--posts 400]``. Everything is
real and on loopback, started with ``devstack`` as the Procfile runs it: a private
redis-server, the API under gunicorn, one Celery worker with 2 processes for renders
and previews, and one for the callbacks queue.

1. Waits. Tenant A submits ``--jobs`` one-second ``prepare`` jobs as fast as it can
   (the workers already taking them), then tenant B submits one. Each job's wait is
   its record's ``startedAt - createdAt``. Measured on a fresh stack for each setting,
   in the same run: fair share off (``TENANT_MAX_INFLIGHT=1000000``, first in first
   out: the baseline), at the default (8) and at the worker slots (2). The table
   shows B's wait against A's (median, max), how many of A's jobs started between
   B's submission and its start, and B's ``queuePosition`` when it was submitted.
2. The limiter. Two API replicas over one Redis, one with the limits off (both 0:
   no Redis call) and one with limits so high they never refuse (the Lua script on
   every submission); ``--posts`` submissions alternate between them, one at a time.
   The table shows the p50 and p90 of each and the difference: the limiter's cost.

Nothing here fails: it prints the tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import devstack as st  # noqa: E402
from jobs.constants import TERMINAL_STATES, job_redis_key  # noqa: E402
from jobs.store import Job, epoch_of  # noqa: E402

#: (label, TENANT_MAX_INFLIGHT): the baseline first.
SETTINGS = (("off (FIFO)", 1_000_000), ("on, default", 8), ("on, = slots", 2))


def start(processes: ExitStack, workdir: Path, workers: bool, **extra: str) -> st.Stack:
    """Redis, the API and (``workers``) the two kinds of worker, as the Procfile runs them."""
    redis_url = processes.enter_context(st.redis_server(workdir))
    port = st.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**st.base_env(redis_url, base, workdir, {"STORAGE_DIR": str(workdir / "storage")}),
           "RENDER_CACHE": "false", **extra}
    running = st.Stack.of(base, redis_url, env, workdir)
    processes.enter_context(st.api_server(env, port, workdir / "api.log"))
    if workers:
        processes.enter_context(st.worker(env, workdir / "worker.log", "w1", "render,preview",
                                          concurrency=2))
        processes.enter_context(st.worker(env, workdir / "callbacks.log", "cb", "callbacks"))
    return running


def upload(running: st.Stack, key: str, wav: Path) -> str:
    with open(wav, "rb") as audio:
        return running.client(key).post(running.url("/v1/uploads"), timeout=30,
                                         files={"file": (wav.name, audio)}).json()["audioKey"]


def waits(workdir: Path, jobs: int, inflight: int) -> dict[str, float]:
    """One run: A's backlog, then B's one job; the waits read from the records."""
    with ExitStack() as processes:
        running = start(processes, workdir, True, TENANT_MAX_INFLIGHT=str(inflight),
                        MAX_QUEUED_JOBS="0", SUBMISSIONS_PER_MINUTE="0")
        wav = st.one_second_wav(workdir / "one.wav")
        a_audio = upload(running, running.api_key, wav)
        b_audio = upload(running, running.other_api_key, wav)
        a_client, b_client = running.client(), running.client(running.other_api_key)
        began = time.monotonic()
        a_ids = [a_client.post(running.url("/v1/jobs"), timeout=30, json={
            "kind": "prepare", "audioKey": a_audio}).json()["jobId"] for _ in range(jobs)]
        b_job = b_client.post(running.url("/v1/jobs"), timeout=30,
                              json={"kind": "prepare", "audioKey": b_audio}).json()
        store = redis.Redis.from_url(running.redis_url)
        ids = [*a_ids, b_job["jobId"]]
        while True:
            records = [Job.from_json(raw) for raw in store.mget([job_redis_key(i) for i in ids])]
            if all(job.status in TERMINAL_STATES for job in records):
                break
            time.sleep(0.2)
        drained = time.monotonic() - began
    by_id = {job.job_id: job for job in records}

    def waited(job: Job) -> float:
        return epoch_of(job.started_at or job.updated_at) - epoch_of(job.created_at)

    b = by_id[b_job["jobId"]]
    b_submitted, b_started = epoch_of(b.created_at), epoch_of(b.started_at or b.updated_at)
    a_waits = [waited(by_id[i]) for i in a_ids]
    ahead = sum(1 for i in a_ids if by_id[i].started_at
                and b_submitted <= epoch_of(by_id[i].started_at) < b_started)
    return {"b": waited(b), "a50": statistics.median(a_waits), "amax": max(a_waits),
            "ahead": ahead, "position": b_job["queuePosition"], "drained": drained,
            "complete": sum(job.status == "complete" for job in records)}


def limiter(workdir: Path, posts: int) -> tuple[list[float], list[float]]:
    """POST /v1/jobs latencies on a replica with limits off and one with them on."""
    with ExitStack() as processes:
        running = start(processes, workdir, False, SUBMISSIONS_PER_MINUTE="0",
                        MAX_QUEUED_JOBS="0")
        port = st.free_port()
        env_on = {**running.env, "SUBMISSIONS_PER_MINUTE": "1000000000",
                  "MAX_QUEUED_JOBS": "1000000000"}
        processes.enter_context(st.api_server(env_on, port, workdir / "api-on.log"))
        audio = upload(running, running.api_key, st.one_second_wav(workdir / "one.wav"))
        client = running.client()
        urls = {"off": running.url("/v1/jobs"), "on": f"http://127.0.0.1:{port}/v1/jobs"}
        body = {"kind": "prepare", "audioKey": audio}
        for url in urls.values():  # warm both replicas' processes and connections
            for _ in range(20):
                client.post(url, json=body, timeout=30)
        seconds: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(posts):
            name = ("off", "on")[i % 2]
            t0 = time.perf_counter()
            answer = client.post(urls[name], json=body, timeout=30)
            seconds[name].append(time.perf_counter() - t0)
            assert answer.status_code == 202, answer.text
    return seconds["off"], seconds["on"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="tenant A's backlog")
    parser.add_argument("--posts", type=int, default=400, help="submissions timed, in all")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, inflight) in enumerate(SETTINGS):
            rows.append((label, inflight, waits(Path(tmp) / f"run{index}", args.jobs, inflight)))
        off, on = limiter(Path(tmp) / "limiter", args.posts)
    print(f"A: {args.jobs} one-second prepare jobs submitted at once, then B: one; "
          "1 worker x 2 processes (+ callbacks)")
    print("| fair share | TENANT_MAX_INFLIGHT | B waited s | B queuePosition | A's started "
          "ahead of B | A wait p50 s | A wait max s | all done s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, inflight, row in rows:
        print(f"| {label} | {inflight} | {row['b']:.2f} | {row['position']} | {row['ahead']} | "
              f"{row['a50']:.1f} | {row['amax']:.1f} | {row['drained']:.1f} |")
    baseline = rows[0][2]
    for label, _, row in rows[1:]:
        print(f"{label}: B waited {baseline['b'] / max(row['b'], 1e-3):.0f}x less than with "
              f"fair share off; A's last job {row['amax'] / baseline['amax']:.2f}x as long")
    p50_off, p50_on = statistics.median(off), statistics.median(on)
    print()
    print(f"POST /v1/jobs, {len(off)} each, alternating between two replicas on one Redis")
    print("| limits | p50 ms | p90 ms |")
    print("|---|---|---|")
    print(f"| off | {p50_off * 1000:.2f} | {percentile(off, 90) * 1000:.2f} |")
    print(f"| on | {p50_on * 1000:.2f} | {percentile(on, 90) * 1000:.2f} |")
    print(f"the limiter adds {(p50_on - p50_off) * 1000:.2f} ms at p50 "
          f"({p50_on / p50_off:.2f}x the submission without it)")
    complete = all(row["complete"] == args.jobs + 1 for _, _, row in rows)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
