"""Where each job this balancer follows was sent, by job and by backend.

Written by the follower only (a dispatch, an adoption, a restart's restore,
the events after which that run is no longer the job's own). Read by work
stealing among replicas (it moves only these jobs) and by the prober: a
backend whose pushes say its queue is empty but that holds a job followed
here is still read, so a run that ended while nobody was told is reconciled.
"""

from __future__ import annotations

from collections.abc import Collection


class Followed:
    def __init__(self) -> None:
        self._to: dict[str, str] = {}  # prompt_id -> backend
        self._on: dict[str, set[str]] = {}  # backend -> prompt_ids

    def sent(self, prompt_id: str, backend: str) -> None:
        """The job is followed on `backend` now (and nowhere else)."""
        self.left(prompt_id)
        self._to[prompt_id] = backend
        self._on.setdefault(backend, set()).add(prompt_id)

    def found(self, prompt_id: str, backend: str) -> None:
        """Followed on `backend` unless it is followed somewhere already."""
        if prompt_id not in self._to:
            self.sent(prompt_id, backend)

    def left(self, prompt_id: str) -> None:
        backend = self._to.pop(prompt_id, None)
        if backend is None:
            return
        ids = self._on[backend]
        ids.discard(prompt_id)
        if not ids:
            del self._on[backend]

    def on(self, backend: str) -> Collection[str]:
        """The jobs followed on `backend`."""
        return self._on.get(backend, ())

    def clear(self) -> None:
        self._to.clear()
        self._on.clear()
