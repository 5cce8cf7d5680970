"""Starting pieces of a stack by hand (fault tests break them by pid), settings for
one, and a Flask app served in a thread (adapter tests)."""

from __future__ import annotations

import subprocess
import threading
from contextlib import ExitStack
from pathlib import Path

from werkzeug.serving import make_server

import devstack as st
from config.settings import Settings

#: A render slow enough to be caught mid-way: 720p60 at high quality (about 13 s of 20 s
#: of audio on an idle 2-core machine; 1080p took twice the CPU of a suite that renders
#: it often); in one piece (a long one would be split across the fleet:
#: tests/test_split*.py cover that).
SLOW = {"kind": "render", "options": {"width": 1280, "height": 720, "fps": 60, "quality": 18,
                                      "split": False}}


def start_api(stack: ExitStack, tmp_path: Path, redis_url: str,
              storage: dict[str, str] | None = None, **extra: str) -> st.Stack:
    """The API on a free port; local storage under ``tmp_path`` unless ``storage`` (the
    S3_* variables) says otherwise."""
    port = st.free_port()
    base = f"http://127.0.0.1:{port}"
    env = st.base_env(redis_url, base, tmp_path,
                      storage or {"STORAGE_DIR": str(tmp_path / "storage")})
    env.update(extra)
    running = st.Stack.of(base, redis_url, env, tmp_path)
    running.procs["api"] = stack.enter_context(st.api_server(env, port, tmp_path / "api.log"))
    return running


def ffmpeg_encoders(under: Path | None = None) -> list[tuple[int, int]]:
    """(pid, parent pid) of every ffmpeg encoding from a pipe (a render in progress);
    ``under``: only those writing below that folder (one stack's, as the suite runs
    several stacks side by side)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        pid, ppid, args = line.split(None, 2)
        if "ffmpeg" in args and "pipe:0" in args and "soundreel-" in args \
                and (under is None or str(under) in args):
            rows.append((int(pid), int(ppid)))
    return rows


class ServedApp:
    """A Flask app behind a real HTTP server in a thread (for adapter tests)."""

    def __init__(self, app, port: int) -> None:  # noqa: ANN001
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()


def settings_for(env: dict[str, str]) -> Settings:
    defaults = {"WORKER_TOKEN": "test-worker-token-0123456789", "API_KEYS": "acme:sk_test_acme_1"}
    return Settings.from_env({**defaults, **env})
