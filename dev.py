#!/usr/bin/env python3
"""soundreel's two commands, for a fresh machine with nothing but Python (and root):

    python3 dev.py demo     set up, then render the bundled sample through the real
                            API and worker and print where the video is
    python3 dev.py test     set up, then run the whole test suite

    python3 dev.py setup    only set up (system packages and .venv)

Setup installs what the machine lacks: ``redis-server`` (the demo and tests start
private ones on free ports) and, for the tests, Debian's ``ffmpeg`` for
``ffprobe``, ``tmux`` (a real terminal for the CLI test) and ``chromium`` (the
browser test); then a virtualenv in
``.venv`` with the project and its dev extras.
It uses only the standard library, so it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".soundreel-installed"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def run(cmd: list[str], **kwargs) -> None:
    subprocess.run(cmd, check=True, **kwargs)  # noqa: S603


def apt_install(needed: dict[str, str]) -> None:
    """Install Debian packages for the commands in ``needed`` (command -> package)."""
    missing = sorted({pkg for cmd, pkg in needed.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"missing {', '.join(missing)}: install them with your package manager")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    say(f"installing {' '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run([*sudo, "apt-get", "update", "-qq"], env=env)
    run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        say("creating .venv")
        venv.create(VENV, with_pip=True)
    say("installing soundreel and its dependencies into .venv")
    run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([str(PYTHON), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"])
    STAMP.write_text(wanted)


def setup(for_tests: bool) -> None:
    needed = {"redis-server": "redis-server"}
    if for_tests:
        needed["ffprobe"] = "ffmpeg"
        needed["tmux"] = "tmux"  # the CLI test drives `soundreel` in a real terminal
        needed["chromium"] = "chromium"  # the browser test (Playwright drives /usr/bin/chromium)
    apt_install(needed)
    ensure_venv()


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "setup":
        setup(for_tests=True)
        return 0
    if command in ("demo", "test"):
        setup(for_tests=command == "test")
        module = "scripts.demo" if command == "demo" else "pytest"
        # Replace this process, so Ctrl-C (or a `kill` of this pid, or a closed
        # terminal) reaches the demo or pytest directly and they stop the services
        # they started.
        if command == "test" and not any(arg == "-n" or arg.startswith(("-n", "--numprocesses"))
                                         for arg in rest):
            # Three pytest processes, a test file each at a time: most of the suite waits
            # on real services (leases expiring, workers restarting), so files overlap well
            # even on two cores. `python3 dev.py test -n 0` runs it in one process.
            rest = ["-n", "3", "--dist", "loadfile", *rest]
        os.chdir(ROOT)
        os.execv(PYTHON, [str(PYTHON), "-m", module, *rest])  # noqa: S606
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
