"""The node each running job is on, for a client that reconnects: ComfyUI
tells a socket that opens with its sid which node its running prompt is on
(`executing`), and so does the balancer. The relay that gets a job's
events records it; whichever replica the client reconnects to reads it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Nodes(Protocol):
    """`set` and `drop` only note the change (the frame path never waits
    on them); `of` reads what was noted last."""

    def set(self, prompt_id: str, node: str) -> None: ...

    def drop(self, prompt_id: str) -> None:
        """The job left its backend: no node any more."""
        ...

    async def of(self, prompt_ids: Iterable[str]) -> dict[str, str]:
        """The node of each of these jobs that is on one."""
        ...


class LocalNodes:
    """One balancer: it gets every job's events itself."""

    def __init__(self) -> None:
        self._nodes: dict[str, str] = {}

    def set(self, prompt_id: str, node: str) -> None:
        self._nodes[prompt_id] = node

    def drop(self, prompt_id: str) -> None:
        self._nodes.pop(prompt_id, None)

    async def of(self, prompt_ids: Iterable[str]) -> dict[str, str]:
        return {p: self._nodes[p] for p in prompt_ids if p in self._nodes}
