"""How backend answers are shown to clients: output names get their backend
prefix, and the balancer's channel client_id is replaced by the client's own
(or removed, when the client sent none), so nothing reveals the balancer."""

from __future__ import annotations

from typing import Any

from balancer.files.naming import rewrite_history_entry
from balancer.jobs.numbers import display_number
from balancer.proxy.merge import strip_secrets
from balancer.store import Store, StoredJob


async def client_extra_data(store: Store, prompt_id: Any, extra_data: Any) -> Any:
    """extra_data with the owning client's client_id and no secrets."""
    pin = await store.get_pin(prompt_id) if isinstance(prompt_id, str) else None
    return with_client(extra_data, None if pin is None else (pin.client_id,))


def with_client(extra_data: Any, client: tuple[str | None] | None) -> Any:
    """extra_data with no secrets and, when the job is known (`client`: its
    own client_id, None if it sent none), that client_id in place of the
    balancer's channel one."""
    extra = strip_secrets(extra_data)
    if client is None or not isinstance(extra, dict):
        return extra
    extra = {k: v for k, v in extra.items() if k != "client_id"}
    if client[0] is not None:
        extra["client_id"] = client[0]
    return extra


async def present_queue_item(store: Store, item: Any) -> Any:
    """`[number, prompt_id, prompt, extra_data, outputs]` as the client sees it:
    the pool's `number` (each backend counts its own), the client's client_id."""
    if isinstance(item, list) and len(item) > 3:
        job = await store.get_job(item[1]) if isinstance(item[1], str) else None
        number = display_number(job.number) if job is not None else item[0]
        extra = await client_extra_data(store, item[1], item[3])
        return [number, *item[1:3], extra, *item[4:]]
    return item


async def present_entry(store: Store, backend: str, prompt_id: str, entry: Any) -> Any:
    """A history entry with prefixed outputs and the client's client_id."""
    entry = rewrite_history_entry(backend, entry)
    if isinstance(entry, dict) and isinstance(entry.get("prompt"), list):
        entry = {**entry, "prompt": await present_queue_item(store, entry["prompt"])}
    return entry


def present_job_entry(backend: str, job: StoredJob, entry: Any) -> Any:
    """`present_entry` of an entry of `job`, read from the store already
    (its pin holds the same client_id): no store read."""
    entry = rewrite_history_entry(backend, entry)
    item = entry.get("prompt") if isinstance(entry, dict) else None
    if isinstance(item, list) and len(item) > 3:
        extra = with_client(item[3], (job.client_id,))
        item = [display_number(job.number), *item[1:3], extra, *item[4:]]
        entry = {**entry, "prompt": item}
    return entry


def output_nodes(prompt: Any) -> list[str]:
    """Nodes no other node reads from: the outputs ComfyUI will run, as far as
    the balancer can tell before a backend validates the prompt."""
    if not isinstance(prompt, dict):
        return []
    linked = {
        value[0]
        for node in prompt.values()
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
        for value in node["inputs"].values()
        if isinstance(value, list) and len(value) == 2
    }
    return [node_id for node_id in prompt if node_id not in linked]


def waiting_item(job: StoredJob) -> list[Any]:
    """A job as the balancer records it (waiting here, on its way to a
    backend, or on one that gave no answer), shaped like ComfyUI's queue
    items."""
    extra = strip_secrets(job.request.get("extra_data") or {})
    extra = dict(extra) if isinstance(extra, dict) else {}
    if job.client_id is not None:
        extra["client_id"] = job.client_id
    prompt = job.request.get("prompt")
    return [display_number(job.number), job.prompt_id, prompt, extra, output_nodes(prompt)]
