"""gunicorn settings for the API: ``gunicorn -c python:api.gunicorn_conf 'api:create_app()'``.

Sets up prometheus-client's multiprocess mode: each worker process counts into
files under ``PROMETHEUS_MULTIPROC_DIR`` (a fresh private directory unless the
operator names one), ``/metrics`` sums them, and a worker that exits is marked
dead so its gauges go while its counters keep counting.

prometheus-client picks its storage when first imported, so the variable is set
here, in the master, before any worker imports it (and nothing here imports it
at module level).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_OWN = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # a directory of our making
_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="prometheus-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _DIR


def on_starting(server: Any) -> None:
    """Start from zero: files left by an earlier run of this replica would add up."""
    root = Path(_DIR)
    root.mkdir(parents=True, exist_ok=True)
    for path in root.iterdir():
        if path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """A temporary directory of our making goes with the master."""
    if _OWN:
        shutil.rmtree(_DIR, ignore_errors=True)
