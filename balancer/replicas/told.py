"""Which `executed` frames of a job its client was told, as the client's
stream keeps them (journal.py, the one record of the frames told): for a
run's end told from its backend's history (jobs/replayed.py), so that an
output already told is not told again.

The stream is read after every frame this replica queued before the read
(the bus's order), so a frame told from here is in it. It keeps about
`KEEP_FRAMES` frames for `KEEP_FOR` seconds: when it no longer holds the
run's `execution_start`, what was told is not known (None). So is it while
Redis does not answer within `READ_WITHIN`. The one frame the stream can
miss is one the dead replica wrote to a socket of its own and died before
it was kept (the journal's own window, a round trip): that output would be
told twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from balancer.logs import get_logger
from balancer.replicas.bus import EventBus, unpack
from balancer.replicas.bus_script import Ops
from balancer.replicas.journal import message_of

log = get_logger("balancer.replicas")

READ_WITHIN = 10.0  # seconds


@dataclass(frozen=True, eq=False)
class _Read:
    """A client's whole stream, read once the writes queued before it are
    applied (bus.Write)."""

    key: str
    then: Callable[[list[bytes]], None]

    def add(self, ops: Ops) -> None:
        ops.add("range", [self.key])

    def applied(self, results: list[Any]) -> None:
        self.then([message_of(fields) for _, fields in results[0] or ()])


class JournalOutputs:
    """jobs.replayed.ToldOutputs, from the clients' streams."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    async def executed(self, sid: str, prompt_id: str) -> frozenset[str] | None:
        got: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

        def then(messages: list[bytes]) -> None:
            if not got.done():
                got.set_result(messages)

        self.bus.write(_Read(self.bus.journal.log + sid, then))
        try:
            messages = await asyncio.wait_for(got, READ_WITHIN)
        except TimeoutError:
            log.warning("told_outputs_unread", prompt_id=prompt_id)
            return None
        return executed_since_start(_frames(messages), prompt_id)


def executed_since_start(frames: Iterable[Any], prompt_id: str) -> frozenset[str] | None:
    """The nodes whose `executed` of `prompt_id` came after its latest
    `execution_start` among `frames`; None when they hold no start of it."""
    nodes: set[str] | None = None
    for frame in frames:
        data = frame.get("data") if isinstance(frame, dict) else None
        if not isinstance(data, dict) or data.get("prompt_id") != prompt_id:
            continue
        if frame.get("type") == "execution_start":
            nodes = set()
        elif frame.get("type") == "executed" and nodes is not None:
            nodes.add(str(data.get("node")))
    return None if nodes is None else frozenset(nodes)


def _frames(messages: list[bytes]) -> Iterable[Any]:
    """The text frames of the bus's messages (bus.encode), as JSON."""
    for message in messages:
        found = unpack(message)
        if found is None or not isinstance(found[1].frame, str):
            continue
        try:
            yield json.loads(found[1].frame)
        except ValueError:
            continue
