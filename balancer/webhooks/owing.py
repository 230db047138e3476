"""Which webhook a job's end owes: made when the move that ends the job is
about to be stored, and written to the outbox by that move (store/outbox.py).

The URL is the job's `extra_data.webhook` (as noted at submission, or from
its kept history entry) or `webhooks.url`; a URL `webhooks.allow` refuses
owes nothing (logged). The body is signed at each delivery (sender.py)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from balancer.backends.state import Clock
from balancer.config.delivery_settings import WebhookSettings
from balancer.jobs.events import Phase
from balancer.jobs.telling import event_of
from balancer.logs import get_logger
from balancer.store.model import StoredJob
from balancer.store.outbox import Owed, owed_key
from balancer.webhooks import event as payload
from balancer.webhooks.policy import refusal, requested_url

log = get_logger("balancer.webhooks")

ENDS = frozenset({"completed", "failed", "interrupted"})
MAX_NOTED = 100_000
# Seconds a sender's hold on a webhook lasts beyond the delivery attempt
# (and the wait before the next) it covers: room for a slow store and for
# the replicas' clocks to differ.
HOLD_SLACK = 10.0


def hold_for(settings: WebhookSettings, gap: float) -> float:
    """How long a hold covers one attempt and then a wait of `gap` seconds."""
    return settings.timeout + gap + HOLD_SLACK


class Owing:
    """`holder`: the name this process delivers under (its replica's)."""

    def __init__(
        self,
        settings: Callable[[], WebhookSettings],
        default_base: str,
        holder: str,
        wall: Clock,
    ) -> None:
        self.settings = settings
        self.default_base = default_base
        self.holder = holder
        self.wall = wall
        self._noted: OrderedDict[str, tuple[str | None, str]] = OrderedDict()

    def note(self, prompt_id: str, url: str | None, base_url: str) -> None:
        """At submission: the job's own URL and the balancer's URL as its
        client saw it (for absolute /view links)."""
        self._noted[prompt_id] = (url, base_url)
        while len(self._noted) > MAX_NOTED:
            self._noted.popitem(last=False)

    def forget(self, prompt_id: str) -> None:
        """Its end is stored: the note is needed no more."""
        self._noted.pop(prompt_id, None)

    def owed(self, ended: StoredJob, phase: Phase, detail: str | None, entry: Any) -> Owed | None:
        if phase not in ENDS:
            return None
        prompt_id = ended.prompt_id
        url, base = self._noted.get(prompt_id, (None, self.default_base))
        settings = self.settings()
        url = url or _entry_url(entry) or settings.url
        if url is None:
            return None
        problem = refusal(settings, url)
        if problem is not None:
            log.warning("webhook_refused", prompt_id=prompt_id, reason=problem)
            return None
        event = event_of(ended, phase, detail, entry)
        body = json.dumps(payload.build(event, entry, base)).encode()
        until = self.wall() + hold_for(settings, 0.0)
        return Owed(owed_key(prompt_id, phase), prompt_id, url, body, self.holder, until)


def _entry_url(entry: Any) -> str | None:
    prompt = entry.get("prompt") if isinstance(entry, dict) else None
    extra = prompt[3] if isinstance(prompt, list) and len(prompt) > 3 else None
    url = requested_url({"extra_data": extra})
    return url if isinstance(url, str) else None
