"""The pending heap, the running item and the history, with ComfyUI 0.3.64's semantics."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass
class QueueItem:
    number: int | float
    prompt_id: str
    prompt: JSON
    extra_data: JSON
    outputs: list[str]

    def as_list(self, *, strip_sensitive: bool = False) -> list[Any]:
        extra = self.extra_data
        if strip_sensitive:
            extra = {k: v for k, v in extra.items() if k not in SENSITIVE_EXTRA_KEYS}
        return [self.number, self.prompt_id, self.prompt, extra, self.outputs]


class PromptQueue:
    """Min-heap by (number, prompt_id); one running item; history in completion order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int | float, str, int, QueueItem]] = []
        self._seq = itertools.count()
        self.running: QueueItem | None = None
        self.history: dict[str, JSON] = {}
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- pending ---------------------------------------------------------
    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, (item.number, item.prompt_id, next(self._seq), item))
        self._touch()

    async def take(self) -> QueueItem:
        """Wait for the lowest-numbered item and mark it running."""
        while not self._heap:
            self._changed.clear()
            await self._changed.wait()
        item = heapq.heappop(self._heap)[3]
        self.running = item
        self._touch()
        return item

    def pending(self) -> list[QueueItem]:
        """Heap array order, unsorted, like ComfyUI's GET /queue."""
        return [entry[3] for entry in self._heap]

    def remaining(self) -> int:
        return len(self._heap) + (1 if self.running is not None else 0)

    def clear_pending(self) -> None:
        self._heap.clear()
        self._touch()

    def delete_pending(self, prompt_id: str) -> bool:
        """Remove the first pending item with that id (ComfyUI removes one per id)."""
        for index, entry in enumerate(self._heap):
            if entry[3].prompt_id == prompt_id:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                self._touch()
                return True
        return False

    # -- completion ------------------------------------------------------
    def finish(self, item: QueueItem, outputs: JSON, status: JSON, meta: JSON) -> None:
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        self.history[item.prompt_id] = {
            "prompt": item.as_list(strip_sensitive=True),
            "outputs": outputs,
            "status": status,
            "meta": meta,
        }
        self.done()

    def done(self) -> None:
        self.running = None
        self._touch()

    def history_page(self, max_items: int | None, offset: int) -> JSON:
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out: JSON = {}
        for index, key in enumerate(self.history):
            if index >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def reset(self) -> None:
        """Forget everything (process restart)."""
        self._heap.clear()
        self.running = None
        self.history.clear()
        self._touch()

    # -- waiting ---------------------------------------------------------
    def _touch(self) -> None:
        self._changed.set()
        if self._heap or self.running is not None:
            self._idle.clear()
        else:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()
