"""What a prompt needs of a backend: every node class, and every literal
value it gives an input (checked only where the backend's catalogue says the
input is a combo). Linked inputs are skipped, and so are values the balancer
places itself: uploads (` [input]`-style annotations) and `@backend` outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from balancer.catalog.model import Catalogue

ANNOTATIONS = (" [input]", " [output]", " [temp]")


@dataclass(frozen=True)
class Value:
    node_id: str
    class_type: str
    input: str
    value: str


@dataclass(frozen=True)
class Needs:
    nodes: tuple[tuple[str, str], ...] = ()  # (node_id, class_type)
    values: tuple[Value, ...] = ()

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(class_type for _, class_type in self.nodes)


# A missing class (node_id, class_type), or a combo value not in the list.
Unmet = Value | tuple[str, str]


def placed_by_balancer(value: str) -> bool:
    """Files the balancer puts on the chosen backend before it forwards."""
    return value.startswith("@") or value.endswith(ANNOTATIONS)


def needs_of(prompt: Any) -> Needs:
    """The needs of a prompt (API format). Malformed nodes are left to the
    backend's own validation."""
    nodes: list[tuple[str, str]] = []
    values: list[Value] = []
    for node_id, node in prompt.items() if isinstance(prompt, dict) else ():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not isinstance(class_type, str):
            continue
        nodes.append((str(node_id), class_type))
        inputs = node.get("inputs")
        for name, value in inputs.items() if isinstance(inputs, dict) else ():
            if isinstance(value, str) and not placed_by_balancer(value):
                values.append(Value(str(node_id), class_type, str(name), value))
    return Needs(tuple(nodes), tuple(values))


def unmet(catalogue: Catalogue, needs: Needs) -> list[Unmet]:
    """What `catalogue` lacks: (node_id, class_type) for a missing class, a
    Value for a combo value not in its list. Empty: it can run the prompt."""
    nodes = [node for node in needs.nodes if node[1] not in catalogue.classes]
    absent = {class_type for _, class_type in nodes}
    missing: list[Unmet] = list(nodes)
    missing += [
        v
        for v in needs.values
        if v.class_type not in absent and not catalogue.offers((v.class_type, v.input), v.value)
    ]
    return missing


def capable(catalogue: Catalogue | None, needs: Needs) -> bool:
    """Unknown is not capable."""
    return catalogue is not None and not unmet(catalogue, needs)


def unmet_everywhere(catalogues: Iterable[Catalogue], needs: Needs) -> list[Unmet]:
    """Why no catalogue can run the prompt: what none of them offers, or, when
    each lacks something different (a model only on gpu0, a node only on
    gpu1), what the closest one lacks. Empty when one of them can run it or
    there are none."""
    lists = [unmet(c, needs) for c in catalogues]
    if not lists or any(not items for items in lists):
        return []
    common = [item for item in lists[0] if all(item in items for items in lists[1:])]
    return common or min(lists, key=len)
