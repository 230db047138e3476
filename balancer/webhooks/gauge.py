"""`comfyui_balancer_webhooks_owed`: how many webhooks the outbox holds (owed,
not yet delivered nor given up on), read from the store at each scrape. With
several replicas the outbox is shared, so every replica shows the pool's
count. A store that cannot answer leaves the series out of that scrape: an
unread count is not 0 owed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from balancer.logs import get_logger
from balancer.store.model import StoreUnavailable

log = get_logger("balancer.webhooks")

NAME = "comfyui_balancer_webhooks_owed"


class OwedGauge:
    """A prometheus collector: the count read last (`read`), if it was read."""

    def __init__(self) -> None:
        self.count: int | None = None

    async def read(self, count_owed: Callable[[], Awaitable[int]]) -> None:
        try:
            self.count = await count_owed()
        except StoreUnavailable as exc:
            self.count = None
            log.warning("webhooks_owed_unread", error=str(exc))

    def collect(self) -> Iterator[Metric]:
        if self.count is not None:
            help_ = "webhooks owed: in the outbox, not yet delivered nor given up on (pool-wide)"
            family = GaugeMetricFamily(NAME, help_)
            family.add_metric([], float(self.count))
            yield family
