"""The ordered set of backends the balancer fronts, as registered in YAML."""

from __future__ import annotations

from collections.abc import Iterator

from balancer.backends.state import Backend
from balancer.config.backend_settings import BackendSettings


class Registry:
    """Backends in file order, by name."""

    def __init__(self, settings: tuple[BackendSettings, ...]) -> None:
        self._backends = {s.name: Backend(s, i) for i, s in enumerate(settings)}

    def __iter__(self) -> Iterator[Backend]:
        # A copy: backends come and go (admin API, reload) while callers await.
        return iter(list(self._backends.values()))

    def add(self, settings: BackendSettings) -> Backend:
        """Register a new backend after the others; it is down until probed."""
        if settings.name in self._backends:
            raise ValueError(f"backend {settings.name!r} already exists")
        order = max((b.order for b in self._backends.values()), default=-1) + 1
        backend = self._backends[settings.name] = Backend(settings, order)
        return backend

    def remove(self, name: str) -> Backend | None:
        return self._backends.pop(name, None)

    def update(self, settings: BackendSettings) -> Backend:
        """New settings for a registered backend; its state is kept."""
        backend = self._backends[settings.name]
        backend.settings = settings
        return backend

    def __len__(self) -> int:
        return len(self._backends)

    def get(self, name: str) -> Backend | None:
        return self._backends.get(name)

    def healthy(self) -> list[Backend]:
        return [b for b in self if b.healthy]

    def primary(self) -> Backend | None:
        """Where unpinned traffic goes: the healthy `primary: true` backend,
        else the first healthy one in file order."""
        healthy = self.healthy()
        for backend in healthy:
            if backend.settings.primary:
                return backend
        return healthy[0] if healthy else None
