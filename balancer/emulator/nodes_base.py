"""What a node implementation sees (NodeContext) and returns (NodeResult)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .files import Directories
from .options import EmulatorOptions

JSON = dict[str, Any]
T = TypeVar("T")

# Simulated cost, at time_scale 1.0, of one node of any kind (dispatch, bookkeeping).
NODE_OVERHEAD_S = 0.0003


class NodeContext(Protocol):
    node_id: str
    prompt_id: str
    prompt: JSON
    extra_data: JSON
    options: EmulatorOptions
    dirs: Directories

    async def work(self, seconds: float) -> None:
        """Spend `seconds` of simulated time (times time_scale)."""

    def check_interrupt(self) -> None:
        """Raise if /interrupt asked to stop this prompt (sampler steps call it)."""

    async def progress(self, value: int, total: int, preview_png: bytes | None = None) -> None:
        """Report node progress (progress/progress_state events, optional preview frame)."""

    async def ensure_checkpoint(self, name: str) -> None:
        """Load a model into (emulated) VRAM unless it is resident (LRU)."""

    async def compute(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-heavy pixel work off the event loop."""


@dataclass
class NodeResult:
    outputs: tuple[Any, ...] = ()
    ui: JSON | None = None


NodeRun = Callable[[NodeContext, JSON], Awaitable[NodeResult]]
CustomCheck = Callable[[Directories, Any], "bool | str"]
ChangeKey = Callable[[Directories, JSON], str]


@dataclass(frozen=True)
class NodeImpl:
    run: NodeRun
    never_cached: bool = False  # ComfyUI IS_CHANGED returning a fresh value every time
    change_key: ChangeKey | None = None  # IS_CHANGED depending on files (LoadImage)
    custom_checks: dict[str, CustomCheck] = field(default_factory=dict)  # VALIDATE_INPUTS


def megapixels(width: int, height: int, count: int = 1) -> float:
    return width * height * count / 1_000_000
