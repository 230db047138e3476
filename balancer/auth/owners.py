"""Which tenant each prompt belongs to, and which tenant owns each output file.

The pin (or the stored unfinished job) says whose a prompt is; a job that
failed before it was pinned is remembered here for the process lifetime.
An output file belongs to the prompt whose history entry or `executed` event
names it. Unknown means: visible only to callers that see everything.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from balancer.files.locate import locate
from balancer.files.paths import BadPath
from balancer.jobs.events import JobEvent
from balancer.store import Store

MAX_REMEMBERED = 100_000
# (type, client subfolder with @backend, filename), resolved by `locate`
FileRef = tuple[str, str, str]


class Owners:
    """`keyed`: whether API keys are configured now (a reload may add them)."""

    def __init__(self, store: Store, keyed: Callable[[], bool]) -> None:
        self.store = store
        self.keyed = keyed
        self._recent: OrderedDict[str, str | None] = OrderedDict()
        self._files: OrderedDict[FileRef, str | None] = OrderedDict()
        self._kept_indexed = False

    async def index_kept(self) -> None:
        """The files named by every kept history entry, read once keys are
        configured: at start, or after the reload that adds the first key.
        Without keys every caller sees everything and nothing asks whose a
        file is, so a restart reads none of it."""
        if self._kept_indexed or not self.keyed():
            return
        self._kept_indexed = True
        for prompt_id, entry in (await self.store.histories()).items():
            await self.index_entry(prompt_id, entry)

    async def record(self, prompt_id: str, tenant: str | None, fresh: bool = False) -> None:
        """At submission; the first owner of an id stays its owner. `fresh`:
        the submission just recorded it under `tenant` (nothing to read)."""
        stored = (tenant,) if fresh else await self._stored(prompt_id)
        if prompt_id not in self._recent and (stored is None or stored[0] == tenant):
            _bounded_put(self._recent, prompt_id, tenant)

    async def _stored(self, prompt_id: str) -> tuple[str | None] | None:
        pin = await self.store.get_pin(prompt_id)
        if pin is not None:
            return (pin.tenant,)
        job = await self.store.get_job(prompt_id)
        return (job.tenant,) if job is not None else None

    async def of(self, prompt_id: str) -> str | None:
        if prompt_id in self._recent:
            return self._recent[prompt_id]
        stored = await self._stored(prompt_id)
        return stored[0] if stored else None

    def file_owner(self, ref: FileRef) -> tuple[bool, str | None]:
        """(known, owner) of an output file."""
        return (ref in self._files, self._files.get(ref))

    async def index_outputs(self, prompt_id: str, outputs: Any) -> None:
        """Remember the files an `executed` event or history entry names."""
        owner = await self.of(prompt_id)
        for kind, subfolder, filename in output_refs(outputs):
            try:
                location = locate(kind, subfolder, filename)
            except BadPath:
                continue  # no client can name it through /view or a prompt either
            ref = (location.key.type, location.client_subfolder, location.key.name)
            _bounded_put(self._files, ref, owner)

    async def index_entry(self, prompt_id: str, entry: Any) -> None:
        outputs = entry.get("outputs") if isinstance(entry, dict) else None
        if isinstance(outputs, dict):
            for node_output in outputs.values():
                await self.index_outputs(prompt_id, node_output)

    async def job_event(self, event: JobEvent) -> None:
        if event.prompt_id not in self._recent:  # its owner as stored: no read to come
            _bounded_put(self._recent, event.prompt_id, event.tenant)
        if event.phase in ("completed", "failed", "interrupted"):
            entry = event.entry
            if entry is None:
                entry = await self.store.get_history(event.prompt_id)
            await self.index_entry(event.prompt_id, entry)


def output_refs(node_output: Any) -> list[FileRef]:
    """File items (`{"filename", "subfolder", "type"}`) in one node's output."""
    return [item_ref(item) for item in file_items(node_output)]


def file_items(node_output: Any) -> list[dict[str, Any]]:
    if not isinstance(node_output, dict):
        return []
    return [
        item
        for items in node_output.values()
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and isinstance(item.get("filename"), str)
    ]


def item_ref(item: dict[str, Any]) -> FileRef:
    return (str(item.get("type") or "output"), str(item.get("subfolder") or ""), item["filename"])


def _bounded_put(table: OrderedDict[Any, str | None], key: Any, value: str | None) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_REMEMBERED:
        table.popitem(last=False)
