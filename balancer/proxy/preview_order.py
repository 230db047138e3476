"""Where a converted preview goes in a plain client's stream.

ComfyUI orders one preview step differently for the two kinds of socket
(recorded in behaviour_ws_frame_order.json): a socket that sent
`feature_flags` gets `progress_state`, the type 4 frame, then `progress`; a
plain socket gets `progress_state`, `progress`, then the type 1 frame. The
balancer's channel is a feature_flags socket, so it receives the first order.
A type 1 frame made for plain clients is therefore held until the next event
of the same prompt has been sent: after it when that event is the step's
`progress`, before it otherwise (a preview is never dropped or delayed past
its job's next event). Nothing else waits: type 4 frames, other binary frames
and every JSON event go out as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable

Delivery = Callable[[], None]


class PlainPreviewOrder:
    """Deliveries of type 1 previews held per prompt, with the backend they came from."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, list[Delivery]]] = {}

    def hold(self, backend: str, prompt_id: str, deliver: Delivery) -> None:
        self._held.setdefault(prompt_id, (backend, []))[1].append(deliver)

    def before(self, prompt_id: object, type_: str) -> Delivery:
        """Called before an event of `prompt_id` is sent: releases its held
        previews now unless the event is `progress`, and returns what to call
        once the event has gone out (the release after a `progress`)."""
        held = self._held.pop(prompt_id, None) if isinstance(prompt_id, str) else None
        if held is None:
            return _nothing
        if type_ != "progress":
            _run(held[1])
            return _nothing
        return lambda: _run(held[1])

    def release_backend(self, backend: str) -> None:
        """The channel closed: no further event will release its previews."""
        for prompt_id, (owner, deliveries) in list(self._held.items()):
            if owner == backend:
                del self._held[prompt_id]
                _run(deliveries)

    def __len__(self) -> int:
        return len(self._held)


def _nothing() -> None:
    return None


def _run(deliveries: list[Delivery]) -> None:
    for deliver in deliveries:
        deliver()
