"""One JSON message from a backend's channel, as the relay passes it on.

A client is sent the backend's own text while the relay has not changed
the message's data (most events: progress, executing, previews' order
events), so it is not encoded a second time per event; an event whose data
the relay rewrites (`executed`, its output files renamed) is encoded again.
The backend's text is only reused when the message is ComfyUI's shape, a
`type` and a `data` and nothing else, so a client gets exactly what it would
get from an event encoded anew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from balancer.proxy.ws_socket import event


@dataclass(frozen=True, slots=True)
class BackendEvent:
    type: str
    data: dict[str, Any]
    raw: str | None = None  # the backend's text for exactly this type and data

    @staticmethod
    def of(
        message: dict[str, Any], type_: str, data: dict[str, Any], raw: str | None
    ) -> BackendEvent:
        """`message` (parsed from `raw`, when given), of this type and data."""
        return BackendEvent(type_, data, raw if len(message) == 2 else None)

    def frame(self) -> str:
        """The text a client is sent."""
        return self.raw if self.raw is not None else event(self.type, self.data)

    def with_data(self, data: dict[str, Any]) -> BackendEvent:
        """The same event with other data (encoded anew when sent)."""
        return BackendEvent(self.type, data)
