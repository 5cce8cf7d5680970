"""Fixtures that start real things: a private redis-server, moto's S3 server over
HTTP, and the whole stack (gunicorn API + Celery worker) for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import devstack as stack_mod


@pytest.fixture(scope="session", autouse=True)
def every_job_renders() -> Iterator[None]:
    """The stacks the suite starts render every job: with the render cache on, a test
    would find the output of an earlier test's identical job (the samples are few) and
    never render. The cache's own tests turn it on for their stack (test_cache.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RENDER_CACHE", "false")
        yield


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
