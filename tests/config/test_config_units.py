"""Sizes and durations as operators write them."""

from __future__ import annotations

import pytest

from balancer.config.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("0", 0),
        ("123", 123),
        ("10B", 10),
        ("1KiB", 1024),
        ("512MiB", 512 * 2**20),
        ("8GiB", 8 * 2**30),
        ("8 gib", 8 * 2**30),
        ("2TiB", 2 * 2**40),
        ("1KB", 1000),
        ("100MB", 100_000_000),
        ("1.5 GB", 1_500_000_000),
        ("1.1GB", 1_100_000_000),
        ("1.5GiB", 3 * 2**29),
        ("1tb", 10**12),
        ("  4 MiB ", 4 * 2**20),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad", [True, -1, 1.5, None, [], "", "GiB", "8 XB", "-1MiB", "8 G iB", "1e3"]
)
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="must"):
        parse_size(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5.0),
        (0.5, 0.5),
        ("5", 5.0),
        ("5s", 5.0),
        ("250ms", 0.25),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5 s", 1.5),
        ("0", 0.0),
    ],
)
def test_parse_duration(value: object, expected: float) -> None:
    assert parse_duration(value) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [False, -1, float("nan"), float("inf"), None, "5 days", "s", "-2s"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="must"):
        parse_duration(bad)


def test_format_helpers() -> None:
    assert format_size(0) == "0 B"
    assert format_size(8 * 2**30) == "8 GiB"
    assert format_size(3 * 2**20) == "3 MiB"
    assert format_size(1536) == "1536 B"
    assert format_size(1500) == "1500 B"
    assert format_duration(0.25) == "250ms"
    assert format_duration(5.0) == "5s"
