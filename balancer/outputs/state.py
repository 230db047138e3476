"""The sink's state for the status page: can the bucket be reached, the last
error, and how many files wait to be copied. The copier reports each try."""

from __future__ import annotations

from dataclasses import dataclass


class CopyError(Exception):
    """One attempt failed; `source` says whether the backend or the bucket did."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


@dataclass
class SinkState:
    reachable: bool | None = None  # None: nothing tried yet
    last_error: str | None = None
    backlog: int = 0

    def attempt_failed(self, error: CopyError) -> None:
        self.last_error = str(error)
        if error.source == "bucket":
            self.reachable = False

    def reached(self) -> None:
        self.reachable = True

    def document(self) -> dict[str, object]:
        return {"reachable": self.reachable, "last_error": self.last_error, "backlog": self.backlog}
