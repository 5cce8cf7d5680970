"""Render the bundled sample through the real API and worker, and say where the video is.

    python -m scripts.demo [--audio FILE] [--kind render|preview|prepare]
                           [--size 1280x720] [--keep] [--workdir DIR]

Starts a private redis-server, the API (gunicorn), a Celery worker and beat, uploads
the audio, submits the job, shows its progress, prints the MP4's path and URL, and
stops what it started (``--keep`` leaves them running until Ctrl-C, ``kill`` or a
closed terminal, so the URL keeps working, and prints what the CLI needs to use them).

The services run in sessions of their own (so a Ctrl-C in the terminal reaches only
the demo, which stops them in order); the demo therefore turns SIGTERM and SIGHUP
into the same orderly stop, then dies of the signal it got.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devstack import ROOT, Stack, StackError, stack
from jobs.constants import TERMINAL_STATES

SAMPLE = ROOT / "samples" / "sample.mp3"
TERMINAL = TERMINAL_STATES
#: Signals that stop the demo and everything it started, as Ctrl-C does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so no
    ``except Exception`` on the way (a readiness poll) swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    # one orderly stop: a second signal must not cut the stopping of the services short
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signum)


def _die_of(signum: int) -> int:
    """End as the signal would have ended us (the shell shows 128 + signum)."""
    try:
        sys.stdout.flush()
    except OSError:
        pass  # SIGHUP: the terminal may be gone
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum  # not reached: the signal ends the process


def bar(progress: float, stage: str | None, width: int = 30) -> str:
    filled = round(progress * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {progress * 100:5.1f}% {stage or ''}"


def run_demo(running: Stack, audio: Path, kind: str, size: str, keep: bool = False) -> int:
    client = running.client()
    with open(audio, "rb") as file:
        upload = client.post(running.url("/v1/uploads"), files={"file": (audio.name, file)},
                             timeout=60)
    upload.raise_for_status()
    audio_key = upload.json()["audioKey"]
    print(f"uploaded {audio.name} as {audio_key} ({upload.json()['bytes']} bytes)")
    width, height = (int(part) for part in size.split("x"))
    body: dict = {"kind": kind, "audioKey": audio_key}
    if kind != "prepare":
        body["options"] = {"width": width, "height": height, "fps": 30}
    started = time.monotonic()
    submitted = client.post(running.url("/v1/jobs"), json=body, timeout=30)
    if submitted.status_code != 202:
        print(f"submit failed: {submitted.status_code} {submitted.text}", file=sys.stderr)
        return 1
    location = submitted.headers["Location"]
    print(f"submitted {kind} job {submitted.json()['jobId']}")
    job = submitted.json()
    shown = None
    while True:
        line = bar(job["progress"], job["stage"])
        if line != shown:  # on a terminal redraw one line; in a log, one line per change
            print(f"\r{line}" if sys.stdout.isatty() else line, end="", flush=True)
            if not sys.stdout.isatty():
                print(flush=True)
            shown = line
        if job["status"] in TERMINAL:
            break
        time.sleep(0.25)
        job = client.get(running.url(location), timeout=30).json()
    elapsed = time.monotonic() - started
    if sys.stdout.isatty():
        print()
    if job["status"] != "complete":
        print(f"job failed: {job['error']['code']}: {job['error']['message']}", file=sys.stderr)
        return 1
    key = next(job["result"][k] for k in ("videoKey", "previewKey", "preparedKey")
               if k in job["result"])
    path = Path(running.env["STORAGE_DIR"]) / key
    # an earlier run's video of the same audio and options is reused (docs/cache.md)
    cached = " (the same render as an earlier run's, from the render cache)" \
        if job["result"].get("cached") else ""
    print(f"complete in {elapsed:.1f} s (submit to complete), "
          f"{job['result']['duration']:.2f} s of {job['result']['format']}{cached}")
    print(f"path: {path}")
    print(f"url:  {job['downloadUrl']}")
    served = "served by the API while it runs" + ("" if keep else ": add --keep to keep it running")
    print(f"      (expires {job['downloadUrlExpiresAt']}; {served})", flush=True)
    return 0


def print_cli_settings(running: Stack) -> None:
    """What to paste into another shell to point the ``soundreel`` CLI at this stack."""
    print("services keep running; for the soundreel CLI, in another shell:")
    print(f"  export SOUNDREEL_URL={running.base_url}")
    print(f"  export SOUNDREEL_API_KEY={running.api_key}")
    print(f"Ctrl-C (or kill {os.getpid()}) stops them.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=SAMPLE)
    parser.add_argument("--kind", choices=("render", "preview", "prepare"), default="render")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--keep", action="store_true", help="keep the services running")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "demo",
                        help="logs, data and outputs (default var/demo)")
    args = parser.parse_args(argv)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop)
    try:
        code = _run(args)
    except Stopped as stopped:
        try:
            print(f"\n{stopped}: stopped the API, the worker, beat and redis-server",
                  flush=True)
        except OSError:
            pass  # SIGHUP: the terminal may be gone
        return _die_of(stopped.signum)
    return code


def _run(args: argparse.Namespace) -> int:
    """The demo; leaving it (normally, by Ctrl-C or by `Stopped`) stops every service."""
    print(f"starting redis-server, the API and a worker (logs in {args.workdir}/*.log) ...",
          flush=True)
    try:
        with stack(args.workdir) as running:
            print(f"API at {running.base_url}", flush=True)
            code = run_demo(running, args.audio, args.kind, args.size, args.keep)
            if args.keep and code == 0:
                print_cli_settings(running)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        print("stopped the API, the worker, beat and redis-server")
        return code
    except StackError as exc:
        print(f"could not start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
