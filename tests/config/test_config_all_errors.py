"""`check-config` lists every error at once: a mistake in one place never
hides the checks across entries or fields elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from balancer.config import ConfigError, parse_settings


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    return info.value.errors


def test_an_unknown_key_in_one_entry_hides_no_duplicate_name_or_second_primary() -> None:
    data = {
        "backends": [
            {"url": "http://a:1", "name": "gpu0", "primary": True, "weight": 2},
            {"url": "http://b:2", "name": "gpu1"},
            {"url": "http://c:3", "name": "gpu0", "primary": True},
        ]
    }
    errors = errors_of(data)
    assert errors[0].startswith("backends[0].weight: unknown key")
    assert errors[1:] == [
        "backends[2].name: duplicate name 'gpu0' (also backends[0])",
        "backends[2].primary: only one backend may be primary (backends[0] already is)",
    ]


def test_a_bad_url_hides_no_duplicate_name_and_no_vram_relation() -> None:
    data = {
        "backends": [
            {"url": "ftp://a", "name": "gpu0", "vram_limit": 0.8, "vram_resume": 0.9},
            {"url": "http://b:2", "name": "gpu0"},
        ]
    }
    assert errors_of(data) == [
        "backends[0].url: not an http(s) URL (got 'ftp://a')",
        "backends[0].vram_resume: must be below vram_limit (0.8)",
        "backends[1].name: duplicate name 'gpu0' (also backends[0])",
    ]


def test_an_invalid_name_is_not_reported_as_a_duplicate_of_its_default() -> None:
    data = {"backends": [{"url": "http://a:1", "name": "node1"}, {"url": "http://b:2", "name": ""}]}
    errors = errors_of(data)
    assert len(errors) == 1, errors
    assert errors[0].startswith("backends[1].name: must be 1-64 characters")


def test_an_invalid_field_hides_no_relation_between_other_fields() -> None:
    data = {
        "backends": [{"url": "http://a:1"}],
        "probe": {"timeout": "soon", "interval": "10s", "stale_after": "5s"},
    }
    errors = errors_of(data)
    assert len(errors) == 2, errors
    assert errors[0].startswith("probe.timeout: must be a duration")
    assert errors[1] == "probe.stale_after: must be > probe.interval (10s)"


def test_a_relation_is_not_judged_against_a_field_that_did_not_parse() -> None:
    data = {"backends": [{"url": "http://a:1"}], "probe": {"interval": 0, "stale_after": "1ms"}}
    assert errors_of(data) == ["probe.interval: must be > 0"]


def test_check_config_command_prints_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "balancer.yaml"
    path.write_text(
        "backends:\n"
        "  - {url: 'http://a:1', name: gpu0, primary: true, colour: red}\n"
        "  - {url: 'http://b:2', name: gpu0, primary: true}\n"
        "probe: {timeout: soon, interval: 10s}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "balancer", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "backends[0].colour",
        "backends[1].name",
        "backends[1].primary",
        "probe.timeout",
        "probe.stale_after",
    ]
