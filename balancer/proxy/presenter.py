"""How backend answers are shown to clients: output names get their backend
prefix, and the balancer's channel client_id is replaced by the client's own
(or removed, when the client sent none), so nothing reveals the balancer."""

from __future__ import annotations

from typing import Any

from balancer.files.naming import rewrite_history_entry
from balancer.proxy.merge import strip_secrets
from balancer.store import Store


def client_extra_data(store: Store, prompt_id: Any, extra_data: Any) -> Any:
    """extra_data with the owning client's client_id and no secrets."""
    extra = strip_secrets(extra_data)
    pin = store.get_pin(prompt_id) if isinstance(prompt_id, str) else None
    if pin is None or not isinstance(extra, dict):
        return extra
    extra = {k: v for k, v in extra.items() if k != "client_id"}
    if pin.client_id is not None:
        extra["client_id"] = pin.client_id
    return extra


def present_queue_item(store: Store, item: Any) -> Any:
    """`[number, prompt_id, prompt, extra_data, outputs]` as the client sees it."""
    if isinstance(item, list) and len(item) > 3:
        return [*item[:3], client_extra_data(store, item[1], item[3]), *item[4:]]
    return item


def present_entry(store: Store, backend: str, prompt_id: str, entry: Any) -> Any:
    """A history entry with prefixed outputs and the client's client_id."""
    entry = rewrite_history_entry(backend, entry)
    if isinstance(entry, dict) and isinstance(entry.get("prompt"), list):
        entry = {**entry, "prompt": present_queue_item(store, entry["prompt"])}
    return entry
