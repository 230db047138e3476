"""VRAM thresholds: a fraction of the card's total (`0.92`) or a size (`"70GiB"`).

A frozen tagged value: exactly one of `fraction` and `size` is set. Turning it
into bytes needs the total the backend reports, so that happens per probe.
"""

from __future__ import annotations

from dataclasses import dataclass

from balancer.config.units import SIZE_HINT, parse_size

THRESHOLD_HINT = f"a fraction of total VRAM in (0, 1] like 0.92, or {SIZE_HINT}"


@dataclass(frozen=True)
class VramThreshold:
    fraction: float | None = None
    size: int | None = None

    @property
    def kind(self) -> str:
        return "fraction" if self.fraction is not None else "size"

    def bytes_of(self, total: int) -> int:
        """The threshold in bytes for a card with `total` bytes of VRAM."""
        if self.fraction is not None:
            return int(total * self.fraction)
        return self.size or 0

    def __str__(self) -> str:
        return f"{self.fraction:g}" if self.fraction is not None else f"{self.size} B"


def parse_threshold(value: object) -> VramThreshold:
    """A number is a fraction of total; a string is a size ("70GiB")."""
    if isinstance(value, bool):
        raise ValueError(f"must be {THRESHOLD_HINT}, not a boolean")
    if isinstance(value, int | float):
        if not 0 < value <= 1:
            raise ValueError(f"must be {THRESHOLD_HINT} (got {value})")
        return VramThreshold(fraction=float(value))
    if isinstance(value, str):
        size = parse_size(value)
        if size <= 0:
            raise ValueError(f"must be > 0 (got {value!r})")
        return VramThreshold(size=size)
    raise ValueError(f"must be {THRESHOLD_HINT} (got {type(value).__name__})")


def threshold_relation(
    limit: VramThreshold | None, resume: VramThreshold | None
) -> tuple[str, str] | None:
    """(field, problem) when `vram_resume` does not sit below `vram_limit`."""
    if resume is None:
        return None
    if limit is None:
        return "vram_resume", "needs vram_limit"
    if limit.kind != resume.kind:
        return "vram_resume", f"must be a {limit.kind} like vram_limit"
    if resume.bytes_of(1 << 40) >= limit.bytes_of(1 << 40):
        return "vram_resume", f"must be below vram_limit ({limit})"
    return None


def resume_bytes(limit: VramThreshold, resume: VramThreshold | None, total: int) -> int:
    """Where a VRAM drain ends; without `vram_resume`, 90 % of the limit."""
    if resume is None:
        return int(limit.bytes_of(total) * 0.9)
    return resume.bytes_of(total)
