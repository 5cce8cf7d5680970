"""The process files agree: docker-compose runs what the Procfile runs.

No Docker engine here, so the compose file is parsed and checked, not run."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_procfile_has_web_workers_beat_and_flower():
    assert set(procfile()) == {"web", "worker", "previews", "callbacks", "beat", "flower"}


def test_compose_runs_the_procfiles_commands():
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker", "previews", "callbacks", "beat",
                             "flower"}
    for process, service in (("web", "api"), ("worker", "worker"), ("previews", "previews"),
                             ("callbacks", "callbacks"), ("beat", "beat"), ("flower", "flower")):
        assert shlex.split(services[service]["command"]) == shlex.split(procfile()[process])


def test_entry_points_are_the_documented_ones():
    commands = procfile()
    assert "'api:create_app()'" in commands["web"] and commands["web"].startswith("gunicorn")
    assert commands["worker"].startswith("celery -A tasks worker")
    assert commands["flower"].startswith("celery -A tasks flower")
    assert commands["beat"].startswith("celery -A tasks beat")
    # renders and the short HTTP tasks (reports, webhooks, the reaper) never share a pool
    assert shlex.split(commands["worker"])[-1] == "render"
    assert "-Q callbacks" in commands["callbacks"]
    assert "-Q preview" in commands["previews"]


def test_redis_keeps_jobs_across_restarts_and_never_evicts():
    command = shlex.split(compose()["services"]["redis"]["command"])
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_worker_can_be_scaled():
    worker = compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["build"] == "." and worker["environment"]["REDIS_URL"].startswith("redis://redis")


def test_api_and_workers_share_the_local_store_and_settings():
    services = compose()["services"]
    assert services["api"]["volumes"] == services["worker"]["volumes"]
    assert services["api"]["environment"] == services["worker"]["environment"]
    assert {"API_KEYS", "WORKER_TOKEN", "REDIS_URL"} <= set(services["worker"]["environment"])


def test_dockerfile_builds_every_package_and_drops_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("api", "tasks", "render", "storage"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "\nUSER " in dockerfile
