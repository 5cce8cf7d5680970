"""Callback benchmark: from a render task's end to ``complete`` in the job record.

Run ``.venv/bin/python bench/callbacks.py [--jobs 200]``. It starts a real stack on
loopback as the Procfile runs it (private redis-server, the API under gunicorn, a
Celery worker for renders and previews and one for the callbacks queue), submits
``--jobs`` one-second ``prepare`` jobs one after another, each on an idle stack
(the next is submitted when the last has completed), and reads each record: the
task's end is when it reached ``finalizing`` (``stageAt``, as it returned; its
hand-off goes meanwhile, on a thread of its own) and ``complete`` is the record's
``updatedAt``. Between them: the task's return, Celery's ``link`` message to the
callbacks queue, the ``report_result`` task, and its POST to the completion webhook.

Baseline, measured in the same run on the same stack: the completion webhook's own
round trip (the same POST, for a job already complete, which the API answers and
ignores). The ratio says how much the callback hop costs over the report itself.
Nothing here fails: it prints a table.
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
from jobs.constants import (  # noqa: E402
    COMPLETE,
    STAGE_FINALIZING,
    TERMINAL_STATES,
    job_redis_key,
)
from jobs.store import Job, epoch_of  # noqa: E402


def start(processes: ExitStack, workdir: Path) -> st.Stack:
    """Redis, the API and the two kinds of worker, as the Procfile runs them."""
    redis_url = processes.enter_context(st.redis_server(workdir))
    port = st.free_port()
    base = f"http://127.0.0.1:{port}"
    env = st.base_env(redis_url, base, workdir, {"STORAGE_DIR": str(workdir / "storage")})
    running = st.Stack.of(base, redis_url, env, workdir)
    processes.enter_context(st.api_server(env, port, workdir / "api.log"))
    processes.enter_context(st.worker(env, workdir / "worker.log", "w1", "render,preview"))
    processes.enter_context(st.worker(env, workdir / "callbacks.log", "cb", "callbacks"))
    return running


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as processes:
        running = start(processes, Path(tmp))
        client = running.client()
        with open(st.one_second_wav(Path(tmp) / "one.wav"), "rb") as audio:
            key = client.post(running.url("/v1/uploads"), files={"file": ("one.wav", audio)},
                              timeout=30).json()["audioKey"]
        store = redis.Redis.from_url(running.redis_url)
        started = time.monotonic()
        ids = []
        for _ in range(args.jobs):
            job_id = client.post(running.url("/v1/jobs"), timeout=30,
                                 json={"kind": "prepare", "audioKey": key}).json()["jobId"]
            ids.append(job_id)
            while Job.from_json(store.get(job_redis_key(job_id))).status not in TERMINAL_STATES:
                time.sleep(0.01)
        drained = time.monotonic() - started
        jobs = [Job.from_json(raw) for raw in store.mget([job_redis_key(i) for i in ids])]
        done = [job for job in jobs if job.status == COMPLETE]
        hops = [epoch_of(job.updated_at) - epoch_of(job.stage_at[STAGE_FINALIZING])
                for job in done]
        # the baseline: the same completion POST, for jobs already complete (ignored)
        worker = running.worker_client()
        posts = []
        for job in done[:50]:
            body = {"jobId": job.job_id, "status": "complete", "attempt": job.attempt_id,
                    "result": job.result}
            t0 = time.perf_counter()
            worker.post(running.url("/internal/webhooks/worker"), json=body, timeout=30)
            posts.append(time.perf_counter() - t0)
    p50, p99, post50 = percentile(hops, 50), percentile(hops, 99), statistics.median(posts)
    print(f"jobs: {len(jobs)} submitted one after another, {len(done)} complete, "
          f"{len(jobs) - len(done)} other, in {drained:.1f} s")
    print("| task end -> complete | ms |")
    print("|---|---|")
    print(f"| p50 | {p50 * 1000:.1f} |")
    print(f"| p99 | {p99 * 1000:.1f} |")
    print(f"| max | {max(hops) * 1000:.1f} |")
    print(f"baseline, the completion POST alone (p50 of {len(posts)}): {post50 * 1000:.1f} ms; "
          f"the callback hop costs {p50 / post50:.1f}x (p50) and {p99 / post50:.1f}x (p99) that")
    return 0 if len(done) == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
