"""Worker-side switches: pause/resume, interrupt flag, and the emulated VRAM of loaded models."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from .options import EmulatorOptions


class Interrupted(Exception):
    """Raised inside execution when /interrupt landed (at a node boundary or sampler step)."""


class RunGate:
    """Pause blocks the worker before its next node; interrupt is ComfyUI's global flag."""

    def __init__(self) -> None:
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._interrupt = asyncio.Event()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def interrupt(self) -> None:
        self._interrupt.set()

    def clear_interrupt(self) -> None:
        self._interrupt.clear()

    def check(self) -> None:
        if self._interrupt.is_set():
            self._interrupt.clear()
            raise Interrupted

    async def before_node(self) -> None:
        """Wait while paused (an interrupt also wakes us). The caller checks
        for an interrupt once it has announced the node (`executing`), as
        ComfyUI does (behaviour_interrupt_variants.json)."""
        if self.paused and not self._interrupt.is_set():
            resumed = asyncio.ensure_future(self._resumed.wait())
            interrupted = asyncio.ensure_future(self._interrupt.wait())
            try:
                await asyncio.wait({resumed, interrupted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                resumed.cancel()
                interrupted.cancel()


class ModelMemory:
    """The models resident in emulated VRAM (least recently used first), and
    the VRAM /system_stats reports. At most `model_slots` stay resident."""

    def __init__(self, options: EmulatorOptions) -> None:
        self._options = options
        self.resident: OrderedDict[str, None] = OrderedDict()
        self.loads = 0
        self.override_used: int | None = None

    @property
    def loaded(self) -> str | None:
        """The most recently used model, or None."""
        return next(reversed(self.resident), None)

    def touch(self, name: str) -> bool:
        """Mark `name` used now; False if it is not resident (it must be loaded)."""
        if name not in self.resident:
            return False
        self.resident.move_to_end(name)
        return True

    def add(self, name: str) -> None:
        """`name` finished loading: evict the least recently used beyond capacity."""
        self.resident[name] = None
        self.resident.move_to_end(name)
        self.loads += 1
        while len(self.resident) > max(1, self._options.model_slots):
            self.resident.popitem(last=False)

    def used(self) -> int:
        if self.override_used is not None:
            return self.override_used
        return self._options.vram_base_used + self._options.vram_per_checkpoint * len(self.resident)

    def free(self) -> int:
        return max(0, self._options.vram_total - self.used())

    def unload(self) -> None:
        self.resident.clear()
