"""The client hub of one of several replicas: a frame for a client goes to
its sockets here and, through the event bus, to its sockets on the other
replicas; the others' frames are delivered to the sockets here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from balancer.proxy.ws_hub import ClientHub, Frame
from balancer.replicas.bus import Delivery, EventBus
from balancer.tasks import settle, stop


class SharedHub(ClientHub):
    def __init__(self, bus: EventBus) -> None:
        super().__init__()
        self.bus = bus
        self._leaving: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def reachable(self, sid: str) -> AsyncIterator[None]:
        """Subscribed to `sid`'s frames from every replica, before its
        socket's handshake is answered (bus.py), until it closed."""
        try:
            await self.bus.joined(sid)
            yield
        finally:
            self._track(self.bus.left(sid))

    def _track(self, change: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(change)
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def settled(self) -> None:
        """Wait until every socket closed so far is unsubscribed."""
        await settle(self._leaving)

    def to_owner(self, sid: str | None, owner: str | None, frame: Frame) -> None:
        super().to_owner(sid, owner, frame)
        if sid is not None:
            self.bus.publish(Delivery(sid, owner, frame))

    def to_previewers(self, sid: str, owner: str | None, frame: Frame, metadata: bool) -> None:
        super().to_previewers(sid, owner, frame, metadata)
        self.bus.publish(Delivery(sid, owner, frame, metadata))

    def broadcast_owned(self, owner: str | None, frame: Frame) -> None:
        super().broadcast_owned(owner, frame)
        self.bus.publish(Delivery(None, owner, frame))

    def deliver(self, d: Delivery) -> None:
        """Another replica's frame, for the sockets here only."""
        if d.sid is None:
            super().broadcast_owned(d.owner, d.frame)
        elif d.preview is not None:
            super().to_previewers(d.sid, d.owner, d.frame, d.preview)
        else:
            super().to_owner(d.sid, d.owner, d.frame)


async def run_shared(stack: contextlib.AsyncExitStack, hub: SharedHub) -> None:
    """Publish and receive frames while the app runs."""
    stack.push_async_callback(hub.bus.close)
    stack.push_async_callback(stop, asyncio.create_task(hub.bus.send_loop()))
    stack.push_async_callback(stop, asyncio.create_task(hub.bus.receive_loop(hub.deliver)))
