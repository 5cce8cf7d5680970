"""Scale benchmark: what soundreel costs per job, and how it holds a deep queue.

Run ``.venv/bin/python bench/scale.py`` (every section), or pick sections with
``--only overhead,queue``. Each section starts its own real stack on loopback
(private redis-server, the API under gunicorn, Celery workers as the Procfile runs
them: one worker with 2 processes for renders and previews, one for the callbacks
queue), prints a table with ratios against a baseline measured in the same run, and
stops it. Nothing here fails on a time: the targets are marked ``pass`` or ``FAIL``.

Sections (``SECTIONS``, in the order they run):

- ``overhead``: 1-second ``prepare`` jobs, one after another on an idle stack, from
  the client's POST to ``complete`` in the record; against the same work
  (``tasks.render.run_job``) as a bare Celery task with a ``link`` callback on the same
  Redis (``bench/bare_celery.py``), the two alternating. The p50 difference is
  soundreel's own overhead per job (target < 20 ms). Then the drain of ``--drain``
  such jobs submitted at once, on one worker with 2 processes, against bare Celery's.
- ``cache``: a render submitted again with the same audio and options, served from
  the render cache: submit to ``complete`` (target < 100 ms), against rendering it.
- ``split``: ``bench/split.py``: one long render on one pinned core against split on
  two (speed-up, CPU-seconds), unpinned too, and an hour's analyse and join.
- ``queue``: with the workers stopped, submissions and ``GET /v1/jobs/<id>`` timed as
  the queue reaches each of ``--levels`` (100, 1,000, 10,000 queued) and Redis'
  ``used_memory`` per queued job; then the workers start and drain the queue: the rate,
  every job ``complete`` with ``attempts`` 1 (none lost, none run twice).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# with bench/ first on sys.path, ``import render`` would find bench/render.py
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != BENCH_DIR]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

import devstack as st  # noqa: E402
from bench import bare_celery as bare  # noqa: E402
from jobs.constants import COMPLETE, STAGE_FINALIZING, TERMINAL_STATES, job_redis_key  # noqa: E402
from jobs.store import Job, epoch_of  # noqa: E402

#: Per-job overhead over bare Celery at p50, seconds.
OVERHEAD_TARGET = 0.020
#: Measured on main before this benchmark existed: 1-second prepares, one worker -c 2.
DRAIN_BEFORE = 3.5
DRAIN_TARGET = 10 * DRAIN_BEFORE


def emit(line: str = "") -> None:
    print(line, flush=True)


def note(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def mark(ok: bool) -> str:
    return "pass" if ok else "FAIL"


@dataclass(frozen=True)
class Span:
    """One job's times (epoch seconds): submitted, its task started, its task ended
    (soundreel: when it reached `finalizing`, as it returned), and complete."""

    submitted: float
    started: float
    ended: float
    complete: float

    PARTS: ClassVar[dict[str, Callable[[Span], float]]] = {
        "submit -> task starts": lambda s: s.started - s.submitted,
        "the task (the work, and soundreel's reports)": lambda s: s.ended - s.started,
        "task ends -> complete": lambda s: s.complete - s.ended,
        "submit -> complete": lambda s: s.complete - s.submitted,
    }


# --- the stack -----------------------------------------------------------------


@dataclass
class Bench:
    """A running stack, the upload every job reads, and a way to start workers."""

    running: st.Stack
    processes: ExitStack
    workdir: Path
    audio_key: str
    #: Each process started (its own session), by role: where CPU time goes.
    sessions: dict[str, int]

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.running.redis_url)

    def soundreel_workers(self) -> None:
        """As the Procfile runs them: renders and previews (2 processes), callbacks."""
        env, log = self.running.env, self.workdir
        self.sessions["soundreel worker"] = self.processes.enter_context(
            st.worker(env, log / "worker.log", "w1", "render,preview")).pid
        self.sessions["soundreel callbacks"] = self.processes.enter_context(
            st.worker(env, log / "callbacks.log", "cb", "callbacks")).pid

    def bare_workers(self) -> None:
        """The baseline's: the same shape, bare Celery (``bench/bare_celery.py``)."""
        for name, queue in (("bare", bare.QUEUE), ("barecb", bare.CALLBACK_QUEUE)):
            log = self.workdir / f"{name}.log"
            cmd = [str(st.BIN / "celery"), "-A", "bench.bare_celery", "worker", "--loglevel",
                   "WARNING", "--concurrency", "2", "--hostname", f"{name}@%h",
                   "--without-mingle", "--without-gossip", "-Q", queue]
            self.sessions[f"{name} worker"] = self.processes.enter_context(
                st.process(cmd, log, self.running.env)).pid
            st.wait_until(lambda log=log: b"ready." in log.read_bytes(), 60, "bare worker", log)


@contextmanager
def stack(workdir: Path) -> Iterator[Bench]:
    """Redis and the API, with one upload (a second of audio); no workers yet."""
    with ExitStack() as processes:
        redis_url = processes.enter_context(st.redis_server(workdir))
        port = st.free_port()
        base = f"http://127.0.0.1:{port}"
        env = st.base_env(redis_url, base, workdir, {"STORAGE_DIR": str(workdir / "storage")})
        # bare_celery's workers report at INFO otherwise: every task a log line
        env["LOG_LEVEL"] = "WARNING"
        # one tenant submits 10,000 as fast as it can: the queue is measured, not the
        # submission limits (bench/fairness.py measures those)
        env["SUBMISSIONS_PER_MINUTE"] = env["MAX_QUEUED_JOBS"] = "0"
        # this checkout's code in every process, whatever an editable install points at
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH"))
                                            if p)
        running = st.Stack.of(base, redis_url, env, workdir)
        api = processes.enter_context(st.api_server(env, port, workdir / "api.log"))
        with open(st.one_second_wav(workdir / "one.wav"), "rb") as audio:
            key = running.client().post(running.url("/v1/uploads"), timeout=30,
                                        files={"file": ("one.wav", audio)}).json()["audioKey"]
        sessions = {"api": api.pid, "redis": redis_pid(redis_url)}
        yield Bench(running, processes, workdir, key, sessions)


def redis_pid(url: str) -> int:
    return int(redis.Redis.from_url(url).info("server")["process_id"])


def cpu_seconds(sessions: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system, with reaped children: ffmpeg, recycled pool processes)
    of every process in each session, by role (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(sessions, 0.0)
    roles = {sid: role for role, sid in sessions.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        role = roles.get(int(fields[3])) or roles.get(int(entry.name))
        if role is not None:
            totals[role] += sum(int(value) for value in fields[11:15]) / tick
    return totals


def cpu_table(spent: dict[str, dict[str, float]], jobs: int) -> None:
    """CPU ms per job, by process, for each side of a drain."""
    emit(f"| CPU ms per job in the drain | {' | '.join(spent)} |")
    emit("|---|" + "---|" * len(spent))
    roles = sorted({role for side in spent.values() for role in side if
                    any(side.get(role, 0) > 0.001 for side in spent.values())})
    for role in roles:
        cells = " | ".join(f"{side[role] * 1000 / jobs:.1f}" if role in side else ""
                           for side in spent.values())
        emit(f"| {role} | {cells} |")
    totals = " | ".join(f"{sum(side.values()) * 1000 / jobs:.1f}" for side in spent.values())
    emit(f"| all | {totals} |")


def records(client: redis.Redis, ids: list[str]) -> list[Job | None]:
    found: list[Job | None] = []
    for at in range(0, len(ids), 1000):
        raws = client.mget([job_redis_key(i) for i in ids[at:at + 1000]])
        found += [Job.from_json(raw) if raw is not None else None for raw in raws]
    return found


def wait_all(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


#: How many of a drain's first running jobs each look reads.
WATCHED = 100


def soundreel_drain(bench: Bench, ids: list[str], since: float, timeout: float) -> dict:
    """Wait for every job to end; the rate, and whether each ran once and completed.

    Jobs end about in the order they were submitted, so each look reads only the first
    jobs still running (``WATCHED``), never all of them: reading 10,000 records a few
    times a second would take a core of this machine and hold up Redis, and slow the
    drain it measures. The rate comes from the records' own times, read once at the end.
    """
    store = bench.redis
    pending = list(ids)

    def done() -> bool:
        while pending:
            head = pending[:WATCHED]
            running = [job_id for job_id, job in zip(head, records(store, head), strict=True)
                       if job is not None and job.status not in TERMINAL_STATES]
            pending[:WATCHED] = running
            if running:
                return False
        return True

    wait_all(done, timeout, f"the drain of {len(ids)} jobs")
    jobs = [job for job in records(store, ids) if job is not None]
    last = max(epoch_of(job.updated_at) for job in jobs)
    return {"jobs": len(ids), "complete": sum(job.status == COMPLETE for job in jobs),
            "once": sum(job.attempts == 1 for job in jobs),
            "lost": len(ids) - sum(job.status == COMPLETE for job in jobs),
            "seconds": last - since, "rate": len(ids) / (last - since)}


# --- overhead: soundreel against bare Celery, same work, same Redis -------------------


def overhead(args: argparse.Namespace) -> None:
    emit("## overhead: one 1-second prepare job at a time, and a drain")
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp, stack(Path(tmp)) as bench:
        note("starting soundreel's and bare Celery's workers")
        bench.soundreel_workers()
        bench.bare_workers()
        sender = bare.create(bench.running.redis_url)
        client, store = bench.running.client(), bench.redis

        def soundreel_one() -> Span:
            t0 = time.time()
            job_id = client.post(bench.running.url("/v1/jobs"), timeout=30, json={
                "kind": "prepare", "audioKey": bench.audio_key}).json()["jobId"]
            while True:
                job = Job.from_json(store.get(job_redis_key(job_id)))
                if job.status in TERMINAL_STATES:
                    assert job.status == COMPLETE and job.started_at, job
                    # the task's span: from its start (the attempt) to its return
                    # (`finalizing`; its hand-off goes meanwhile, on a thread of its own)
                    return Span(t0, epoch_of(job.started_at),
                                epoch_of(job.stage_at[STAGE_FINALIZING]),
                                epoch_of(job.updated_at))
                time.sleep(0.002)

        def bare_one() -> Span:
            job_id = uuid.uuid4().hex
            t0 = time.time()
            bare.send(sender, job_id, bench.audio_key)
            while (done := store.hget(bare.DONE_KEY, job_id)) is None:
                time.sleep(0.002)
            started, ended = (float(v) for v in store.hget(bare.SPAN_KEY, job_id).split())
            return Span(t0, started, ended, float(done))

        for _ in range(5):  # warm both: imports, connections, the first fork of ffmpeg
            soundreel_one(), bare_one()
        note(f"{args.jobs} jobs each, alternating")
        ours, theirs = [], []
        for _ in range(args.jobs):
            ours.append(soundreel_one())
            theirs.append(bare_one())

        note(f"drain of {args.drain} soundreel jobs")
        cpu_before = cpu_seconds(bench.sessions)
        since = time.time()
        ids = [client.post(bench.running.url("/v1/jobs"), timeout=30, json={
            "kind": "prepare", "audioKey": bench.audio_key}).json()["jobId"]
            for _ in range(args.drain)]
        drained = soundreel_drain(bench, ids, since, timeout=args.drain * 2 + 120)
        cpu_between = cpu_seconds(bench.sessions)

        note(f"drain of {args.drain} bare Celery jobs")
        store.delete(bare.DONE_KEY, bare.RUNS_KEY)
        bare_ids = [uuid.uuid4().hex for _ in range(args.drain)]
        since = time.time()
        for job_id in bare_ids:
            bare.send(sender, job_id, bench.audio_key)
        wait_all(lambda: store.hlen(bare.DONE_KEY) >= len(bare_ids), args.drain * 2 + 120,
                 "the bare drain")
        bare_last = max(float(v) for v in store.hvals(bare.DONE_KEY))
        runs = [int(v) for v in store.hmget(bare.RUNS_KEY, bare_ids) if v is not None]
        bare_rate = len(bare_ids) / (bare_last - since)
        cpu_after = cpu_seconds(bench.sessions)
        ours_only = ("api", "redis", "soundreel worker", "soundreel callbacks")
        theirs_only = ("api", "redis", "bare worker", "barecb worker")
        spent = {
            "soundreel": {r: cpu_between[r] - cpu_before[r] for r in ours_only},
            "bare Celery": {r: cpu_after[r] - cpu_between[r] for r in theirs_only},
        }

    emit(f"jobs: {args.jobs} of each, alternating, each on an idle stack; times in ms")
    emit()
    emit("| | soundreel p50 | bare Celery p50 | difference | soundreel p99 | bare p99 |")
    emit("|---|---|---|---|---|---|")
    for name, part in Span.PARTS.items():
        a, b = [part(x) for x in ours], [part(x) for x in theirs]
        emit(f"| {name} | {percentile(a, 50) * 1000:.1f} | {percentile(b, 50) * 1000:.1f} | "
             f"{(percentile(a, 50) - percentile(b, 50)) * 1000:+.1f} | "
             f"{percentile(a, 99) * 1000:.1f} | {percentile(b, 99) * 1000:.1f} |")
    total = Span.PARTS["submit -> complete"]
    difference = (percentile([total(x) for x in ours], 50)
                  - percentile([total(x) for x in theirs], 50))
    emit(f"soundreel's own overhead per job (p50 difference, the same work on both): "
         f"{difference * 1000:.1f} ms (target < {OVERHEAD_TARGET * 1000:.0f} ms: "
         f"{mark(difference < OVERHEAD_TARGET)})")
    emit()
    emit(f"| drain of {args.drain}, one worker -c 2 | jobs/s | complete | ran once | "
         f"seconds |")
    emit("|---|---|---|---|---|")
    emit(f"| soundreel | {drained['rate']:.1f} | {drained['complete']} | {drained['once']} | "
         f"{drained['seconds']:.1f} |")
    emit(f"| bare Celery | {bare_rate:.1f} | {len(runs)} | {sum(r == 1 for r in runs)} | "
         f"{bare_last - since:.1f} |")
    emit(f"soundreel drains at {drained['rate'] / bare_rate:.2f}x bare Celery's rate and "
         f"{drained['rate'] / DRAIN_BEFORE:.1f}x the {DRAIN_BEFORE} jobs/s measured before "
         f"(target {DRAIN_TARGET:.0f} jobs/s: {mark(drained['rate'] >= DRAIN_TARGET)}); "
         f"lost {drained['lost']}, run more than once "
         f"{drained['jobs'] - drained['once']}")
    emit()
    cpu_table(spent, args.drain)
    emit("(bare Celery's jobs read their audio through the API's signed link, as "
         "soundreel's do, with the local store)")
    emit()


# --- queue: 10,000 jobs waiting -----------------------------------------------------


def queue(args: argparse.Namespace) -> None:
    levels = sorted(int(level) for level in args.levels.split(","))
    emit(f"## queue: {', '.join(f'{n:,}' for n in levels)} jobs queued, workers stopped")
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp, stack(Path(tmp)) as bench:
        client, store = bench.running.client(), bench.redis
        store.execute_command("MEMORY", "PURGE")
        memory_before = int(store.info("memory")["used_memory"])
        ids: list[str] = []
        rows = []
        for level in levels:
            timed: list[float] = []
            note(f"filling to {level:,}")
            while len(ids) < level:
                t0 = time.perf_counter()
                response = client.post(bench.running.url("/v1/jobs"), timeout=30, json={
                    "kind": "prepare", "audioKey": bench.audio_key})
                elapsed = time.perf_counter() - t0
                assert response.status_code == 202, response.text
                ids.append(response.json()["jobId"])
                if len(ids) > level - args.sample:  # the last ones before the level
                    timed.append(elapsed)
            gets = []
            for job_id in random.sample(ids, min(args.sample, len(ids))):
                t0 = time.perf_counter()
                answer = client.get(bench.running.url(f"/v1/jobs/{job_id}"), timeout=30)
                gets.append(time.perf_counter() - t0)
                assert answer.json()["status"] == "queued"
            store.execute_command("MEMORY", "PURGE")
            used = int(store.info("memory")["used_memory"]) - memory_before
            rows.append((level, statistics.median(timed), statistics.median(gets),
                         used / len(ids)))
        emit()
        emit("| queued | submit p50 ms | GET p50 ms | Redis bytes per queued job |")
        emit("|---|---|---|---|")
        for level, submit, get, per_job in rows:
            emit(f"| {level:,} | {submit * 1000:.1f} | {get * 1000:.1f} | {per_job:,.0f} |")
        first, last = rows[0], rows[-1]
        emit(f"from {first[0]:,} to {last[0]:,} queued: submit {last[1] / first[1]:.2f}x, "
             f"GET {last[2] / first[2]:.2f}x, bytes per job {last[3] / first[3]:.2f}x")
        if args.no_drain:
            return
        note(f"workers started: draining {len(ids):,}")
        since = time.time()
        bench.soundreel_workers()
        drained = soundreel_drain(bench, ids, since, timeout=len(ids) + 600)
    emit()
    emit(f"drain of {drained['jobs']:,} (one worker -c 2, from its start): "
         f"{drained['rate']:.1f} jobs/s in {drained['seconds']:.0f} s; complete "
         f"{drained['complete']:,}, lost {drained['lost']}, ran once {drained['once']:,} "
         f"({mark(drained['complete'] == drained['once'] == drained['jobs'])})")
    emit()


def split(args: argparse.Namespace) -> None:
    """One long render split across pinned workers (``bench/split.py``, its own stacks)."""
    from bench import split as split_bench

    emit(f"## split: {args.minutes:g} minutes of audio, unsplit on one core against split "
         "on two")
    for line in split_bench.run(args.minutes):
        emit(line)
    emit()


def cache(args: argparse.Namespace) -> None:
    """A repeated render served from the render cache: submit to ``complete``."""
    emit("## cache: a repeated 1-second render, submit -> complete")
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp, stack(Path(tmp)) as bench:
        bench.soundreel_workers()
        client = bench.running.client()
        body = {"kind": "render", "audioKey": bench.audio_key,
                "options": {"width": 640, "height": 360}}

        def submit_until_complete(extra: dict) -> tuple[float, dict]:
            t0 = time.perf_counter()
            job = client.post(bench.running.url("/v1/jobs"), timeout=30,
                              json={**body, **extra}).json()
            while job["status"] not in TERMINAL_STATES:
                time.sleep(0.002)
                job = client.get(bench.running.url(f"/v1/jobs/{job['jobId']}"),
                                 timeout=30).json()
            assert job["status"] == COMPLETE, job
            return time.perf_counter() - t0, job

        first, _ = submit_until_complete({})  # the render that fills the cache
        rendered = [submit_until_complete({"options": {**body["options"], "cache": False}})[0]
                    for _ in range(5)]
        hits = []
        for _ in range(args.repeats):
            seconds, job = submit_until_complete({})
            assert job["result"].get("cached") is True, job["result"]
            hits.append(seconds)
    hit50, render50 = statistics.median(hits), statistics.median(rendered)
    emit("| | p50 ms | p90 ms |")
    emit("|---|---|---|")
    emit(f"| rendered (cache: false), {len(rendered)} | {render50 * 1000:.1f} | "
         f"{percentile(rendered, 90) * 1000:.1f} |")
    emit(f"| served from the cache, {len(hits)} | {hit50 * 1000:.1f} | "
         f"{percentile(hits, 90) * 1000:.1f} |")
    emit(f"a hit is {render50 / hit50:.0f}x faster than rendering the same job; "
         f"target < 100 ms: {mark(hit50 < 0.100)}")
    emit()


#: Each section: a name for ``--only``, and what runs it.
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "overhead": overhead,
    "cache": cache,
    "split": split,
    "queue": queue,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections (default all: {', '.join(SECTIONS)})")
    parser.add_argument("--jobs", type=int, default=200,
                        help="overhead: jobs timed one at a time, of each kind (200)")
    parser.add_argument("--drain", type=int, default=1000,
                        help="overhead: jobs submitted at once for the drain rate (1000)")
    parser.add_argument("--levels", default="100,1000,10000",
                        help="queue: queue depths to measure at (100,1000,10000)")
    parser.add_argument("--sample", type=int, default=100,
                        help="queue: submissions and GETs timed at each depth (100)")
    parser.add_argument("--no-drain", action="store_true",
                        help="queue: stop after filling, without draining")
    parser.add_argument("--repeats", type=int, default=20,
                        help="cache: repeated jobs timed (20)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="split: minutes of audio rendered unsplit and split (10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    emit(f"soundreel scale benchmark, {time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPUs, "
         f"load {load} (1, 5, 15 min)")
    emit()
    for name in SECTIONS:  # in the table's order, whatever the order asked
        if name in chosen:
            SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
