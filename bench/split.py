"""Split rendering on the fleet: what cutting one render into windows buys and costs.

The ``split`` section of ``bench/scale.py`` (also runnable alone:
``.venv/bin/python bench/split.py [--minutes 10]``). One run, on a real stack
(private redis-server, the API, Celery workers, local storage):

- hosts simulated by pinning, this machine having 2 cores and an unsplit render
  already keeping both busy (x264 is threaded): one worker pinned to core 0 (one
  process) rendering the clip unsplit, against two workers pinned to cores 0 and 1
  (one process each) rendering it split. Wall time from submit to ``complete``,
  speed-up, and the CPU-seconds of the workers' process trees (ffmpeg included);
- the same two renders unpinned (one worker with 2 processes), as they come;
- the analyse and join steps for 60 minutes of audio, measured alone: the analysis
  of an hour (and the audio's encode, a unit of work beside the windows), and the
  join of an hour of windows (one real 30 s window copied to
  fill the hour, the same bytes to move), against an unsplit render of the same
  size extrapolated from the 1-core run; and the model for N hosts from these.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import devstack as st  # noqa: E402
from render.audio import ffmpeg_exe  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 30
OPTIONS = {"width": WIDTH, "height": HEIGHT, "fps": FPS, "style": "bars",
           "title": "Episode 42", "subtitle": "A long conversation"}
TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def make_audio(path: Path, seconds: float) -> Path:
    """Speech-like audio: a tone whose loudness wanders, over pink noise."""
    subprocess.run([
        ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
        f"sine=frequency=220:duration={seconds}", "-f", "lavfi", "-i",
        f"anoisesrc=color=pink:amplitude=0.2:duration={seconds}",
        "-filter_complex", "[0][1]amix=inputs=2,volume='0.5+0.4*sin(t/3)':eval=frame",
        "-c:a", "libmp3lame", "-b:a", "128k", "-y", str(path)], check=True)
    return path


def tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    found = [pid]
    for child in (int(p) for p in out.split()):
        found += tree(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system time of the processes and their reaped children (the ffmpegs)."""
    total = 0
    for pid in {p for root in pids for p in tree(root)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def stack_for(processes: ExitStack, workdir: Path, env_extra: dict[str, str]) -> st.Stack:
    redis_url = processes.enter_context(st.redis_server(workdir))
    port = st.free_port()
    base = f"http://127.0.0.1:{port}"
    env = st.base_env(redis_url, base, workdir, {"STORAGE_DIR": str(workdir / "storage")})
    env.update(env_extra)
    # this checkout's code in every process, whatever an editable install points at
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    running = st.Stack.of(base, redis_url, env, workdir)
    processes.enter_context(st.api_server(env, port, workdir / "api.log"))
    processes.enter_context(st.worker(env, workdir / "callbacks.log", "cb", "callbacks",
                                      concurrency=1))
    return running


def render_once(audio: Path, workdir: Path, split: bool,
                workers: list[tuple[str, int, str | None]]) -> dict[str, Any]:
    """Submit one render on a fresh stack with ``workers`` (name, processes, cpus);
    wall time submit -> complete, and the workers' CPU-seconds."""
    with ExitStack() as processes:
        running = stack_for(processes, workdir, {})
        procs = [processes.enter_context(st.worker(
            running.env, workdir / f"{name}.log", name, "render,preview", concurrency=count,
            cpus=cpus)) for name, count, cpus in workers]
        client = running.client()
        with open(audio, "rb") as body:
            key = client.post(running.url("/v1/uploads"), files={"file": (audio.name, body)},
                              timeout=120).json()["audioKey"]
        before = cpu_seconds([p.pid for p in procs])
        started = time.monotonic()
        job = client.post(running.url("/v1/jobs"), timeout=30, json={
            "kind": "render", "audioKey": key,
            # the same clip four times: each one rendered, none served from the cache
            "options": {**OPTIONS, "split": split, "cache": False}}).json()
        while True:
            job = client.get(running.url(f"/v1/jobs/{job['jobId']}"), timeout=30).json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu = cpu_seconds([p.pid for p in procs]) - before
    if job["status"] != "complete":
        raise SystemExit(f"bench/split.py: the render ended {job['status']}: {job['error']}")
    return {"wall": wall, "cpu": cpu, "duration": job["result"]["duration"]}


def hour_steps(workdir: Path, minutes: float) -> dict[str, float]:
    """Analyse 60 minutes of audio, and join 60 minutes of windows, each alone."""
    from render.spec import RenderSpec
    from render.split import Window, analyse, encode_sound, join, plan_windows, render_window

    spec = RenderSpec(**OPTIONS)
    hour = make_audio(workdir / "hour.mp3", 3600)
    t0 = time.monotonic()
    rendered = analyse(hour, spec, workdir / "hour.npz")
    analysed = time.monotonic() - t0
    t0 = time.monotonic()  # beside the windows, not on the critical path
    encode_sound(hour, spec, rendered.duration, workdir / "hour.m4a")
    sound = time.monotonic() - t0
    windows = plan_windows(rendered.frames, FPS, 30)
    one = workdir / "window.mp4"
    render_window(workdir / "hour.npz", spec, Window(0, 0, windows[0].stop), one)
    copies = []
    for index in range(len(windows)):
        copies.append(workdir / f"w{index:05d}.mp4")
        shutil.copyfile(one, copies[-1])
    t0 = time.monotonic()
    join(copies, workdir / "hour.m4a", workdir / "hour.mp4")
    joined = time.monotonic() - t0
    return {"analyse": analysed, "join": joined, "windows": len(windows), "sound": sound}


def run(minutes: float) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        audio = make_audio(workdir / "episode.mp3", minutes * 60)
        runs = {
            "1 core, unsplit": (False, [("u1", 1, "0")]),
            "2 cores, split": (True, [("s1", 1, "0"), ("s2", 1, "1")]),
            "unpinned, unsplit": (False, [("u2", 2, None)]),
            "unpinned, split": (True, [("s3", 2, None)]),
        }
        results = {}
        for name, (split, workers) in runs.items():
            folder = workdir / name.replace(" ", "").replace(",", "-")
            folder.mkdir()
            results[name] = render_once(audio, folder, split, workers)
            print(f"  {name}: {results[name]['wall']:.1f} s", file=sys.stderr)
        steps = hour_steps(workdir, minutes)
    base, split = results["1 core, unsplit"], results["2 cores, split"]
    lines.append(f"{minutes:g} min of audio at {WIDTH}x{HEIGHT} {FPS} fps, bars, windows of "
                 "30 s")
    lines.append("| run | wall s | x realtime | CPU-s |")
    lines.append("|---|---|---|---|")
    for name, result in results.items():
        lines.append(f"| {name} | {result['wall']:.1f} | {result['duration'] / result['wall']:.2f}"
                     f" | {result['cpu']:.0f} |")
    lines.append(f"speed-up, 2 pinned cores split over 1 core unsplit: "
                 f"{base['wall'] / split['wall']:.2f}x (goal >= 1.8x)")
    lines.append(f"CPU-seconds, split over unsplit: {split['cpu'] / base['cpu']:.3f}x "
                 "(goal <= 1.1x)")
    unsplit_hour = base["wall"] * 60 / minutes
    overhead = (steps["analyse"] + steps["join"]) / unsplit_hour
    lines.append(f"60 min: analyse {steps['analyse']:.1f} s, join of {steps['windows']:.0f} "
                 f"windows {steps['join']:.1f} s; an unsplit hour on one core ~"
                 f"{unsplit_hour:.0f} s (from the run above): the two steps are "
                 f"{overhead * 100:.1f} % of it (goal < 5 %); the audio's encode "
                 f"({steps['sound']:.1f} s) runs beside the windows")
    lines.append("model, wall(N hosts) ~ analyse + unsplit/N + join + queue latency:")
    for hosts in (1, 2, 4, 8, 16):
        wall = steps["analyse"] + unsplit_hour / hosts + steps["join"]
        lines.append(f"  {hosts:>2} hosts: ~{wall:.0f} s for an hour "
                     f"({unsplit_hour / wall:.1f}x faster than one)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    print("\n".join(run(args.minutes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
