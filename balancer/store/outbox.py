"""The webhook outbox: each webhook a job's end owes its client, kept in the
store from the move that ended the job until it is delivered or given up on.

The move that ends a job writes what its webhook owes in the same atomic
step (`Store.transition(..., owed)`), so no job ends without its webhook
owed. A sender holds an entry while it delivers it (`holder`, until
`until`, wall-clock seconds) and holds it again before each retry; an entry
whose hold lapsed (its sender died or stopped) is taken by the next sender
that sweeps (`claim_owed`), one at a time: the claim is atomic. Delivery is
at least once: a sender that dies after the receiver took a webhook and
before it settled the entry leaves it to be sent again, with the same
`key` (the `Idempotency-Key` header).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Owed:
    """A webhook owed: `body` to POST to `url`, for the end `key` names."""

    key: str  # `<prompt_id>:<status>`, sent as the Idempotency-Key header
    prompt_id: str
    url: str
    body: bytes
    holder: str  # the sender delivering it (a replica's name)
    until: float  # wall-clock seconds: its hold lapses then

    def claimable(self, holder: str, now: float, mine: bool) -> bool:
        """Whether `holder` may take it now: its hold lapsed, or (`mine`,
        a start) it is held under `holder`'s own name (a former process)."""
        return self.until <= now or (mine and self.holder == holder)


def owed_key(prompt_id: str, status: str) -> str:
    return f"{prompt_id}:{status}"


class MemoryOutbox:
    """The outbox of one process's memory (MemoryStore's)."""

    def __init__(self) -> None:
        self._owed: dict[str, Owed] = {}

    def put(self, owed: Owed) -> None:
        self._owed[owed.key] = owed

    def claim(self, holder: str, now: float, until: float, mine: bool) -> list[Owed]:
        taken = [
            replace(owed, holder=holder, until=until)
            for owed in self._owed.values()
            if owed.claimable(holder, now, mine)
        ]
        self._owed.update((owed.key, owed) for owed in taken)
        return taken

    def hold(self, key: str, holder: str, until: float) -> bool:
        owed = self._owed.get(key)
        if owed is None or owed.holder != holder:
            return False
        self._owed[key] = replace(owed, until=until)
        return True

    def settle(self, key: str) -> None:
        self._owed.pop(key, None)

    def __len__(self) -> int:
        return len(self._owed)
