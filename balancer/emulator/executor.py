"""Runs one queued prompt: order, node-output cache, events and history status."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import images
from .files import Directories
from .nodes_base import NodeImpl, NodeResult
from .options import EmulatorOptions
from .queue import QueueItem
from .runstate import Interrupted, ModelMemory, RunGate
from .ws import Hub

JSON = dict[str, Any]
T = TypeVar("T")
# How simulated work takes its time: asyncio.sleep (real seconds); a test's
# virtual clock advances by them instead, so what a job costs is exact.
Spend = Callable[[float], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Outcome:
    outputs: JSON = field(default_factory=dict)
    meta: JSON = field(default_factory=dict)
    messages: list[list[Any]] = field(default_factory=list)
    status_str: str = "success"


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn` run in a thread. Cancelled, it still waits for the thread: a
    thread cannot be stopped, so a run cancelled (the emulator stopping)
    ends only once its work has, and nothing writes files after it (a
    demo removing its directory right after found a PNG written into it)."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait({work})
        raise


class Run:
    """The state of one prompt execution; also the NodeContext handed to node code."""

    def __init__(self, executor: Executor, item: QueueItem) -> None:
        self._executor = executor
        self.item = item
        self.prompt_id = item.prompt_id
        self.prompt = item.prompt
        self.extra_data = item.extra_data
        self.options = executor.options
        self.dirs = executor.dirs
        self.client_id: str | None = item.extra_data.get("client_id")
        self.node_id = ""
        self.states: dict[str, JSON] = {}
        self.outcome = Outcome()

    # -- NodeContext -----------------------------------------------------
    async def work(self, seconds: float) -> None:
        delay = seconds * self.options.time_scale
        await self._executor.spend(delay if delay > 0 else 0)

    def check_interrupt(self) -> None:
        self._executor.gate.check()

    async def progress(self, value: int, total: int, preview_png: bytes | None = None) -> None:
        self.set_state(self.node_id, value, total, "running")
        progress = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id}
        meta = {**self._ids(self.node_id, "node_id"), "image_type": "image/png"}
        hub = self._executor.hub
        hub.progress_step(self.client_id, self._state_event(), progress, preview_png, meta)
        await asyncio.sleep(0)

    async def ensure_checkpoint(self, name: str) -> None:
        memory = self._executor.memory
        if not memory.touch(name):
            await self.work(self.options.checkpoint_load_time)
            memory.add(name)

    async def compute(self, fn: Callable[..., T], *args: Any) -> T:
        return await in_thread(fn, *args)

    # -- events ----------------------------------------------------------
    def _ids(self, node_id: str, key: str) -> JSON:
        return {
            key: node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }

    def set_state(self, node_id: str, value: float, total: float, state: str) -> None:
        self.states[node_id] = {"value": value, "max": total, "state": state}

    def _state_event(self) -> JSON:
        nodes = {
            node_id: {**values, **self._ids(node_id, "node_id")}
            for node_id, values in self.states.items()
        }
        return {"prompt_id": self.prompt_id, "nodes": nodes}

    def send_state(self) -> None:
        self._executor.hub.to_client_or_all(self.client_id, "progress_state", self._state_event())

    def record(self, event: str, data: JSON, *, broadcast_without_client: bool = False) -> None:
        self.outcome.messages.append([event, data])
        hub = self._executor.hub
        if broadcast_without_client:
            hub.to_client_or_all(self.client_id, event, data)
        else:
            hub.to_client(self.client_id, event, data)

    def send_executed(self, node_id: str, ui: JSON) -> None:
        self.outcome.outputs[node_id] = ui
        self.outcome.meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }
        data = {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id}
        self._executor.hub.to_client(self.client_id, "executed", data)


class Executor:
    def __init__(
        self,
        registry: dict[str, NodeImpl],
        hub: Hub,
        dirs: Directories,
        options: EmulatorOptions,
        gate: RunGate,
        memory: ModelMemory,
        spend: Spend,
    ) -> None:
        self.registry = registry
        self.spend = spend
        self.hub = hub
        self.dirs = dirs
        self.options = options
        self.gate = gate
        self.memory = memory
        self.cache: dict[str, NodeResult] = {}
        self.current: Run | None = None

    def reset_cache(self) -> None:
        self.cache.clear()

    def _order(self, prompt: JSON, outputs: list[str]) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()

        def visit(node_id: str) -> None:
            if node_id in seen:
                return
            seen.add(node_id)
            for value in prompt[node_id].get("inputs", {}).values():
                if isinstance(value, list) and len(value) == 2:
                    visit(value[0])
            order.append(node_id)

        for out in outputs:
            visit(out)
        return order

    def _signatures(self, prompt: JSON, order: list[str]) -> dict[str, str]:
        sigs: dict[str, str] = {}
        for node_id in order:
            node = prompt[node_id]
            impl = self.registry[node["class_type"]]
            inputs = {}
            for name, value in sorted(node.get("inputs", {}).items()):
                linked = isinstance(value, list) and len(value) == 2
                inputs[name] = ["link", sigs[value[0]], value[1]] if linked else value
            changed = uuid.uuid4().hex if impl.never_cached else ""
            if impl.change_key is not None:
                changed = impl.change_key(self.dirs, node.get("inputs", {}))
            sigs[node_id] = json.dumps([node["class_type"], inputs, changed], default=str)
        return sigs

    async def run(self, item: QueueItem) -> Outcome:
        run = Run(self, item)
        self.current = run
        try:
            await self._run(run)
        finally:
            self.current = None
        return run.outcome

    async def _run(self, run: Run) -> None:
        prompt = run.prompt
        order = self._order(prompt, run.item.outputs)
        sigs = self._signatures(prompt, order)
        pid = run.prompt_id
        run.record("execution_start", {"prompt_id": pid, "timestamp": now_ms()})
        cached = [node_id for node_id in order if sigs[node_id] in self.cache]
        data = {"nodes": cached, "prompt_id": pid, "timestamp": now_ms()}
        run.record("execution_cached", data)
        results: dict[str, NodeResult] = {}
        for node_id in cached:
            results[node_id] = self.cache[sigs[node_id]]
            ui = results[node_id].ui
            if ui is not None:
                run.send_executed(node_id, ui)
                run.set_state(node_id, 1, 1, "finished")
                run.send_state()
        executed: list[str] = []
        for node_id in order:
            if node_id in results:
                continue
            class_type = prompt[node_id]["class_type"]
            inputs = {
                name: results[value[0]].outputs[value[1]]
                if isinstance(value, list) and len(value) == 2
                else value
                for name, value in prompt[node_id].get("inputs", {}).items()
            }
            try:
                await self.gate.before_node()
                run.node_id = node_id
                run.set_state(node_id, 0.0, 1.0, "running")
                run.send_state()
                executing = {"node": node_id, "display_node": node_id, "prompt_id": pid}
                self.hub.to_client(run.client_id, "executing", executing)
                self.gate.check()
                result = await self.registry[class_type].run(run, inputs)
            except Interrupted:
                self._interrupted(run, node_id, class_type, executed)
                return
            except Exception as exc:
                self._failed(run, node_id, class_type, executed, inputs, order, exc)
                return
            results[node_id] = self.cache[sigs[node_id]] = result
            if result.ui is not None:
                run.send_executed(node_id, result.ui)
            state = run.states[node_id]
            run.set_state(node_id, state["max"], state["max"], "finished")
            run.send_state()
            executed.append(node_id)
        run.record("execution_success", {"prompt_id": pid, "timestamp": now_ms()})
        keep = set(sigs.values())
        self.cache = {sig: out for sig, out in self.cache.items() if sig in keep}

    @staticmethod
    def _interrupted(run: Run, node_id: str, class_type: str, executed: list[str]) -> None:
        run.outcome.status_str = "error"
        data = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": class_type,
            "executed": executed,
            "timestamp": now_ms(),
        }
        run.record("execution_interrupted", data, broadcast_without_client=True)

    @staticmethod
    def _failed(
        run: Run,
        node_id: str,
        class_type: str,
        executed: list[str],
        inputs: JSON,
        order: list[str],
        exc: Exception,
    ) -> None:
        run.outcome.status_str = "error"
        data = {
            "prompt_id": run.prompt_id,
            "node_id": node_id,
            "node_type": class_type,
            "executed": executed,
            "exception_message": f"{exc}\n",
            "exception_type": type(exc).__qualname__,
            "traceback": traceback.format_tb(exc.__traceback__),
            "current_inputs": {name: [images.describe(v)] for name, v in inputs.items()},
            "current_outputs": list(order),
            "timestamp": now_ms(),
        }
        run.record("execution_error", data)
