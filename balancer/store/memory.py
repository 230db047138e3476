"""The in-memory store: fast, and gone when the process ends."""

from __future__ import annotations

from balancer.store.model import Pin


class MemoryStore:
    def __init__(self) -> None:
        self._pins: dict[str, Pin] = {}

    def get_pin(self, prompt_id: str) -> Pin | None:
        return self._pins.get(prompt_id)

    def put_pin(self, pin: Pin) -> None:
        self._pins[pin.prompt_id] = pin

    def remove_pin(self, prompt_id: str) -> None:
        self._pins.pop(prompt_id, None)

    def pins_of(self, backend: str) -> list[Pin]:
        return [p for p in self._pins.values() if p.backend == backend]
