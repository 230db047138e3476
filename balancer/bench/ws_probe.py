"""The measuring sockets of `bench ws`: each records when every frame arrived.

A frame is keyed so the same event can be found on two sockets: JSON events by
(type, prompt_id, n), binary frames by their bytes and n, n counting earlier
frames with the same key on that socket. `status` is left out: the balancer
sends its own pool-wide count instead of relaying the backends'.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field

import aiohttp

Key = tuple[Hashable, ...]


@dataclass(eq=False)
class Probe:
    sid: str
    ws: aiohttp.ClientWebSocketResponse
    arrivals: dict[Key, float] = field(default_factory=dict)
    seen: Counter[Key] = field(default_factory=Counter)
    done: dict[str, float] = field(default_factory=dict)  # prompt_id -> `executing` null
    last: float = 0.0
    frames: int = 0
    closed: bool = False  # by the other end, before the bench closed it
    task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.arrivals.clear()
        self.seen.clear()

    def _record(self, key: Key, at: float) -> None:
        n = self.seen[key]
        self.seen[key] = n + 1
        self.arrivals[(*key, n)] = at
        self.last = at

    async def read(self) -> None:
        async for msg in self.ws:
            at = time.perf_counter()
            self.frames += 1
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._record(("binary", bytes(msg.data)), at)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                message = json.loads(msg.data)
                type_, data = message.get("type"), message.get("data") or {}
                if type_ == "status":
                    continue
                prompt_id = data.get("prompt_id")
                if type_ == "executing" and data.get("node") is None and prompt_id:
                    self.done[prompt_id] = at
                self._record((type_, prompt_id), at)
        self.closed = True

    def saw_prompt(self, prompt_id: str) -> bool:
        return any(key[1] == prompt_id for key in self.arrivals)


async def connect(session: aiohttp.ClientSession, ws_url: str, sid: str) -> Probe:
    ws = await session.ws_connect(f"{ws_url}?clientId={sid}", max_msg_size=0)
    await ws.receive(timeout=10)  # the first `status`
    probe = Probe(sid, ws)
    probe.task = asyncio.create_task(probe.read())
    return probe


async def close_all(probes: Iterable[Probe]) -> None:
    for probe in probes:
        if probe.task is not None:
            probe.task.cancel()
        await probe.ws.close()
        if probe.task is not None:
            await asyncio.gather(probe.task, return_exceptions=True)


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll `check()` (sync or async) every 20 ms until true, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def quiet(probes: list[Probe], seconds: float, timeout: float) -> None:
    """Until no probe has received anything for `seconds`."""
    await until(
        lambda: time.perf_counter() - max(p.last for p in probes) > seconds,
        timeout,
        "the sockets to go quiet",
    )


def pair(direct: Iterable[Probe], sampled: Iterable[Probe]) -> tuple[list[float], int]:
    """Added latency of every event seen on a direct socket and on a balancer
    socket, per balancer socket; and how many such pairs were missing."""
    reference: dict[Key, float] = {}
    for probe in direct:
        reference.update(probe.arrivals)
    added: list[float] = []
    missing = 0
    for probe in sampled:
        for key, at in reference.items():
            via = probe.arrivals.get(key)
            if via is None:
                missing += 1
            else:
                added.append(via - at)
    return added, missing


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.2f} ms"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
