"""Pure functions that make many backends' answers look like one server's."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from typing import Any

from balancer.files.naming import rewrite_history_entry
from balancer.store.kept import entry_time

# ComfyUI 0.3.64 leaks these comfy.org credentials in /queue's extra_data.
SECRET_EXTRA_KEYS = frozenset({"auth_token_comfy_org", "api_key_comfy_org"})


def strip_secrets(extra_data: Any) -> Any:
    if not isinstance(extra_data, dict):
        return extra_data
    return {k: v for k, v in extra_data.items() if k not in SECRET_EXTRA_KEYS}


def clean_queue_item(item: Any) -> Any:
    """`[number, prompt_id, prompt, extra_data, outputs]` without secrets."""
    if isinstance(item, list) and len(item) > 3:
        return [*item[:3], strip_secrets(item[3]), *item[4:]]
    return item


def merge_queues(
    queues: list[Any], present: Callable[[Any], Any] = clean_queue_item
) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {"queue_running": [], "queue_pending": []}
    for queue in queues:
        if not isinstance(queue, dict):
            continue
        for key, items in merged.items():
            value = queue.get(key)
            if isinstance(value, list):
                items.extend(present(item) for item in value)
    return merged


def merge_histories(
    per_backend: list[tuple[str, Any]],
    present: Callable[[str, str, Any], Any] = lambda backend, _pid, e: rewrite_history_entry(
        backend, e
    ),
    kept: Iterable[tuple[str, Any]] = (),
    skip: Container[str] = (),
) -> list[tuple[str, Any]]:
    """The backends' entries, presented per backend, except those in `skip`
    (the balancer's kept copy wins: it outlives backend restarts), plus the
    kept entries given, oldest first by start time."""
    merged: dict[str, Any] = {}
    for backend, history in per_backend:
        if isinstance(history, dict):
            for pid, entry in history.items():
                if pid not in skip:
                    merged[pid] = present(backend, pid, entry)
    merged.update(kept)
    return sorted(merged.items(), key=lambda item: entry_time(item[1]))


def page(items: list[Any], max_items: int | None, offset: int | None) -> list[Any]:
    """ComfyUI 0.3.64's paging: no offset means the newest `max_items`
    (still oldest first); an offset skips that many of the oldest."""
    if offset is None:
        return items if max_items is None else items[max(0, len(items) - max_items) :]
    end = None if max_items is None else offset + max_items
    return items[offset:end]


def upstream_history_query(max_items: int | None, offset: int | None) -> str:
    """What to ask each backend so the merged page is exact: the newest N of
    each for a tail page, the oldest offset+N of each for an offset page."""
    if max_items is None:
        return ""
    if offset is None:
        return f"?max_items={max_items}"
    return f"?offset=0&max_items={offset + max_items}"


def merge_system_stats(per_backend: list[tuple[str, Any]]) -> dict[str, Any]:
    """`system` of the first backend (argv hidden), every backend's devices
    labelled with the backend's name."""
    system: dict[str, Any] = {}
    devices: list[Any] = []
    for backend, stats in per_backend:
        if not isinstance(stats, dict):
            continue
        if not system and isinstance(stats.get("system"), dict):
            system = {**stats["system"], "argv": []}
        for device in stats.get("devices") or []:
            if isinstance(device, dict):
                name = f"{backend}: {device.get('name', '')}"
                devices.append({**device, "name": name, "backend": backend})
    return {"system": system, "devices": devices}
