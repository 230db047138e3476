"""Sends webhooks in the background: observes job ends, never delays them.

The URL is the job's `extra_data.webhook` (from its kept history entry, or
as noted at submission) or `webhooks.url`. Each delivery is retried with
exponential backoff up to `webhooks.max_attempts`; deliveries in flight are
bounded, and beyond the bound an event is dropped with a log line.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from balancer.config.delivery_settings import WebhookSettings
from balancer.jobs.events import JobEvent
from balancer.logs import get_logger
from balancer.store import Store
from balancer.tasks import settle
from balancer.webhooks import event as payload
from balancer.webhooks.policy import refusal, requested_url

log = get_logger("balancer.webhooks")

ENDS = frozenset({"completed", "failed", "interrupted"})
MAX_IN_FLIGHT = 256
MAX_NOTED = 100_000
Sleep = Callable[[float], Awaitable[None]]


class Webhooks:
    def __init__(
        self,
        settings: Callable[[], WebhookSettings],
        store: Store,
        session: aiohttp.ClientSession,
        default_base: str,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.store = store
        self.session = session
        self.default_base = default_base
        self.sleep = sleep
        self.tasks: set[asyncio.Task[bool]] = set()
        self._noted: OrderedDict[str, tuple[str | None, str]] = OrderedDict()

    def note(self, prompt_id: str, url: str | None, base_url: str) -> None:
        """At submission: the job's own URL and the balancer's URL as its
        client saw it (for absolute /view links)."""
        self._noted[prompt_id] = (url, base_url)
        while len(self._noted) > MAX_NOTED:
            self._noted.popitem(last=False)

    async def job_event(self, event: JobEvent) -> None:
        if event.phase not in ENDS:
            return
        entry = event.entry
        if entry is None:
            entry = await self.store.get_history(event.prompt_id)
        url, base = self._noted.pop(event.prompt_id, (None, self.default_base))
        url = url or _entry_url(entry) or self.settings().url
        if url is None:
            return
        problem = refusal(self.settings(), url)
        if problem is not None:
            log.warning("webhook_refused", prompt_id=event.prompt_id, reason=problem)
            return
        if len(self.tasks) >= MAX_IN_FLIGHT:
            log.warning("webhook_dropped", prompt_id=event.prompt_id, reason="too many in flight")
            return
        body = json.dumps(payload.build(event, entry, base)).encode()
        task = asyncio.get_running_loop().create_task(self.deliver(event.prompt_id, url, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def deliver(self, prompt_id: str, url: str, body: bytes) -> bool:
        settings = self.settings()
        headers = {
            "Content-Type": "application/json",
            payload.SIGNATURE_HEADER: payload.sign(settings.secret or "", body),
        }
        timeout = aiohttp.ClientTimeout(total=settings.timeout)
        try:
            return await self._attempts(prompt_id, url, body, headers, timeout)
        except asyncio.CancelledError:  # shutdown's deadline: not kept for a next start
            log.warning("webhook_undelivered", prompt_id=prompt_id, reason="cut at shutdown")
            raise

    async def _attempts(
        self,
        prompt_id: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> bool:
        settings = self.settings()
        for attempt in range(1, settings.max_attempts + 1):
            problem = await self._post(url, body, headers, timeout)
            if problem is None:
                log.info("webhook_sent", prompt_id=prompt_id, attempt=attempt)
                return True
            log.warning("webhook_failed", prompt_id=prompt_id, attempt=attempt, error=problem)
            if attempt < settings.max_attempts:
                await self.sleep(0.5 * 2 ** (attempt - 1))
        return False

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> str | None:
        try:
            async with self.session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                return None if 200 <= resp.status < 300 else f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests, shutdown)."""
        await settle(self.tasks)


def _entry_url(entry: Any) -> str | None:
    prompt = entry.get("prompt") if isinstance(entry, dict) else None
    extra = prompt[3] if isinstance(prompt, list) and len(prompt) > 3 else None
    url = requested_url({"extra_data": extra})
    return url if isinstance(url, str) else None
