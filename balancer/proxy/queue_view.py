"""GET /queue's answer, built once per set of backend answers.

Presenting the backends' queues (the pool's `number` and each client's own
client_id: store reads per item) and encoding the answer are most of what a
`/queue` costs the balancer. Both depend only on the backends' answers, kept
until a backend may have changed them (`KeptReads`: each answer asked anew
is a new object), and on the store's record of each job they list, which
does not change while a backend lists it (its number and client are
recorded before it is sent). So the presented part is built once per set of
answers (compared by identity), and its encoding once after that.
"""

from __future__ import annotations

import json
import operator
from typing import Any

from balancer.proxy import merge
from balancer.proxy.presenter import present_queue_item
from balancer.store import Store

Presented = dict[str, list[Any]]


class QueueView:
    def __init__(self) -> None:
        self._answers: tuple[Any, ...] | None = None
        self._presented: Presented = {}
        self._body: bytes | None = None

    async def presented(self, store: Store, answers: list[Any]) -> Presented:
        """The backends' queues merged and presented: a dict of new lists
        (the caller may add to them)."""
        if not self._same(answers):
            merged = merge.merge_queues(answers, lambda item: item)
            presented = {
                key: [await present_queue_item(store, item) for item in items]
                for key, items in merged.items()
            }
            self._answers, self._presented, self._body = tuple(answers), presented, None
        return {key: list(items) for key, items in self._presented.items()}

    def body(self, answers: list[Any]) -> bytes | None:
        """The encoded answer when it is the presented part of `answers`
        alone; None when those are not the answers presented last."""
        if not self._same(answers):
            return None
        if self._body is None:
            self._body = json.dumps(self._presented).encode()
        return self._body

    def _same(self, answers: list[Any]) -> bool:
        last = self._answers
        return (
            last is not None and len(last) == len(answers) and all(map(operator.is_, last, answers))
        )
