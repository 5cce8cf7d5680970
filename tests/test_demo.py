"""``python3 dev.py demo --keep`` stopped by a signal, not by Ctrl-C: every process it
started must go with it. The services run in sessions of their own, so the signal
reaches only the demo; it has to stop them itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devstack import ROOT
from tests.helpers.e2e import wait_for


def proc_stat(pid: int) -> tuple[int, int, int, str] | None:
    """(parent pid, session id, start time, state) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), int(fields[3]), int(fields[19]), fields[0]


def started_by(pid: int) -> dict[int, int]:
    """Every process ``pid`` started and what those started in turn (the services are
    session leaders: their workers share their session): pid -> start time."""
    stats = {int(entry.name): proc_stat(int(entry.name))
             for entry in Path("/proc").iterdir() if entry.name.isdigit()}
    stats = {p: s for p, s in stats.items() if s is not None}
    leaders = {p for p, s in stats.items() if s[0] == pid}
    return {p: s[2] for p, s in stats.items() if p in leaders or s[1] in leaders}


def alive(pid: int, start: int) -> bool:
    """Still running: the same process (same start time, not a reused pid) and not a zombie."""
    stat = proc_stat(pid)
    return stat is not None and stat[2] == start and stat[3] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_the_kept_demo_and_everything_it_started(tmp_path: Path,
                                                                signum: int) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "scripts.demo", "--keep", "--kind", "prepare",
         "--workdir", str(tmp_path / "demo")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    children: dict[int, int] = {}
    try:
        wait_for(lambda: any("SOUNDREEL_API_KEY=" in line for line in lines)
                 or demo.poll() is not None, 180, "the demo's CLI settings")
        output = "".join(lines)
        assert demo.poll() is None, output
        assert "export SOUNDREEL_URL=http://127.0.0.1:" in output
        assert "add --keep" not in output
        children = started_by(demo.pid)
        # redis-server, gunicorn (with its 2 workers), the worker (with its 2 children), beat
        assert len(children) >= 4, output

        demo.send_signal(signum)
        assert demo.wait(timeout=60) == -signum  # it ends as the signal would end it
        reader.join(timeout=10)
        left = [pid for pid, start in children.items() if alive(pid, start)]
        assert left == [], f"still running after {signal.Signals(signum).name}: {left}"
        assert "stopped the API, the worker, beat and redis-server" in "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid, start in children.items():  # a failed test leaves nothing behind
            if alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
