"""Threads a pool process keeps for I/O that need not hold its task up: the upload
fetched while the API is asked to start the job, the hand-off sent as the task
returns. One thread per use, so each keeps its HTTP connections from job to job.

Created on first use in each process (a thread does not survive the pool's fork),
and waited for as the process exits (`drain`, on Celery's
``worker_process_shutdown``): a hand-off taken is a hand-off sent.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_lock = threading.Lock()
_threads: dict[str, ThreadPoolExecutor] = {}
_pid = os.getpid()


def submit(use: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
    """Run ``fn`` on this process's thread for ``use``, in a copy of the caller's
    context (its log lines name the caller's job and request)."""
    global _pid
    with _lock:
        if _pid != os.getpid():  # a forked child: its parent's threads are not here
            _threads.clear()
            _pid = os.getpid()
        pool = _threads.get(use)
        if pool is None:
            pool = _threads[use] = ThreadPoolExecutor(1, thread_name_prefix=use)
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


#: What must be sent before the process exits; the rest (fetches ahead of a job's
#: start, for jobs this process will not run) is dropped.
MUST_SEND = ("handoff",)


def drain() -> None:
    """Wait for the hand-offs submitted in this process (it is about to exit); what
    else is queued is canceled, what else runs is left to die with the process."""
    with _lock:
        pools = dict(_threads) if _pid == os.getpid() else {}
        _threads.clear()
    for use, pool in pools.items():
        if use not in MUST_SEND:
            pool.shutdown(wait=False, cancel_futures=True)
    for use in MUST_SEND:
        if use in pools:
            pools[use].shutdown(wait=True)
