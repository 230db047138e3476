"""The store's records and the interface every store implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Pin:
    """prompt_id -> the backend that owns it, and the first answer given.

    `digest` identifies the workflow so an identical retry gets `answer`
    again and a different workflow under the same id is refused.
    """

    prompt_id: str
    backend: str
    digest: str
    answer: bytes
    client_id: str | None = None


class Store(Protocol):
    def get_pin(self, prompt_id: str) -> Pin | None: ...

    def put_pin(self, pin: Pin) -> None: ...

    def remove_pin(self, prompt_id: str) -> None: ...

    def pins_of(self, backend: str) -> list[Pin]: ...

    def put_history(self, prompt_id: str, entry: Any) -> None: ...

    def get_history(self, prompt_id: str) -> Any | None: ...

    def remove_history(self, prompt_id: str) -> None: ...

    def histories(self) -> dict[str, Any]: ...
