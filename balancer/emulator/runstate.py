"""Worker-side switches: pause/resume, interrupt flag, and the emulated VRAM of loaded models."""

from __future__ import annotations

import asyncio

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
        """Wait while paused (an interrupt also wakes us), then honour a pending interrupt."""
        if self.paused and not self._interrupt.is_set():
            resumed = asyncio.ensure_future(self._resumed.wait())
            interrupted = asyncio.ensure_future(self._interrupt.wait())
            try:
                await asyncio.wait({resumed, interrupted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                resumed.cancel()
                interrupted.cancel()
        self.check()


class ModelMemory:
    """Which checkpoint is loaded, and the VRAM /system_stats reports."""

    def __init__(self, options: EmulatorOptions) -> None:
        self._options = options
        self.loaded: str | None = None
        self.override_used: int | None = None

    def used(self) -> int:
        if self.override_used is not None:
            return self.override_used
        extra = self._options.vram_per_checkpoint if self.loaded is not None else 0
        return self._options.vram_base_used + extra

    def free(self) -> int:
        return max(0, self._options.vram_total - self.used())

    def unload(self) -> None:
        self.loaded = None
