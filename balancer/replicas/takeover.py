"""A dead replica's channels, taken over by the replica that adopts its jobs.

A job's backend sends its run's events to the channel client_id it was sent
with (`StoredJob.sent_as`, the sender's `<base>-<backend>-<generation>`).
ComfyUI registers a socket under the `clientId` it connects with, replacing
whatever socket was registered under it, and looks the prompt's client_id up
at each send (comfyui-api.md 8.1): so the replica that adopts such a job
connects to its backend under that id, and what the backend sends from then
on comes to it. Those frames are relayed as its own channel's (the relay,
the journal: once each, in order, to the client's sockets wherever they
are), for the jobs it adopted through that id only; the channel closes once
none of them is left unfinished on that backend. A balancer running alone
(no replicas), restarted on its data, takes over its former process's ids
the same way for the unfinished jobs it resumes (app.py).

What else comes on such a channel is not relayed: the backend's `status`
pushes and broadcasts (its own channel gets them too), and the events of
jobs it did not adopt. What the adoption tells from history is not told
twice:

- a run's start: the first frame of an adopted job whose start is not
  recorded (it started while nobody held the id) is preceded by its
  `execution_start`, recorded first as the relay records one (its
  timestamp is when the adopter heard of it);
- its outputs and its end: the end message is not relayed, and `executing`
  null ends the job from its backend's history (replayed.py): the
  `executed` its client's kept frames do not hold (sent while nobody held
  the id) are told from there, then the end, once; a probe that read the
  end first leaves nothing to tell.

Frames the backend sent between the death and the take-over are lost
(ComfyUI does not replay them). A replica never takes over an id of its own
process's; one that learns its lease was lost (it stalled, and another
replica adopted its jobs and may hold its ids) closes the channels it took
over and opens its own under fresh ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from balancer.backends.channel import Channel, ChannelHandler, Channels
from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.jobs.events import LEFT_BACKEND, JobEvent
from balancer.jobs.follow import Follower
from balancer.jobs.model import END_MESSAGES
from balancer.logs import get_logger
from balancer.proxy import frames
from balancer.store import StoredJob
from balancer.tasks import settle, stop

log = get_logger("balancer.replicas")

Key = tuple[str, str]  # (backend, client_id)


class TakenChannel(Channel):
    """A connection under another process's client_id: never the backend's
    own channel (its state is left alone), the same id at each reconnect."""

    def next_id(self) -> str:
        return self.base_id

    def _set_up(self, client_id: str) -> None:
        self.connected.set()
        log.info("channel_taken_over", backend=self.backend.name, client_id=client_id)

    def _set_down(self, closing: bool) -> None:
        self.connected.clear()


@dataclass(eq=False)
class _Taken:
    """One taken channel: the adopted jobs whose events it brings."""

    jobs: set[str]
    handler: TakenEvents
    channel: TakenChannel | None = None
    task: asyncio.Task[None] | None = None
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)  # a frame being relayed


class TakenEvents:
    """What one taken channel brings, for the adopted jobs only (ChannelHandler)."""

    def __init__(self, owner: TakenChannels, key: Key) -> None:
        self.owner = owner
        self.key = key

    async def on_json(
        self, backend: Backend, message: dict[str, Any], raw: str | None = None
    ) -> None:
        data = message.get("data")
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if message["type"] == "status" or not self.owner.adopted(self.key, prompt_id):
            return
        assert isinstance(data, dict) and isinstance(prompt_id, str)
        async with self.owner.busy(self.key):
            await self.owner.relay_json(backend, prompt_id, message, raw)

    async def on_binary(self, backend: Backend, frame: bytes) -> None:
        preview = frames.parse_metadata_preview(frame)
        if preview is not None:
            prompt_id = preview.prompt_id
        else:  # a plain frame goes to the client of the job running there
            running = await self.owner.follower.running_on(backend.name)
            prompt_id = running.prompt_id if running is not None else None
        if not self.owner.adopted(self.key, prompt_id):
            return
        assert isinstance(prompt_id, str)
        async with self.owner.busy(self.key):
            await self.owner.relay_binary(backend, prompt_id, frame)

    def on_channel(self, backend: Backend, up: bool) -> None:
        pass  # not the backend's own channel


class TakenChannels:
    """Every channel this replica took over: the one owner of that state."""

    def __init__(
        self, channels: Channels, registry: Registry, follower: Follower, wall: Clock
    ) -> None:
        self.channels = channels  # this replica's own: their session, relay and ids
        self.relay: ChannelHandler = channels.handler
        self.registry = registry
        self.follower = follower
        self.wall = wall
        self._taken: dict[Key, _Taken] = {}
        self._key_of: dict[str, Key] = {}  # adopted job -> its taken channel
        self._start_known: set[str] = set()  # jobs whose start is recorded
        self._closing: set[asyncio.Task[None]] = set()
        self._closing_of: dict[Key, asyncio.Task[None]] = {}  # the latest, by channel

    def adopt(self, jobs: Iterable[StoredJob]) -> None:
        """Take over the ids these adopted jobs were sent with (not this
        process's own), one channel per backend and id."""
        own = self.channels.base_id + "-"
        for job in jobs:
            sid, name = job.sent_as, job.backend
            if sid is None or name is None or job.finished or sid.startswith(own):
                continue
            backend = self.registry.get(name)
            if backend is None:
                continue
            key = (name, sid)
            taken = self._taken.get(key)
            if taken is None:
                taken = self._taken[key] = _Taken(set(), TakenEvents(self, key))
                self._open(backend, sid, taken)
            taken.jobs.add(job.prompt_id)
            self._key_of[job.prompt_id] = key

    def _open(self, backend: Backend, sid: str, taken: _Taken) -> None:
        channel = taken.channel = TakenChannel(backend, self.channels.session, taken.handler, sid)
        before = self._closing_of.get(taken.handler.key)
        taken.task = asyncio.get_running_loop().create_task(self._run(channel, before))

    @staticmethod
    async def _run(channel: TakenChannel, before: asyncio.Task[None] | None) -> None:
        """Once the channel under the same id before it has closed: ComfyUI
        drops an id's registration when a socket of it closes, whichever."""
        if before is not None:
            await asyncio.wait({before})
        await channel.run()

    def held(self) -> list[TakenChannel]:
        """Every channel taken over now (its `base_id` is the id taken)."""
        return [t.channel for t in self._taken.values() if t.channel is not None]

    async def settled(self) -> None:
        """Wait until every channel no longer needed has closed."""
        await settle(self._closing)

    def adopted(self, key: Key, prompt_id: Any) -> bool:
        """Whether `prompt_id` is a job adopted through the channel `key`."""
        return isinstance(prompt_id, str) and self._key_of.get(prompt_id) == key

    def busy(self, key: Key) -> asyncio.Lock:
        return self._taken[key].busy

    async def relay_json(
        self, backend: Backend, prompt_id: str, message: dict[str, Any], raw: str | None
    ) -> None:
        type_, data = message["type"], message.get("data")
        if type_ in END_MESSAGES:
            return  # told from history, at `executing` null
        if type_ == "executing" and isinstance(data, dict) and data.get("node") is None:
            await self.follower.end_untold(backend.name, prompt_id)
            return
        if type_ == "execution_start":
            self._start_known.add(prompt_id)
        else:
            await self._start_told(backend, prompt_id)
        await self.relay.on_json(backend, message, raw)

    async def relay_binary(self, backend: Backend, prompt_id: str, frame: bytes) -> None:
        await self._start_told(backend, prompt_id)
        await self.relay.on_binary(backend, frame)

    async def _start_told(self, backend: Backend, prompt_id: str) -> None:
        """Before an adopted job's first frame here: its start, if nobody
        recorded it (so nobody told it), recorded and told as the relay
        does with the backend's own."""
        if prompt_id in self._start_known:
            return
        self._start_known.add(prompt_id)
        job = await self.follower.store.get_job(prompt_id)
        if job is None or job.finished or job.started_at is not None:
            return
        ms = int(self.wall() * 1000)
        start = {"type": "execution_start", "data": {"prompt_id": prompt_id, "timestamp": ms}}
        await self.relay.on_json(backend, start, None)

    async def job_event(self, event: JobEvent) -> None:
        """A job that left its backend needs its taken channel no more; the
        channel closes with the last of them."""
        if event.phase not in LEFT_BACKEND:
            return
        key = self._key_of.pop(event.prompt_id, None)
        self._start_known.discard(event.prompt_id)
        taken = self._taken.get(key) if key is not None else None
        if taken is None or key is None:
            return
        taken.jobs.discard(event.prompt_id)
        if not taken.jobs:
            del self._taken[key]
            closing = asyncio.get_running_loop().create_task(self._close(taken))
            self._closing.add(closing)
            self._closing_of[key] = closing
            closing.add_done_callback(lambda done: self._closed(key, done))

    def _closed(self, key: Key, closing: asyncio.Task[None]) -> None:
        self._closing.discard(closing)
        if self._closing_of.get(key) is closing:
            del self._closing_of[key]

    async def _close(self, taken: _Taken) -> None:
        """Stopped between two frames: a frame being relayed (this job's
        end, whose event may be what closes it) is relayed whole first."""
        async with taken.busy:
            if taken.task is not None:
                await stop(taken.task)
        if taken.channel is not None:
            log.info("taken_channel_closed", backend=taken.channel.backend.name)

    async def close(self) -> None:
        """Every taken channel closed (shutdown, or the lease was lost)."""
        taken, self._taken = list(self._taken.values()), {}
        self._key_of.clear()
        self._start_known.clear()
        for one in taken:
            await self._close(one)
        await settle(self._closing)

    async def lost(self) -> None:
        """This replica's lease was lost: another replica follows its jobs
        and may hold its channels' ids. The channels taken over close, and
        its own reconnect under fresh ids (a later send under an id held
        elsewhere would have its events go there)."""
        await self.close()
        await self.channels.renew()
