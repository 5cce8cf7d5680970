"""Start the real thing on this machine: a private redis-server, the API under
gunicorn, Celery workers and beat, and optionally an S3-compatible server (moto).

Used by the demo (``python -m scripts.demo``), the benchmarks and the end-to-end
tests, so all of them run exactly the processes production runs. Everything binds to 127.0.0.1 on
free ports and is stopped on exit; nothing relies on a service already running.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent  # the repository
BIN = Path(sys.executable).parent
S3_BUCKET = "soundreel-test"
TENANT, OTHER_TENANT = "acme", "globex"


#: gunicorn's access log without query strings (they carry link signatures and tokens).
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


class StackError(RuntimeError):
    """A process did not come up; the message says which and shows its log."""


def one_second_wav(path: Path) -> Path:
    """The audio of the shortest job (a second of a quiet tone), for benchmarks and tests."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(b"\x00\x10" * 44100)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001,S110 - not up yet
            pass
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise StackError(f"{what} did not start within {timeout:.0f} s\n{tail}")


@contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[
    subprocess.Popen[bytes]
]:
    """Run ``cmd`` in its own process group, output to ``log``; stop it on exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the group (a warm shutdown for Celery and gunicorn), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextmanager
def redis_server(workdir: Path, port: int | None = None) -> Iterator[str]:
    """A private redis-server on a free port (or ``port``), AOF on as production runs it.

    Started again with the same ``workdir`` and ``port`` it reloads its data.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise StackError(
            "redis-server is not installed: run `python3 dev.py setup` (it installs it), "
            "or `apt-get install -y redis-server`"
        )
    port = port or free_port()
    data = workdir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
           "--save", "", "--appendonly", "yes", "--maxmemory-policy", "noeviction",
           "--daemonize", "no"]
    log = workdir / "redis.log"
    with process(cmd, log):
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        wait_until(lambda: client.ping(), 10, "redis-server", log)
        client.close()
        yield url


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server over real HTTP, with one bucket; yields the S3_* environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "S3_BUCKET": S3_BUCKET,
        "AWS_ACCESS_KEY_ID": "soundreel-test-key",
        "AWS_SECRET_ACCESS_KEY": "soundreel-test-secret",
        "AWS_REGION": "us-east-1",
    }
    try:
        boto3.client(
            "s3",
            endpoint_url=env["S3_ENDPOINT_URL"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=S3_BUCKET)
        yield env
    finally:
        server.stop()


@dataclass
class Stack:
    """A running soundreel: where the API is, and the keys to call it with."""

    base_url: str
    redis_url: str
    env: dict[str, str]
    workdir: Path
    api_key: str
    other_api_key: str
    worker_token: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def of(cls, base_url: str, redis_url: str, env: dict[str, str], workdir: Path) -> Stack:
        """The stack ``env`` (from `base_env`) describes, with its tenants' keys."""
        keys = dict(item.split(":", 1)[::-1] for item in env["API_KEYS"].split(","))
        return cls(base_url=base_url, redis_url=redis_url, env=env, workdir=workdir,
                   api_key=next(k for k, t in keys.items() if t == TENANT),
                   other_api_key=next(k for k, t in keys.items() if t == OTHER_TENANT),
                   worker_token=env["WORKER_TOKEN"])

    def client(self, key: str | None = None) -> requests.Session:
        """A session with a tenant's API key (the first tenant's by default)."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key or self.api_key}"
        return session

    def worker_client(self) -> requests.Session:
        """A session with the worker token, as the workers call /internal."""
        return self.client(self.worker_token)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def base_env(redis_url: str, base_url: str, workdir: Path, storage: dict[str, str]) -> dict:
    api_key, other_key = "sk_" + secrets.token_urlsafe(16), "sk_" + secrets.token_urlsafe(16)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("S3_", "R2_", "AWS_", "STORAGE_DIR", "API_KEYS", "WORKER_TOKEN"))
    }
    env.update(
        REDIS_URL=redis_url,
        PUBLIC_BASE_URL=base_url,
        API_KEYS=f"{TENANT}:{api_key},{OTHER_TENANT}:{other_key}",
        WORKER_TOKEN=secrets.token_urlsafe(32),
        PYTHONUNBUFFERED="1",
        TMPDIR=str(workdir / "tmp"),
        **storage,
    )
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    return env


@contextmanager
def api_server(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    cmd = [str(BIN / "gunicorn"), "-c", "python:api.gunicorn_conf", "--bind",
           f"127.0.0.1:{port}", "--workers", "2",
           "--threads", "4", "--timeout", "120", "--access-logfile", "-", "--no-control-socket",
           # the path only: query strings carry signatures and share tokens
           "--access-logformat", ACCESS_LOG_FORMAT, "api:create_app()"]
    with process(cmd, log, env) as proc:
        wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok, 30, "API", log
        )
        yield proc


@contextmanager
def worker(
    env: dict[str, str], log: Path, name: str = "w1", queues: str | None = None,
    concurrency: int = 2, cpus: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker (``concurrency`` children) consuming ``queues`` (default: all of
    them), pinned to ``cpus`` (``taskset -c``, e.g. ``"0"``: a host of one core)."""
    pin = ["taskset", "-c", cpus] if cpus is not None else []
    cmd = [*pin, str(BIN / "celery"), "-A", "tasks", "worker", "--loglevel", "INFO",
           "--concurrency", str(concurrency), "--hostname", f"{name}@%h", "--without-mingle",
           "--without-gossip"]
    if queues:
        cmd += ["-Q", queues]
    with process(cmd, log, env) as proc:
        wait_until(lambda: b"ready." in log.read_bytes(), 60, "Celery worker", log)
        yield proc


@contextmanager
def beat(env: dict[str, str], workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Celery beat, which sends the reaper every REAP_INTERVAL seconds."""
    log = workdir / "beat.log"
    cmd = [str(BIN / "celery"), "-A", "tasks", "beat", "--loglevel", "INFO",
           "--schedule", str(workdir / "beat-schedule")]
    with process(cmd, log, env) as proc:
        wait_until(lambda: b"beat: Starting" in log.read_bytes(), 30, "Celery beat", log)
        yield proc


@contextmanager
def stack(workdir: Path, storage: str = "local") -> Iterator[Stack]:
    """Redis, [S3], the API, one worker and beat, all real processes on loopback."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack_:
        redis_url = stack_.enter_context(redis_server(workdir))
        if storage == "s3":
            storage_env = stack_.enter_context(s3_server())
        else:
            storage_env = {"STORAGE_DIR": str(workdir / "storage")}
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = base_env(redis_url, base_url, workdir, storage_env)
        running = Stack.of(base_url, redis_url, env, workdir)
        running.procs["api"] = stack_.enter_context(api_server(env, port, workdir / "api.log"))
        running.procs["worker"] = stack_.enter_context(worker(env, workdir / "worker.log"))
        running.procs["beat"] = stack_.enter_context(beat(env, workdir))
        yield running
