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
    assert set(procfile()) == {"web", "worker", "previews", "callbacks", "beat", "flower",
                               "exporter"}


def test_compose_runs_the_procfiles_commands():
    services = compose()["services"]
    assert set(services) == {"redis", "api", "worker", "previews", "callbacks", "beat",
                             "flower", "exporter"}
    for process, service in (("web", "api"), ("worker", "worker"), ("previews", "previews"),
                             ("callbacks", "callbacks"), ("beat", "beat"), ("flower", "flower"),
                             ("exporter", "exporter")):
        assert shlex.split(services[service]["command"]) == shlex.split(procfile()[process])


def test_entry_points_are_the_documented_ones():
    commands = procfile()
    assert "'api:create_app()'" in commands["web"] and commands["web"].startswith("gunicorn")
    assert commands["worker"].startswith("celery -A tasks worker")
    # never open: it refuses to start without FLOWER_BASIC_AUTH (tests/test_flower.py)
    assert commands["flower"] == "python -m tasks.flower"
    assert commands["beat"].startswith("celery -A tasks beat")
    # renders and the short HTTP tasks (reports, webhooks, the reaper) never share a pool
    assert shlex.split(commands["worker"])[-1] == "render"
    assert "-Q callbacks" in commands["callbacks"]
    assert "-Q preview" in commands["previews"]


def test_flower_is_published_on_the_hosts_loopback_only_and_needs_a_password():
    flower = compose()["services"]["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    # inside its container it listens on every interface, so the published port reaches it
    assert flower["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"  # noqa: S104
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


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
    for package in ("api", "tasks", "render", "storage", "jobs", "config", "security", "client"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "\nUSER " in dockerfile


#: Every variable that chooses or tunes the object store.
STORAGE_VARIABLES = {
    "STORAGE_DIR", "S3_ENDPOINT_URL", "S3_BUCKET", "AWS_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "R2_ACCOUNT_ID", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY",
    "R2_BUCKET_NAME", "S3_CONNECT_TIMEOUT", "S3_READ_TIMEOUT", "S3_MAX_ATTEMPTS",
}


def test_compose_passes_the_storage_variables_through_only_when_set():
    from config.settings import Settings

    environment = compose()["services"]["worker"]["environment"]
    for name in STORAGE_VARIABLES:
        assert environment.get(name) == f"${{{name}:-}}", name
    # as compose fills them in when none is set: empty, so the local store is the default
    unset = {name: "" for name in STORAGE_VARIABLES}
    settings = Settings.from_env({**unset, "WORKER_TOKEN": "w" * 32})
    assert settings.storage.root == (Path.cwd() / "var" / "storage").resolve()  # type: ignore[union-attr]
    # ...which, in the image (WORKDIR /app), is where the shared volume is mounted
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "WORKDIR /app\n" in dockerfile and "mkdir -p /app/var/storage" in dockerfile
    assert compose()["services"]["api"]["volumes"] == ["storage:/app/var/storage"]


def test_the_readme_names_every_variable_the_compose_file_requires():
    import re

    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert {"API_KEYS", "WORKER_TOKEN", "FLOWER_BASIC_AUTH"} <= required
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "docker compose up" in line)
    for name in required:
        assert f"{name}=" in command, f"the README's compose command lacks {name}"


def test_the_api_counts_per_process_as_prometheus_expects():
    # gunicorn runs with the config that sets up prometheus-client's multiprocess mode
    assert "-c python:api.gunicorn_conf" in procfile()["web"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"-c", "python:api.gunicorn_conf"' in dockerfile
