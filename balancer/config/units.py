"""Human units in config: sizes ("8GiB", "1.5 GB") and durations ("250ms", "2m").

Operators think in GiB and seconds, the code wants bytes and float seconds;
these helpers are the only place that translation happens. Decimal
arithmetic keeps "1.1 GB" exact instead of off by a float rounding.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

MiB = 2**20

_SIZE_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

_DURATION_UNITS: dict[str, Decimal] = {
    "": Decimal(1),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}

# A non-negative number, optional whitespace, then an alphabetic unit (maybe empty).
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")

SIZE_HINT = "a size like 512MiB, 8GiB, 1.5 GB or a byte count"
DURATION_HINT = "a duration like 250ms, 5s, 2m, 7d or a number of seconds"


def _split(text: str) -> tuple[Decimal, str] | None:
    """Number and lower-cased unit of "1.5 GB"-style text, or None if malformed."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    try:
        return Decimal(match.group(1)), match.group(2).lower()
    except InvalidOperation:  # pragma: no cover - the regex only admits valid decimals
        return None


def parse_size(value: object) -> int:
    """Bytes from an int byte count or a string with a binary/decimal suffix.

    Fractions of a byte are truncated ("1.1 KiB" is 1126). Bools are refused
    even though they are ints: `max_body: true` is a mistake, not 1 byte.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be {SIZE_HINT}, not a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative (got {value})")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be {SIZE_HINT} (got {type(value).__name__})")
    parts = _split(value)
    if parts is None or parts[1] not in _SIZE_UNITS:
        raise ValueError(f"must be {SIZE_HINT} (got {value!r})")
    number, unit = parts
    return int(number * _SIZE_UNITS[unit])


def parse_duration(value: object) -> float:
    """Seconds from a number (int or float seconds) or a string like "250ms".

    Negative durations are refused here; whether zero is allowed is the
    caller's business (a zero probe interval is not, a zero grace might be).
    """
    if isinstance(value, bool):
        raise ValueError(f"must be {DURATION_HINT}, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite, non-negative number of seconds (got {value})")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"must be {DURATION_HINT} (got {type(value).__name__})")
    parts = _split(value)
    if parts is None or parts[1] not in _DURATION_UNITS:
        raise ValueError(f"must be {DURATION_HINT} (got {value!r})")
    number, unit = parts
    return float(number * _DURATION_UNITS[unit])


def format_size(size: int) -> str:
    """Shortest exact binary rendering ("8 GiB", "1536 KiB"), for summaries."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit.lower()]
        if size and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def format_duration(seconds: float) -> str:
    """ "250ms", "5s", "1.5s": compact seconds for summaries."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
