import asyncio
import time
from typing import get_args

import aiohttp
import pytest

from balancer.backends.registry import Registry
from balancer.catalog.book import Catalogues
from balancer.compose import Injected, assemble
from balancer.config.backend_settings import BackendSettings
from balancer.config.errors import ConfigError
from balancer.config.load import parse_settings
from balancer.config.routing_settings import RoutingPolicy, RoutingSettings
from balancer.config.settings import Settings
from balancer.jobs.ids import mint_prompt_id
from balancer.ops.metrics import Metrics
from balancer.resources import Opened
from balancer.scheduling import Candidate, Chosen, Picker
from balancer.scheduling.filters import DEFAULT_FILTERS
from balancer.scheduling.policies import POLICIES
from balancer.scheduling.scores import least_loaded, round_robin
from balancer.store import MemoryStore
from balancer.upstream import wall_deadline


def cand(name: str, order: int, load: int) -> Candidate:
    return Candidate(name, order, True, True, True, load, None, 0)


def test_round_robin_scores_every_backend_the_same() -> None:
    assert round_robin(cand("a", 0, 0)) == round_robin(cand("b", 1, 7))


def test_round_robin_takes_backends_in_turn_whatever_their_load() -> None:
    picker = Picker(DEFAULT_FILTERS, round_robin)
    pool = [cand("a", 0, 5), cand("b", 1, 0), cand("c", 2, 9)]
    picks = [picker.pick(pool) for _ in range(6)]
    assert picks == [Chosen(n) for n in "abcabc"]


def test_least_loaded_on_the_same_pool_always_takes_the_idle_one() -> None:
    picker = Picker(DEFAULT_FILTERS, least_loaded)
    pool = [cand("a", 0, 5), cand("b", 1, 0), cand("c", 2, 9)]
    assert {picker.pick(pool) for _ in range(3)} == {Chosen("b")}


def test_every_policy_name_in_the_config_has_a_policy() -> None:
    names = set(get_args(RoutingPolicy))
    assert names == set(POLICIES)


def test_round_robin_sends_at_once_and_least_loaded_binds_late() -> None:
    assert not POLICIES["round_robin"].binds_late
    assert POLICIES["least_loaded"].binds_late


def test_policy_is_read_from_the_config_and_checked() -> None:
    backends = [{"url": "http://127.0.0.1:8189"}]
    assert parse_settings({"backends": backends}).routing.policy == "least_loaded"
    chosen = parse_settings({"backends": backends, "routing": {"policy": "round_robin"}})
    assert chosen.routing.policy == "round_robin"
    with pytest.raises(ConfigError, match="policy"):
        parse_settings({"backends": backends, "routing": {"policy": "random"}})


@pytest.mark.parametrize(
    ("routing", "room"),
    [
        (RoutingSettings(), True),
        (RoutingSettings(max_pending_per_backend=None), False),
        (RoutingSettings(policy="round_robin"), False),
        (RoutingSettings(policy="round_robin", max_pending_per_backend=3), False),
    ],
)
async def test_assemble_adds_the_room_filter_only_for_late_binding(
    routing: RoutingSettings, room: bool
) -> None:
    settings = Settings(backends=(BackendSettings("a", "http://127.0.0.1:1"),), routing=routing)
    registry, catalogues = Registry(settings.backends), Catalogues()
    metrics = Metrics(lambda: registry, catalogues.main_models)
    async with aiohttp.ClientSession() as http:
        opened = Opened(http, MemoryStore(), None, http)
        given = Injected(time.monotonic, time.time, mint_prompt_id, asyncio.sleep, wall_deadline)
        parts = assemble(settings, registry, catalogues, metrics, opened, given)
    picker = parts.balancer.dispatcher.picker
    assert ("all_busy" in [f.outcome for f in picker.filters]) is room
    assert picker.score is POLICIES[routing.policy].score
