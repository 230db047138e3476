"""Test helpers: workflows, a fake clock and the Pool of in-process backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from balancer.emulator import Emulator
from balancer.proxy.context import BALANCER, Balancer

FIXTURES = Path(__file__).parent / "fixtures"


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "workflows" / f"{name}.json").read_text())
    return data


def colored(color: int, prefix: str = "lb") -> dict[str, Any]:
    """fast.json with a chosen colour: each job's output pixels say whose it is."""
    wf = workflow("fast")
    wf["1"]["inputs"]["color"] = color
    wf["3"]["inputs"]["filename_prefix"] = prefix
    return wf


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Pool:
    client: TestClient  # type: ignore[type-arg]
    emulators: dict[str, Emulator]
    servers: dict[str, TestServer]
    clock: FakeClock
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def balancer(self) -> Balancer:
        return self.client.app[BALANCER]  # type: ignore[index]

    async def channels_up(self, names: list[str], timeout: float = 5.0) -> None:
        """Wait until the balancer's event channel to each backend is open."""
        channels = self.balancer.channels.channels
        for name in names:
            await asyncio.wait_for(channels[name].connected.wait(), timeout)

    async def probe(self) -> None:
        await self.balancer.prober.probe_all()

    async def submit(self, prompt: dict[str, Any], **extra: Any) -> dict[str, Any]:
        resp = await self.client.post("/prompt", json={"prompt": prompt, **extra})
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body

    def owner(self, prompt_id: str) -> str:
        pin = self.balancer.store.get_pin(prompt_id)
        assert pin is not None
        return pin.backend

    async def wait_idle(self, timeout: float = 10.0) -> None:
        for emulator in self.emulators.values():
            await emulator.wait_idle(timeout)


PoolFactory = Callable[..., Awaitable[Pool]]
