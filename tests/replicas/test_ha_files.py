"""The HA example as documented: config/docker-compose.ha.yml (Redis, three
replicas, HAProxy, two emulated backends), config/ha.yaml and
config/haproxy.cfg. No Docker daemon is needed: the files are parsed and
cross-checked, and `haproxy -c` checks the HAProxy file where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from balancer.config import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"
COMPOSE = CONFIG / "docker-compose.ha.yml"
HAPROXY = CONFIG / "haproxy.cfg"
SERVER = re.compile(r"^\s*server\s+(\S+)\s+([^:\s]+):(\d+)", re.M)


def services() -> dict[str, dict[str, object]]:
    data = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, dict[str, object]] = data["services"]
    return found


def test_the_compose_file_runs_redis_three_replicas_haproxy_and_two_backends() -> None:
    found = services()
    assert sorted(found) == ["gpu0", "gpu1", "haproxy", "lb1", "lb2", "lb3", "redis"]
    replicas = [found[name] for name in ("lb1", "lb2", "lb3")]
    assert len({str(r["hostname"]) for r in replicas}) == 3, "each replica its own name"
    for replica in replicas:
        assert replica["build"] == {"context": ".."}  # the repo's Dockerfile
        assert "./ha.yaml:/config/ha.yaml:ro" in replica["volumes"]  # type: ignore[operator]
        assert replica["environment"]["BALANCER_CONFIG"] == "/config/ha.yaml"  # type: ignore[index]
    assert "--appendonly" in found["redis"]["command"]  # type: ignore[operator]
    for gpu in ("gpu0", "gpu1"):
        assert found[gpu]["command"][0] == "emulate"  # type: ignore[index]


def test_every_replica_reads_the_ha_config_and_it_names_the_compose_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BALANCER_API_KEY", "s3cret")
    settings = load_settings(CONFIG / "ha.yaml")
    assert settings.store.kind == "redis"
    assert urlsplit(settings.store.url).hostname == "redis"
    assert {urlsplit(b.url).hostname for b in settings.backends} == {"gpu0", "gpu1"}
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", 8188)
    assert settings.replicas.name == "", "each replica named by its host name"


def test_haproxy_sends_to_each_replica_on_its_port_and_checks_liveness() -> None:
    text = HAPROXY.read_text()
    servers = SERVER.findall(text)
    assert sorted(name for name, _, _ in servers) == ["lb1", "lb2", "lb3"]
    assert {host for _, host, _ in servers} <= set(services())
    assert {int(port) for _, _, port in servers} == {8188}
    assert "option httpchk GET /balancer/health" in text
    assert "timeout tunnel" in text, "WebSockets stay open"
    haproxy = services()["haproxy"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]  # type: ignore[operator]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_file() -> None:
    done = subprocess.run(
        ["haproxy", "-c", "-f", str(HAPROXY)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr
