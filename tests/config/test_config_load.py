"""The YAML loader: defaults, inheritance, and every mistake reported at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from balancer.config import (
    BackendSettings,
    ConfigError,
    LogSettings,
    ProbeSettings,
    Settings,
    check_config,
    load_settings,
    parse_settings,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "balancer.yaml"
GiB = 2**30


def doc(**sections: Any) -> dict[str, Any]:
    """A minimal valid document plus the given sections."""
    return {"backends": [{"url": "http://127.0.0.1:8189"}], **sections}


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    return info.value.errors


def test_example_file_loads() -> None:
    settings = load_settings(EXAMPLE)
    assert [b.name for b in settings.backends] == ["gpu0", "gpu1", "gpu2"]
    assert [b.url for b in settings.backends] == [
        "http://127.0.0.1:8189",
        "http://127.0.0.1:8190",
        "http://127.0.0.1:8191",
    ]
    assert [b.primary for b in settings.backends] == [True, False, False]
    assert settings.backends[1].min_free_vram == 8 * GiB


def test_example_file_shows_the_defaults() -> None:
    """Everything but the backends in the example equals the model's defaults."""
    settings = load_settings(EXAMPLE)
    assert (settings.listen, settings.probe, settings.limits, settings.timeouts, settings.log) == (
        Settings().listen,
        Settings().probe,
        Settings().limits,
        Settings().timeouts,
        Settings().log,
    )


def test_defaults_applied() -> None:
    settings = parse_settings(doc())
    assert settings == Settings(
        backends=(BackendSettings(name="node0", url="http://127.0.0.1:8189"),)
    )


def test_empty_sections_mean_defaults() -> None:
    settings = parse_settings(doc(listen=None, probe={}, log=None))
    assert settings.probe == ProbeSettings()
    assert settings.log == LogSettings()


def test_default_names_follow_index() -> None:
    data = {
        "backends": [
            {"url": "http://a:1"},
            {"url": "http://b:2", "name": "x"},
            {"url": "http://c:3"},
        ]
    }
    assert [b.name for b in parse_settings(data).backends] == ["node0", "x", "node2"]


def test_defaults_section_inherited_and_overridden() -> None:
    data = {
        "defaults": {"min_free_vram": "4GiB"},
        "backends": [
            {"url": "http://a:1"},
            {"url": "http://b:2", "min_free_vram": "512MiB"},
            {"url": "http://c:3", "min_free_vram": 0},
        ],
    }
    vram = [b.min_free_vram for b in parse_settings(data).backends]
    assert vram == [4 * GiB, 512 * 2**20, 0]


def test_defaults_section_rejects_identity_keys() -> None:
    errors = errors_of(doc(defaults={"url": "http://x:1", "min_free_vram": "lots"}))
    assert len(errors) == 2
    assert errors[0].startswith("defaults.url: unknown key (allowed: drain, free_on_drain,")
    assert errors[1].startswith("defaults.min_free_vram: must be a size")


def test_sizes_and_durations_parsed() -> None:
    settings = parse_settings(
        doc(
            probe={"interval": "250ms", "timeout": 1, "stale_after": "2s"},
            limits={"max_body": "1.5 GB"},
            timeouts={"connect": 2.5, "request": "2m"},
        )
    )
    assert settings.probe.interval == 0.25
    assert settings.probe.timeout == 1.0
    assert isinstance(settings.probe.timeout, float)
    assert settings.limits.max_body == 1_500_000_000
    assert (settings.timeouts.connect, settings.timeouts.request) == (2.5, 120.0)


def test_url_trailing_slash_stripped_and_https_allowed() -> None:
    data = {"backends": [{"url": "https://gpu.example:8443/"}, {"url": "http://[::1]:8189/comfy/"}]}
    assert [b.url for b in parse_settings(data).backends] == [
        "https://gpu.example:8443",
        "http://[::1]:8189/comfy",
    ]


def test_four_mistakes_reported_together() -> None:
    data = {
        "listen": {"prt": 8188},
        "probe": {"interval": 0},
        "limits": {"max_body": "huge"},
        "backends": [{"url": "http://a:1"}, {"url": "http://b:2"}, {"url": "ftp://c"}],
    }
    errors = errors_of(data)
    assert len(errors) == 4, errors
    paths = sorted(e.split(":", 1)[0] for e in errors)
    assert paths == ["backends[2].url", "limits.max_body", "listen.prt", "probe.interval"]
    assert "backends[2].url: not an http(s) URL (got 'ftp://c')" in errors
    assert "probe.interval: must be > 0" in errors
    assert "listen.prt: unknown key (allowed: host, port)" in errors


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"backendz": []}, "backendz: unknown key"),
        (doc(listen={"prt": 1}), "listen.prt: unknown key"),
        (doc(log={"colour": True}), "log.colour: unknown key"),
        ({"backends": [{"url": "http://a:1", "weight": 2}]}, "backends[0].weight: unknown key"),
    ],
)
def test_unknown_keys(data: object, expected: str) -> None:
    assert any(e.startswith(expected) for e in errors_of(data))


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("listen", {"port": 0}, "listen.port: must be between 1 and 65535"),
        ("listen", {"port": 70000}, "listen.port: must be between 1 and 65535"),
        ("listen", {"port": "8188"}, "listen.port: must be an integer (got str)"),
        ("listen", {"port": True}, "listen.port: must be an integer (got bool)"),
        ("listen", {"host": ""}, "listen.host: must be a non-empty string"),
        ("probe", {"unhealthy_after": 0}, "probe.unhealthy_after: must be >= 1"),
        ("probe", {"healthy_after": 1.5}, "probe.healthy_after: must be an integer (got float)"),
        ("probe", {"healthy_after": False}, "probe.healthy_after: must be an integer (got bool)"),
        ("probe", {"timeout": True}, "probe.timeout: must be a duration"),
        ("probe", {"timeout": "-1s"}, "probe.timeout: must be a duration"),
        ("probe", {"interval": 10}, "probe.stale_after: must be > probe.interval (10s)"),
        ("probe", {"interval": 1, "stale_after": 1}, "probe.stale_after: must be > probe.interval"),
        ("limits", {"max_body": 0}, "limits.max_body: must be > 0"),
        ("limits", {"max_body": True}, "limits.max_body: must be a size"),
        ("timeouts", {"connect": 0}, "timeouts.connect: must be > 0"),
        ("timeouts", {"request": "soon"}, "timeouts.request: must be a duration"),
        ("log", {"level": "verbose"}, "log.level: must be one of debug, info, warning, error"),
        ("log", {"format": "xml"}, "log.format: must be one of json, console"),
        ("listen", [8188], "listen: must be a mapping (got list)"),
    ],
)
def test_section_errors(section: str, values: object, expected: str) -> None:
    errors = errors_of(doc(**{section: values}))
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


def test_no_backends() -> None:
    cases: list[object] = [{}, None, {"backends": []}, {"backends": None}]
    for data in cases:
        assert errors_of(data) == ["backends: at least one backend is required"]


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ({}, "backends[0].url: required"),
        ({"url": "127.0.0.1:8189"}, "backends[0].url: not an http(s) URL"),
        ({"url": "http://"}, "backends[0].url: not an http(s) URL"),
        ({"url": "http://a:port"}, "backends[0].url: not an http(s) URL: bad port"),
        ({"url": "http://a:1/?x=1"}, "backends[0].url: not an http(s) URL: must not have a query"),
        ({"url": 8189}, "backends[0].url: not an http(s) URL"),
        ({"url": "http://a:1", "name": "gpu 0"}, "backends[0].name: must be 1-64 characters"),
        ({"url": "http://a:1", "name": "x" * 65}, "backends[0].name: must be 1-64 characters"),
        ({"url": "http://a:1", "primary": "yes"}, "backends[0].primary: must be true or false"),
        ({"url": "http://a:1", "min_free_vram": "-1GiB"}, "backends[0].min_free_vram: must be"),
        ("http://a:1", "backends[0]: must be a mapping (got str)"),
    ],
)
def test_backend_errors(backend: object, expected: str) -> None:
    errors = errors_of({"backends": [backend]})
    assert len(errors) == 1, errors
    assert errors[0].startswith(expected)


def test_backends_must_be_a_list() -> None:
    assert errors_of({"backends": {"url": "http://a:1"}}) == [
        "backends: must be a list of backends (got dict)"
    ]


def test_duplicate_names() -> None:
    data = {
        "backends": [
            {"url": "http://a:1", "name": "gpu"},
            {"url": "http://b:2", "name": "node2"},
            {"url": "http://c:3"},  # default name node2 clashes
            {"url": "http://d:4", "name": "gpu"},
        ]
    }
    assert errors_of(data) == [
        "backends[2].name: duplicate name 'node2' (also backends[1])",
        "backends[3].name: duplicate name 'gpu' (also backends[0])",
    ]


def test_two_primaries() -> None:
    data = {
        "backends": [
            {"url": "http://a:1", "primary": True},
            {"url": "http://b:2", "primary": False},
            {"url": "http://c:3", "primary": True},
        ]
    }
    assert errors_of(data) == [
        "backends[2].primary: only one backend may be primary (backends[0] already is)"
    ]


def test_document_must_be_a_mapping() -> None:
    assert errors_of(["backends"]) == ["(document): must be a mapping (got list)"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.errors == [f"{path}: file not found"]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("listen:\n  port: [8188\nbackends: []\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    [error] = info.value.errors
    assert error.startswith(f"{path}:")
    assert "invalid YAML" in error


def test_load_reports_validation_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("backends:\n  - url: http://a:1\n    primary: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(path))
    assert info.value.errors == ["backends[0].primary: must be true or false (got int)"]
    assert str(info.value) == "backends[0].primary: must be true or false (got int)"


def test_check_config_ok() -> None:
    code, text = check_config(EXAMPLE)
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == f"config OK: {EXAMPLE}"
    assert "listen: 127.0.0.1:8188" in lines
    assert any(
        "gpu0" in line and "http://127.0.0.1:8189" in line and "primary" in line for line in lines
    )
    assert any("gpu1" in line and "min_free_vram=8 GiB" in line for line in lines)
    assert any(line.startswith("probe: every 1s") for line in lines)


def test_check_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("listen:\n  port: 0\nprobe:\n  interval: 0\n")
    code, text = check_config(path)
    assert code == 1
    assert text.splitlines() == [
        "backends: at least one backend is required",
        "listen.port: must be between 1 and 65535",
        "probe.interval: must be > 0",
    ]


def test_check_config_missing_file(tmp_path: Path) -> None:
    assert check_config(tmp_path / "x.yaml") == (1, f"{tmp_path / 'x.yaml'}: file not found")
