"""The Docker set-up as documented: config/docker.yaml, the compose file, the
image's layers, and (with a Docker daemon) the image itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from balancer.auth.setup import anonymous_refusal
from balancer.config import ConfigError, load_settings
from balancer.store import SqliteStore
from balancer.store.open import open_store

ROOT = Path(__file__).resolve().parents[1]
DOCKER_CONFIG = ROOT / "config" / "docker.yaml"


def test_docker_config_listens_everywhere_with_a_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BALANCER_API_KEY", "s3cret")
    settings = load_settings(DOCKER_CONFIG)
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", 8188)
    assert anonymous_refusal(settings, settings.listen.host) is None  # it starts
    assert [k.scope for k in settings.auth.keys] == ["admin"]
    hosts = [urlsplit(b.url).hostname for b in settings.backends]
    assert hosts == ["gpu0", "gpu1"]  # by name: 127.0.0.1 would be the container itself


def test_docker_config_says_which_variable_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALANCER_API_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(DOCKER_CONFIG)
    assert info.value.errors == [
        "auth.keys[0].env: environment variable BALANCER_API_KEY is not set"
    ]


def test_docker_config_keeps_the_store_at_data_balancer_db(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BALANCER_API_KEY", "s3cret")
    settings = load_settings(DOCKER_CONFIG)
    assert settings.data_dir == "/data"
    opened: list[str] = []
    monkeypatch.setattr(SqliteStore, "__init__", lambda self, path, *_, **__: opened.append(path))
    open_store(settings)
    assert opened == ["/data/balancer.db"]


def test_compose_runs_the_balancer_in_front_of_the_backends_docker_yaml_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compose = yaml.safe_load((ROOT / "config" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"balancer", "gpu0", "gpu1"}
    monkeypatch.setenv("BALANCER_API_KEY", "s3cret")
    for backend in load_settings(DOCKER_CONFIG).backends:
        url = urlsplit(backend.url)
        command = services[url.hostname]["command"]
        assert command[:3] == ["emulate", "--host", "0.0.0.0"]
        assert command[command.index("--port") + 1] == str(url.port)
    balancer = services["balancer"]
    assert "./docker.yaml:/config/docker.yaml:ro" in balancer["volumes"]
    assert balancer["ports"] == ["8188:8188"]


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()

    def first(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    assert first("COPY pyproject.toml") < first("RUN python -c") < first("COPY balancer")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "data"} <= set(ignored)


def docker_daemon() -> str | None:
    """Why the image cannot be built here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        lines = [line for line in info.stderr.splitlines() if line.strip()]
        return f"no Docker daemon: {lines[-1] if lines else 'docker info failed'}"
    return None


def test_the_image_builds_and_runs() -> None:
    missing = docker_daemon()
    if missing is not None:
        pytest.skip(missing)
    tag = "comfyui-balancer:test"
    build = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True,
                           text=True, timeout=900)  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run(["docker", "run", "--rm", tag, "--version"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.stdout.startswith("comfyui-balancer ")
