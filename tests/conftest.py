"""Fixtures that start real things: a private redis-server, moto's S3 server over
HTTP, and the whole stack (gunicorn API + Celery worker) for end-to-end tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from werkzeug.serving import make_server

from config.settings import Settings
from scripts import stack as stack_mod

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE = SAMPLES / "sample.mp3"
ARTWORK = SAMPLES / "artwork.png"
CAPTIONS = SAMPLES / "sample.srt"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with stack_mod.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    with stack_mod.s3_server() as env:
        yield env


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack_mod.Stack]:
    with stack_mod.stack(tmp_path_factory.mktemp("stack-local"), storage="local") as running:
        yield running


@pytest.fixture(scope="session")
def s3_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack_mod.Stack]:
    with stack_mod.stack(tmp_path_factory.mktemp("stack-s3"), storage="s3") as running:
        yield running


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
