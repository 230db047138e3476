"""A pick is the best-scoring backend among those every filter keeps, ties in
file order taking turns, or the filter that emptied the pool, for any pool:
the picker runs the filters only as far as the scores make it need them."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balancer.config.routing_settings import RoutingPolicy, RoutingSettings
from balancer.scheduling import Candidate, Chosen, NoBackend
from balancer.scheduling.picker import apply_filters
from balancer.scheduling.policies import build_policy

GiB = 1024**3
mostly = st.sampled_from([True, True, True, False])  # most backends pass most filters

candidate_fields = st.fixed_dictionaries(
    {
        "healthy": mostly,
        "channel_up": mostly,
        "fresh": mostly,
        "load": st.none() | st.integers(0, 2),
        "vram_free": st.none() | st.sampled_from([1 * GiB, 8 * GiB]),
        "min_free_vram": st.sampled_from([0, 4 * GiB]),
        "draining": mostly.map(lambda x: not x),
        "slowness": st.sampled_from([1.0, 1.5, 3.0]),
        "capable": mostly,
        "cold_load": st.sampled_from([0.0, 2.0]),
    }
)
POLICIES: tuple[RoutingPolicy, ...] = (
    "least_loaded",
    "expected_finish",
    "model_affinity",
    "round_robin",
)


def filtered_then_scored(
    pool: list[Candidate], policy: RoutingPolicy, picks: int
) -> list[Chosen | NoBackend]:
    """What a pick means, the long way: filter all, score the rest, rotate the ties."""
    picker = build_policy(RoutingSettings(policy=policy))
    eligible = apply_filters(pool, picker.filters)
    if isinstance(eligible, NoBackend):
        return [eligible] * picks
    best = min(map(picker.score, eligible))
    tied = sorted((c for c in eligible if picker.score(c) == best), key=lambda c: c.order)
    return [Chosen(tied[turn % len(tied)].name) for turn in range(picks)]


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(fields=st.lists(candidate_fields, max_size=8), rng=st.randoms())
def test_a_pick_is_the_best_of_what_every_filter_keeps(
    policy: RoutingPolicy, fields: list[dict[str, object]], rng: Random
) -> None:
    orders = rng.sample(range(len(fields)), len(fields))  # file order is not list order
    pool = [Candidate(f"gpu{o}", o, **f) for o, f in zip(orders, fields, strict=True)]  # type: ignore[arg-type]
    picker = build_policy(RoutingSettings(policy=policy))
    assert [picker.pick(pool) for _ in range(3)] == filtered_then_scored(pool, policy, 3)
