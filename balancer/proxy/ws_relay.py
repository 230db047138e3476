"""Events from backend channels to the client sockets that own them.

ComfyUI's targeting rules (comfyui-api.md 8.3) are kept per job: a job whose
client sent a `client_id` gets every event on that client's sockets; a job
without one produces only what ComfyUI broadcasts (progress, progress_state,
execution_interrupted, previews), sent to every socket. Backend `status`
pushes are not relayed: they refresh the backend's load, and the hub sends the
pool-wide count instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.files.naming import rewrite_ui_output
from balancer.jobs.events import LEFT_BACKEND, JobEvent
from balancer.jobs.follow import Follower
from balancer.jobs.model import END_MESSAGES
from balancer.proxy import frames
from balancer.proxy.backend_event import BackendEvent
from balancer.proxy.nodes import Nodes
from balancer.proxy.preview_order import Delivery, PlainPreviewOrder
from balancer.proxy.sent_jobs import RelayedJob, SentJobs
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_socket import event
from balancer.store import Store
from balancer.store.guard import guarded

# Sent to every socket when the job has no client_id (ComfyUI's "(B)" events).
BROADCAST_WITHOUT_CLIENT = frozenset({"progress", "progress_state", "execution_interrupted"})


class EventRelay:
    """Translates channel messages into calls on the jobs follower, and
    delivers job events and backend events to the client sockets that own them."""

    def __init__(
        self,
        registry: Registry,
        follower: Follower,
        hub: ClientHub,
        store: Store,
        clock: Clock,
        waiting: Callable[[], int],
        wake: Callable[[], None],
        owner_of: Callable[[str], Awaitable[str | None]],
        on_output: Callable[[str, Any], Awaitable[None]],
        nodes: Nodes,
        pushed: Callable[[Backend], None],
    ) -> None:
        self.registry = registry
        # Told of every `status` push recorded (`DrainWatch.note`: a draining
        # backend's push may say it is empty).
        self.pushed = pushed
        self.follower = follower
        self.hub = hub
        self.store = store
        self.clock = clock
        self.waiting = waiting
        self.wake = wake
        self.plain_previews = PlainPreviewOrder()
        # The node each running job is on, for a client that reconnects.
        self.nodes = nodes
        # The jobs this balancer sent: their events need no store read.
        self.sent = SentJobs(follower.follows)
        # From access control: the tenant a prompt belongs to, and who is
        # told the output files an `executed` event names.
        self.owner_of = owner_of
        self.on_output = on_output
        # The store away: an event that needs it is dropped (a probe later
        # reconciles its job) and the channel goes on.
        self._json = guarded("channel_event", self._on_json)
        self._binary = guarded("channel_event", self._on_binary)

    def refresh_status(self) -> None:
        """Send the pool-wide queue count if it changed."""
        held = sum(b.queue_size() or 0 for b in self.registry)
        self.hub.set_queue_remaining(held + self.waiting())

    def on_channel(self, backend: Backend, up: bool) -> None:
        if not up:
            self.plain_previews.release_backend(backend.name)
        self.refresh_status()
        self.wake()

    async def job_event(self, ev: JobEvent) -> None:
        """Events the jobs emit: the balancer's own messages for the job's
        client (a late failure, missed end events), and the queue count."""
        if ev.phase in LEFT_BACKEND:
            self.nodes.drop(ev.prompt_id)
        await self.sent.job_event(ev)
        owner = await self.owner_of(ev.prompt_id)
        self.refresh_status()
        for type_, data in ev.client_events:
            if ev.client_id is not None:
                if type_ == "executing" and data.get("node") is None:
                    self.hub.count_to_owner(ev.client_id, owner)
                self.hub.to_owner(ev.client_id, owner, event(type_, data))
            elif type_ in BROADCAST_WITHOUT_CLIENT:
                self.hub.broadcast_owned(owner, event(type_, data))

    async def on_json(
        self, backend: Backend, message: dict[str, Any], raw: str | None = None
    ) -> None:
        await self._json(backend, message, raw)

    async def on_binary(self, backend: Backend, frame: bytes) -> None:
        await self._binary(backend, frame)

    async def _on_json(
        self, backend: Backend, message: dict[str, Any], raw: str | None = None
    ) -> None:
        backend.saw_life(self.clock())
        type_, data = message["type"], message.get("data")
        if type_ == "status":
            self._status_push(backend, data)
            return
        if type_ == "feature_flags" or not isinstance(data, dict):
            return
        after = self.plain_previews.before(data.get("prompt_id"), type_)
        await self._job_event(backend, BackendEvent.of(message, type_, data, raw))
        after()

    async def _job_event(self, backend: Backend, ev: BackendEvent) -> None:
        type_, data = ev.type, ev.data
        prompt_id = data.get("prompt_id")
        job = await self._job(backend, prompt_id)
        if job is None:
            self._unowned(ev, prompt_id)
            return
        ended = type_ == "executing" and data.get("node") is None
        if job.backend != backend.name:
            # A backend that lost this job (failover) runs it late: not its
            # owner, but the end of that run is recorded on the job. Its
            # events were not relayed, so if it is the job's end, its client
            # is sent the end events (as a probe finding it would).
            if ended:
                await self.follower.ends.ended(backend.name, job.prompt_id, replay=True)
            return
        if job.finished:  # a probe read its end before these frames came: told, so none follow
            return
        if type_ == "execution_start":
            await self.follower.started(backend, job.prompt_id)
            await self._to_owner(job, ev, count_first=True)
            return
        if ended or type_ in END_MESSAGES:
            await self._end(backend, job, ev)
            return
        if type_ == "executing":
            self.nodes.set(job.prompt_id, str(data.get("node")))
        elif type_ == "executed":
            output = rewrite_ui_output(backend.name, data.get("output"))
            ev = ev.with_data({**data, "output": output})
            await self.on_output(job.prompt_id, output)
        await self._to_owner(job, ev)

    async def _job(self, backend: Backend, prompt_id: Any) -> RelayedJob | None:
        """The job an event names: as sent from here, else as stored."""
        if not isinstance(prompt_id, str):
            return None
        sent = self.sent.on(backend.name, prompt_id)
        if sent is not None:
            return sent
        job = await self.store.get_job(prompt_id)
        if job is None:
            return None
        return RelayedJob(job.prompt_id, job.client_id, job.backend, job.finished)

    async def _end(self, backend: Backend, job: RelayedJob, ev: BackendEvent) -> None:
        """A frame of the run's end (its end message, then `executing` null):
        the job is marked told before its client hears the first of them
        (Follower.telling), so nobody tells that end again."""
        ended = ev.type == "executing"
        if not await self.follower.ends.telling(backend.name, job.prompt_id):
            if ended:  # not told from here: recorded, and its end replayed, if it is news
                await self.follower.ends.ended(backend.name, job.prompt_id, replay=True)
        elif ended and self.follower.ends.completing is not None:  # its end waits for the step
            self.follower.ends.hold(job.prompt_id, self._end_then_tell(backend, job, ev))
        elif ended:  # told at once, recorded after (see Follower.told)
            await self._to_owner(job, ev, count_first=True)
            await self.follower.ends.told(backend.name, job.prompt_id)
        else:
            await self._to_owner(job, ev)

    async def _end_then_tell(self, backend: Backend, job: RelayedJob, ev: BackendEvent) -> None:
        if await self.follower.ends.ended(backend.name, job.prompt_id, replay=False) is not None:
            await self._to_owner(job, ev, count_first=True)

    def _status_push(self, backend: Backend, data: Any) -> None:
        try:
            count = data["status"]["exec_info"]["queue_remaining"]
        except (KeyError, TypeError):
            return
        if isinstance(count, int):
            backend.record_push(count, self.clock())
            self.pushed(backend)
            self.refresh_status()
            self.wake()

    async def _to_owner(self, job: RelayedJob, ev: BackendEvent, count_first: bool = False) -> None:
        """`ev` to the job's client; with `count_first`, the pool-wide
        `status` just before it, where ComfyUI sends its own among a job's
        events (as it takes the job from its queue, before `execution_start`;
        once the job has left it, before `executing` null). A client that
        reads the count when its job ends (ComfyScript) reads the count after
        that job, whatever the pace of the status to every socket."""
        owner = await self.owner_of(job.prompt_id)
        if job.client_id is not None:
            if count_first:
                self.refresh_status()
                self.hub.count_to_owner(job.client_id, owner)
            self.hub.to_owner(job.client_id, owner, ev.frame())
        elif ev.type in BROADCAST_WITHOUT_CLIENT:
            self.hub.broadcast_owned(owner, ev.frame())

    def _unowned(self, ev: BackendEvent, prompt_id: Any) -> None:
        """Events of prompts the balancer did not send (posted to a backend
        directly): only what ComfyUI would broadcast to every socket."""
        # `executing` without a prompt_id is ComfyUI's reconnect hint to our own sid.
        broadcast = prompt_id is None or ev.type in BROADCAST_WITHOUT_CLIENT
        if broadcast and ev.type != "executing":
            self.hub.broadcast_here(ev.frame())

    async def _on_binary(self, backend: Backend, frame: bytes) -> None:
        backend.saw_life(self.clock())
        preview = frames.parse_metadata_preview(frame)
        if preview is not None:
            await self._preview(
                backend, await self._job(backend, preview.prompt_id), frame, preview
            )
            return
        job = await self.follower.running_on(backend.name)
        owner = await self.owner_of(job.prompt_id) if job is not None else None
        if job is None:
            self.hub.broadcast_here(frame)  # not a job of ours: every channel got it
        elif job.client_id is not None:
            self.hub.to_owner(job.client_id, owner, frame)
        else:
            self.hub.broadcast_owned(owner, frame)

    async def _preview(
        self,
        backend: Backend,
        job: RelayedJob | None,
        frame: bytes,
        preview: frames.MetadataPreview,
    ) -> None:
        """Type 4 at once to clients that asked for metadata; type 1 to the
        others, in ComfyUI's plain order (after the step's `progress`); with no
        client_id, type 1 to every socket (as ComfyUI broadcasts it)."""
        owner = await self.owner_of(job.prompt_id) if job is not None else None
        legacy = preview.as_legacy()
        if job is None:  # not a job of ours: every channel got it
            self._plain(backend, preview, lambda: self.hub.broadcast_here(legacy))
        elif job.client_id is None:
            self._plain(backend, preview, lambda: self.hub.broadcast_owned(owner, legacy))
        else:
            sid = job.client_id
            self.hub.to_previewers(sid, owner, frame, metadata=True)
            plain = partial(self.hub.to_previewers, sid, owner, legacy, metadata=False)
            self._plain(backend, preview, plain)

    def _plain(self, backend: Backend, preview: frames.MetadataPreview, deliver: Delivery) -> None:
        if preview.prompt_id is None:
            deliver()
        else:
            self.plain_previews.hold(backend.name, preview.prompt_id, deliver)
