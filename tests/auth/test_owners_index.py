"""The output files' owners index: read from kept history at start only when
API keys are configured (without keys nothing asks whose a file is), and
read once a reload adds the first key."""

from __future__ import annotations

from typing import Any

from balancer.auth.owners import Owners
from balancer.files.locate import locate
from balancer.store import MemoryStore, Pin
from balancer.store.kept import KeptHistory


class CountingStore(MemoryStore):
    """A memory store that counts reads of the whole kept history."""

    def __init__(self) -> None:
        super().__init__()
        self.history_reads = 0

    async def histories(self) -> KeptHistory:
        self.history_reads += 1
        return await super().histories()


def entry_naming(filename: str) -> dict[str, Any]:
    image = {"filename": filename, "subfolder": "@gpu0", "type": "output"}
    return {"outputs": {"9": {"images": [image]}}, "status": {"messages": []}}


async def test_kept_outputs_are_indexed_only_once_keys_are_configured() -> None:
    store = CountingStore()
    await store.put_pin(Pin("p1", "gpu0", "d", b"answer", tenant="alice"))
    await store.put_history("p1", entry_naming("alice_00001_.png"))
    keys: list[str] = []
    owners = Owners(store, lambda: bool(keys))
    location = locate("output", "@gpu0", "alice_00001_.png")
    ref = (location.key.type, location.client_subfolder, location.key.name)

    await owners.index_kept()  # a start without keys: nothing read
    assert store.history_reads == 0
    assert owners.file_owner(ref) == (False, None)

    keys.append("alice")  # a reload added a key
    await owners.index_kept()
    assert owners.file_owner(ref) == (True, "alice")
    await owners.index_kept()  # read once
    assert store.history_reads == 1
