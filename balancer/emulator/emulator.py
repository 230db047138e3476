"""The Emulator: one fake ComfyUI instance's state and its single worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from functools import partial
from typing import Any

from .catalog import Catalog
from .executor import Executor, Spend
from .faults import Faults
from .files import Directories
from .nodes import default_registry
from .options import EmulatorOptions
from .queue import PromptQueue, QueueItem
from .runstate import ModelMemory, RunGate
from .validation import CustomCheck, Validator
from .ws import Client, Hub

JSON = dict[str, Any]


class Emulator:
    def __init__(self, options: EmulatorOptions, spend: Spend = asyncio.sleep) -> None:
        self.options = options
        self.faults = Faults()
        self.dirs = Directories.create(options.base_dir)
        self.catalog = Catalog(self.dirs.folder("input"), options)
        self.registry = default_registry(options.extra_nodes)
        self.hub = Hub()
        self.queue = PromptQueue()
        self.gate = RunGate()
        self.memory = ModelMemory(options)
        self.executor = Executor(
            self.registry, self.hub, self.dirs, options, self.gate, self.memory, spend
        )
        self.number = 0
        self.executed: list[str] = []
        # Requests served by path (ComfyUI's routes, not /_emulator): what
        # a balancer costs a backend, for benchmarks.
        self.requests: Counter[str] = Counter()
        self._free_requested: tuple[bool, bool] | None = None
        self._worker: asyncio.Task[None] | None = None

    # -- public control ----------------------------------------------------
    @property
    def history(self) -> dict[str, JSON]:
        return self.queue.history

    def set_vram_used(self, used: int | None) -> None:
        self.memory.override_used = used

    def pause(self) -> None:
        self.gate.pause()

    def resume(self) -> None:
        self.gate.resume()

    @property
    def paused(self) -> bool:
        return self.gate.paused

    async def crash(self) -> None:
        """SIGKILL + restart: sockets die, queue/history/cache/counter are gone, files stay."""
        await self.stop()
        self.hub.abort_all()
        self.queue.reset()
        self.executor.reset_cache()
        self.memory.unload()
        self.gate.clear_interrupt()
        self.number = 0
        self.dirs.wipe_temp()
        self.start()

    async def restart_with(self, options: EmulatorOptions) -> None:
        """A crash and a restart with other nodes or models installed."""
        self.options = options
        self.catalog = Catalog(self.dirs.folder("input"), options)
        self.registry.update(default_registry(options.extra_nodes))
        await self.crash()

    async def wait_idle(self, timeout: float) -> None:
        await asyncio.wait_for(self.queue.wait_idle(), timeout)

    # -- ComfyUI behaviour helpers -------------------------------------------
    def validator(self) -> Validator:
        custom: dict[str, dict[str, CustomCheck]] = {}
        for class_type, impl in self.registry.items():
            if impl.custom_checks:
                custom[class_type] = {
                    name: partial(check, self.dirs) for name, check in impl.custom_checks.items()
                }
        return Validator(self.catalog, custom)

    def status(self) -> JSON:
        return {"status": {"exec_info": {"queue_remaining": self.queue.remaining()}}}

    def broadcast_status(self) -> None:
        self.hub.broadcast("status", self.status())

    def server_flags(self) -> JSON:
        return {"supports_preview_metadata": True, "max_upload_size": self.options.max_upload_size}

    def enqueue(self, item: QueueItem) -> None:
        self.queue.put(item)
        self.broadcast_status()

    def interrupt(self, prompt_id: str | None) -> None:
        running = self.queue.running
        if prompt_id is None or (running is not None and running.prompt_id == prompt_id):
            self.gate.interrupt()

    def free(self, unload_models: bool, free_memory: bool) -> None:
        if self.queue.running is not None:
            self._free_requested = (unload_models, free_memory)
        else:
            self._apply_free(unload_models, free_memory)

    def _apply_free(self, unload_models: bool, free_memory: bool) -> None:
        if unload_models or free_memory:
            self.memory.unload()
        if free_memory:
            self.executor.reset_cache()

    def on_connect(self, client: Client) -> None:
        """A socket whose sid runs the current prompt learns the executing node at once."""
        run = self.executor.current
        if run is not None and run.client_id == client.sid and run.node_id:
            client.send_json("executing", {"node": run.node_id, "display_node": run.node_id})

    # -- worker ------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"{self.options.name}-worker")

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _work(self) -> None:
        while True:
            item = await self.queue.take()
            self.broadcast_status()
            self.gate.clear_interrupt()
            outcome = await self.executor.run(item)
            status = {
                "status_str": outcome.status_str,
                "completed": outcome.status_str == "success",
                "messages": outcome.messages,
            }
            self.queue.finish(item, outcome.outputs, status, outcome.meta)
            self.executed.append(item.prompt_id)
            self.broadcast_status()
            done = {"node": None, "prompt_id": item.prompt_id}
            self.hub.to_client(item.extra_data.get("client_id"), "executing", done)
            if self._free_requested is not None:
                self._apply_free(*self._free_requested)
                self._free_requested = None
