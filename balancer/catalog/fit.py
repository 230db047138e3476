"""How well one backend fits one prompt, for the scheduler's snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from balancer.backends.registry import Registry
from balancer.catalog.book import Catalogues
from balancer.catalog.needs import Needs, Unmet, capable, unmet_everywhere
from balancer.catalog.residency import Residency, model_values


@dataclass(frozen=True)
class Fit:
    # It has every node class and combo value the prompt uses (unknown: no).
    capable: bool = True
    # Seconds of model loading the prompt would cost there (0: all resident).
    cold_load: float = 0.0
    # Seconds of loading it would push onto later jobs by evicting models.
    evicts: float = 0.0


class Fitter:
    def __init__(self, registry: Registry, catalogues: Catalogues, residency: Residency) -> None:
        self.registry = registry
        self.catalogues = catalogues
        self.residency = residency

    def fit(self, name: str, needs: Needs) -> Fit:
        models = model_values(needs)
        return Fit(
            capable=capable(self.catalogues.get(name), needs),
            cold_load=self.residency.cold_load(name, models),
            evicts=self.residency.evicts(name, models),
        )

    def dispatched(self, prompt_id: str, name: str, needs: Needs) -> None:
        """A backend accepted the prompt: its models will be resident there."""
        self.residency.dispatched(prompt_id, name, model_values(needs))

    def taken_back(self, prompt_id: str) -> None:
        """The prompt left its backend before it ran there (work stealing)."""
        self.residency.taken_back(prompt_id)

    def refusal(self, needs: Needs) -> list[Unmet]:
        """What makes the prompt impossible in this pool, even with every
        backend idle: empty unless the catalogue of every backend in the pool
        is known and none can run it (a backend never read yet might; one
        removed from the pool no longer counts)."""
        catalogues = [self.catalogues.get(b.name) for b in self.registry]
        known = [c for c in catalogues if c is not None]
        if len(known) < len(catalogues):
            return []
        return unmet_everywhere(known, needs)
