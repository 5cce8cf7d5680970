"""Render the bundled sample through the real API and worker, and say where the video is.

    python -m scripts.demo [--audio FILE] [--kind render|preview|prepare]
                           [--size 1280x720] [--keep]

Starts a private redis-server, the API (gunicorn) and a Celery worker, uploads the
audio, submits the job, shows its progress, prints the MP4's path and URL, and
stops what it started (``--keep`` leaves them running until Ctrl-C, so the URL
keeps working).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scripts.stack import ROOT, Stack, StackError, stack
from storage.constants import TERMINAL_STATES

SAMPLE = ROOT / "samples" / "sample.mp3"
TERMINAL = TERMINAL_STATES


def bar(progress: float, stage: str | None, width: int = 30) -> str:
    filled = round(progress * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {progress * 100:5.1f}% {stage or ''}"


def run_demo(running: Stack, audio: Path, kind: str, size: str) -> int:
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
    print(f"complete in {elapsed:.1f} s (submit to complete), "
          f"{job['result']['duration']:.2f} s of {job['result']['format']}")
    print(f"path: {path}")
    print(f"url:  {job['downloadUrl']}")
    print(f"      (expires {job['downloadUrlExpiresAt']}; served by the API while it runs:"
          " add --keep to keep it running)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=SAMPLE)
    parser.add_argument("--kind", choices=("render", "preview", "prepare"), default="render")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--keep", action="store_true", help="keep the services running")
    args = parser.parse_args(argv)
    workdir = ROOT / "var" / "demo"
    print("starting redis-server, the API and a worker (logs in var/demo/*.log) ...")
    try:
        with stack(workdir) as running:
            print(f"API at {running.base_url}")
            code = run_demo(running, args.audio, args.kind, args.size)
            if args.keep and code == 0:
                print(f"services keep running; API key: {running.api_key}. Ctrl-C to stop.")
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
