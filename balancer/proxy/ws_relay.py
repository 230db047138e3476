"""Events from backend channels to the client sockets that own them.

ComfyUI's targeting rules (comfyui-api.md 8.3) are kept per job: a job whose
client sent a `client_id` gets every event on that client's sockets; a job
without one produces only what ComfyUI broadcasts (progress, progress_state,
execution_interrupted, previews), sent to every socket. Backend `status`
pushes are not relayed: they refresh the backend's load, and the hub sends the
pool-wide count instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from balancer.backends.registry import Registry
from balancer.backends.state import Backend, Clock
from balancer.files.naming import rewrite_ui_output
from balancer.jobs.completing import CompletingStep
from balancer.jobs.model import Job
from balancer.jobs.tracker import Tracker
from balancer.proxy import frames
from balancer.proxy.presenter import present_entry
from balancer.proxy.preview_order import Delivery, PlainPreviewOrder
from balancer.proxy.ws_hub import ClientHub, ClientSocket, event
from balancer.store import Store
from balancer.upstream import Upstream, UpstreamError

# Sent to every socket when the job has no client_id (ComfyUI's "(B)" events).
BROADCAST_WITHOUT_CLIENT = frozenset({"progress", "progress_state", "execution_interrupted"})
END_EVENTS = frozenset({"execution_success", "execution_error", "execution_interrupted"})


class EventRelay:
    def __init__(
        self,
        registry: Registry,
        tracker: Tracker,
        hub: ClientHub,
        store: Store,
        upstream: Upstream,
        clock: Clock,
        completing: CompletingStep | None,
    ) -> None:
        self.registry = registry
        self.tracker = tracker
        self.hub = hub
        self.store = store
        self.upstream = upstream
        self.clock = clock
        self.plain_previews = PlainPreviewOrder()
        # Holds a job's end (e.g. until its outputs are stored); while it runs,
        # the channel goes on relaying other jobs' events.
        self.completing = completing
        self.ending: dict[str, asyncio.Task[None]] = {}
        # Set by the app: failover for a job its backend lost, a nudge to the
        # late binder when room may have freed, and the balancer queue length.
        self.lost: Callable[[str, str], None] = lambda prompt_id, reason: None
        self.wake: Callable[[], None] = lambda: None
        self.waiting: Callable[[], int] = lambda: 0
        # Set by access control: the tenant a prompt belongs to, and a hook
        # for the output files an `executed` event names.
        self.owner_of: Callable[[str], str | None] = lambda prompt_id: None
        self.on_output: Callable[[str, Any], None] = lambda prompt_id, output: None

    def refresh_status(self) -> None:
        """Send the pool-wide queue count if it changed."""
        held = sum(b.queue_size() or 0 for b in self.registry)
        self.hub.set_queue_remaining(held + self.waiting())

    def on_channel(self, backend: Backend, up: bool) -> None:
        if not up:
            self.plain_previews.release_backend(backend.name)
        self.refresh_status()
        self.wake()

    def notify(self, client_id: str | None, type_: str, data: dict[str, Any]) -> None:
        """Send a job event the balancer makes itself (a late failure)."""
        if client_id is not None:
            owner = self.owner_of(str(data.get("prompt_id")))
            self.hub.to_owner(client_id, owner, event(type_, data))

    async def on_json(self, backend: Backend, message: dict[str, Any]) -> None:
        backend.saw_life(self.clock())
        type_, data = message["type"], message.get("data")
        if type_ == "status":
            self._status_push(backend, data)
            return
        if type_ == "feature_flags" or not isinstance(data, dict):
            return
        after = self.plain_previews.before(data.get("prompt_id"), type_)
        await self._job_event(backend, type_, data)
        after()

    async def _job_event(self, backend: Backend, type_: str, data: dict[str, Any]) -> None:
        prompt_id = data.get("prompt_id")
        job = self.tracker.jobs.get(prompt_id) if isinstance(prompt_id, str) else None
        if job is not None and job.backend != backend.name:
            return  # a backend that lost this job (failover) runs it late: not its owner
        if job is None:
            self._unowned(type_, data, prompt_id)
            return
        if type_ == "execution_start":
            self.tracker.started(job.prompt_id)
        elif type_ == "executing":
            if data.get("node") is None and self.completing is not None:
                self._hold(job, self._end_then_tell(backend, job, data))
                return
            if data.get("node") is None:
                await self.finish(backend, job.prompt_id)
            job.node = data.get("node")
        elif type_ == "executed":
            data = {**data, "output": rewrite_ui_output(backend.name, data.get("output"))}
            self.on_output(job.prompt_id, data["output"])
        self._to_owner(job, type_, data)

    def _hold(self, job: Job, ending: Coroutine[Any, Any, None]) -> None:
        """Run a job's end in the background, once at a time per job."""
        if job.prompt_id in self.ending:
            ending.close()
            return
        task = asyncio.ensure_future(ending)
        self.ending[job.prompt_id] = task
        task.add_done_callback(lambda _: self.ending.pop(job.prompt_id, None))

    def holding(self, prompt_id: str) -> bool:
        """Whether this job's end is held back: with a completing step, a job
        the balancer has not ended (its outputs being stored, or not yet
        reconciled after a restart) shows no history, like a running one."""
        return self.completing is not None and (
            prompt_id in self.ending or prompt_id in self.tracker.jobs
        )

    async def _end_then_tell(self, backend: Backend, job: Job, data: dict[str, Any]) -> None:
        if await self.finish(backend, job.prompt_id) is not None:
            job.node = None
            self._to_owner(job, "executing", data)

    async def close(self) -> None:
        """Shutdown: ends still held are dropped; their jobs stay unfinished
        in the store, so the next start ends them (and completes them) again."""
        tasks = list(self.ending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _status_push(self, backend: Backend, data: Any) -> None:
        try:
            count = data["status"]["exec_info"]["queue_remaining"]
        except (KeyError, TypeError):
            return
        if isinstance(count, int):
            backend.record_push(count, self.clock())
            self.refresh_status()
            self.wake()

    def _to_owner(self, job: Job, type_: str, data: dict[str, Any]) -> None:
        owner = self.owner_of(job.prompt_id)
        if job.client_id is not None:
            self.hub.to_owner(job.client_id, owner, event(type_, data))
        elif type_ in BROADCAST_WITHOUT_CLIENT:
            self.hub.broadcast_owned(owner, event(type_, data))

    def _unowned(self, type_: str, data: dict[str, Any], prompt_id: Any) -> None:
        """Events of prompts the balancer did not send (posted to a backend
        directly): only what ComfyUI would broadcast to every socket."""
        # `executing` without a prompt_id is ComfyUI's reconnect hint to our own sid.
        broadcast = prompt_id is None or type_ in BROADCAST_WITHOUT_CLIENT
        if broadcast and type_ != "executing":
            self.hub.broadcast_owned(None, event(type_, data))

    async def finish(self, backend: Backend, prompt_id: str) -> Job | None:
        """Fetch the history entry once, keep it, and end the job. A failed
        fetch decides nothing: the job stays followed and the next probe that
        misses it from its backend's queue asks again (re-running a job that
        may have finished would be worse than ending it a probe later)."""
        try:
            answer = await self.upstream.get_json(f"{backend.url}/history/{prompt_id}")
        except UpstreamError:
            return None
        raw = answer.get(prompt_id) if isinstance(answer, dict) else None
        job = self.tracker.jobs.get(prompt_id)
        if raw is None and (job is None or job.backend != backend.name):
            return None  # moved on while we asked (work stealing took it back)
        if raw is None:  # neither queued nor kept by its backend: lost
            self.lost(prompt_id, f"{backend.name} no longer has it")
            return None
        entry = present_entry(self.store, backend.name, prompt_id, raw)
        if self.completing is not None:
            entry = await self.completing.complete(prompt_id, backend.url, entry)
        return self.tracker.finish(prompt_id, entry)

    async def reconcile(self, backend: Backend, snapshot: Any) -> None:
        """A probe shows jobs gone from their backend without their end event
        (the channel dropped): end them from history and tell their clients."""
        for job in self.tracker.lost_from(backend.name, snapshot):
            if self.completing is not None:
                self._hold(job, self._recover(backend, job))
            else:
                await self._recover(backend, job)
        self.wake()

    async def _recover(self, backend: Backend, job: Job) -> None:
        if await self.finish(backend, job.prompt_id) is None:
            return
        for type_, data in end_events(self.store.get_history(job.prompt_id), job.prompt_id):
            self._to_owner(job, type_, data)
        self.wake()

    async def on_binary(self, backend: Backend, frame: bytes) -> None:
        backend.saw_life(self.clock())
        preview = frames.parse_metadata_preview(frame)
        if preview is not None:
            job = self.tracker.jobs.get(preview.prompt_id or "")
            self._preview(backend, job, frame, preview)
            return
        job = self.tracker.running_on(backend.name)
        owner = self.owner_of(job.prompt_id) if job is not None else None
        if job is not None and job.client_id is not None:
            self.hub.to_owner(job.client_id, owner, frame)
        else:
            self.hub.broadcast_owned(owner, frame)

    def _preview(
        self, backend: Backend, job: Job | None, frame: bytes, preview: frames.MetadataPreview
    ) -> None:
        """Type 4 at once to clients that asked for metadata; type 1 to the
        others, in ComfyUI's plain order (after the step's `progress`); with no
        client_id, type 1 to every socket (as ComfyUI broadcasts it)."""
        owner = self.owner_of(job.prompt_id) if job is not None else None
        legacy = preview.as_legacy()
        if job is None or job.client_id is None:
            self._plain(backend, preview, lambda: self.hub.broadcast_owned(owner, legacy))
            return
        visible = [s for s in self.hub.of(job.client_id) if s.may_see(owner)]
        for sock in visible:
            if sock.wants_metadata:
                self.hub.send(sock, frame)
        plain = [s for s in visible if not s.wants_metadata]
        if plain:
            self._plain(backend, preview, partial(self._send_each, plain, legacy))

    def _plain(self, backend: Backend, preview: frames.MetadataPreview, deliver: Delivery) -> None:
        if preview.prompt_id is None:
            deliver()
        else:
            self.plain_previews.hold(backend.name, preview.prompt_id, deliver)

    def _send_each(self, socks: list[ClientSocket], frame: bytes) -> None:
        for sock in socks:
            self.hub.send(sock, frame)


def end_events(entry: Any, prompt_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The end event recorded in a history entry, then `executing` null."""
    status = entry.get("status") if isinstance(entry, dict) else None
    messages = status.get("messages") if isinstance(status, dict) else None
    ends = [
        (m[0], m[1])
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, list) and len(m) == 2 and m[0] in END_EVENTS and isinstance(m[1], dict)
    ]
    return [*ends[-1:], ("executing", {"node": None, "prompt_id": prompt_id})]
