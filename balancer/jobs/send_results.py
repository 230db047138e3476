"""What a send of one job to one backend came to (dispatch.Dispatcher.send):
the backend queued it, refused it, was never reached, or may or may not
have it; or nothing was sent (the job was gone, or no slot was free)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Accepted:
    """The backend queued it; `body` is its answer with the pool's number."""

    body: bytes


@dataclass(frozen=True)
class Refused:
    """The backend's own refusal (a validation error), to pass through."""

    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Unreachable:
    """The connection was never made: the backend saw nothing."""


@dataclass(frozen=True)
class Broken:
    """The request failed after it left: the backend may or may not have it."""

    detail: str


@dataclass(frozen=True)
class Gone:
    """The job was removed before it could be sent: nothing was sent."""


@dataclass(frozen=True)
class NoRoom:
    """Other replicas hold every slot of the backend: nothing was sent."""


SendResult = Accepted | Refused | Unreachable | Broken | Gone | NoRoom
