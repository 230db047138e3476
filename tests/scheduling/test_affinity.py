"""model_affinity's choices: exactly least_loaded when every backend holds the
prompt's models, whatever their measured run times; a backend is not taken
for slow because it loaded models (its loads count once); a job waits for
a full warm backend that would finish it sooner until it has waited what it
saves (its own time and later reloads); work stealing moves a job only where
it finishes sooner; the warm lookahead is configurable."""

from __future__ import annotations

import random

import pytest
from scheduling.test_picker import cand

from balancer.config.errors import ConfigError
from balancer.config.load import parse_settings
from balancer.config.routing_settings import RoutingSettings
from balancer.scheduling import Candidate, Chosen, Picker, Wait
from balancer.scheduling.filters import DEFAULT_FILTERS, room_filter
from balancer.scheduling.policies import build_policy
from balancer.scheduling.scores import expected_finish, least_loaded, model_affinity

LATE = (*DEFAULT_FILTERS, room_filter(1))


def one_model_trace(seed: int, steps: int, spread: float = 1.0) -> list[list[Candidate]]:
    """Snapshots of 4 backends that all hold the prompt's model: loads vary,
    the pool's job time is learnt as it goes, and each backend's measured
    slowness is drawn from 1.0 to `spread` (1.0: equally fast)."""
    rng = random.Random(seed)
    trace = []
    for _ in range(steps):
        job_time = rng.uniform(0.5, 30.0)
        trace.append(
            [
                cand(f"gpu{i}", i, rng.randint(0, 2), job_time=job_time, slowness=s)
                for i, s in enumerate(rng.uniform(1.0, spread) for _ in range(4))
            ]
        )
    return trace


def test_with_one_model_everywhere_affinity_chooses_exactly_as_least_loaded() -> None:
    trace = one_model_trace(seed=7, steps=500)
    affinity = build_policy(RoutingSettings(policy="model_affinity"))
    plain = build_policy(RoutingSettings(policy="least_loaded"))
    waited = random.Random(8)
    ours = [affinity.place(c, waited.uniform(0, 60)) for c in trace]
    theirs = [plain.place(c, 0.0) for c in trace]
    assert ours == theirs
    assert {type(p).__name__ for p in ours} == {"Chosen", "NoBackend"}  # binds, and all busy


def test_with_one_model_everywhere_run_time_spread_changes_nothing() -> None:
    """Identical GPUs measured on a loaded machine looked up to 1.41x slower
    than the fastest: noise, which must not send a job elsewhere than
    least_loaded would (the one-model trace of bench affinity)."""
    trace = one_model_trace(seed=11, steps=500, spread=2.0)
    affinity = build_policy(RoutingSettings(policy="model_affinity"))
    plain = build_policy(RoutingSettings(policy="least_loaded"))
    waited = random.Random(12)
    ours = [affinity.place(c, waited.uniform(0, 60)) for c in trace]
    assert ours == [plain.place(c, 0.0) for c in trace]
    speedy = build_policy(RoutingSettings(policy="expected_finish"))
    assert [speedy.place(c, 0.0) for c in trace] != ours  # the spread is there to see


def test_a_backend_is_not_taken_for_slow_because_it_loaded_models() -> None:
    """Its median run time counts its cold runs; model_affinity counts the
    loads themselves, once, and ranks a warm backend by its queue alone."""
    loaded = cand("loaded", 0, 1, job_time=1.0, slowness=2.0)  # holds the model now
    other = cand("other", 1, 0, job_time=1.0, cold_load=1.5)
    assert model_affinity(loaded) == 2.0  # its running job and this one
    assert model_affinity(other) == 2.5  # this one and the load
    assert Picker(LATE, model_affinity).pick([loaded._replace(load=0), other]) == Chosen("loaded")
    assert expected_finish(loaded) == 4.0  # speed stays expected_finish's to weigh


def test_a_job_waits_for_its_warm_backend_until_it_waited_what_that_saves() -> None:
    picker = Picker(LATE, model_affinity, warm_lookahead=16)
    warm_full = cand("warm", 0, 2, job_time=1.0)  # finishes it in 3 s
    cold_idle = cand("cold", 1, 0, job_time=1.0, cold_load=6.0, evicts=4.0)  # in 7 s
    # Waiting saves 4 s of its own time and 4 s of reloads for later jobs:
    assert picker.place([warm_full, cold_idle], waited=0.0) == Wait("warm")
    assert picker.place([warm_full, cold_idle], waited=7.9) == Wait("warm")
    assert picker.place([warm_full, cold_idle], waited=8.0) == Chosen("cold")  # rent paid
    free_slot = cold_idle._replace(evicts=0.0)  # evicts nothing: only its own 4 s count
    assert picker.place([warm_full, free_slot], waited=3.9) == Wait("warm")
    assert picker.place([warm_full, free_slot], waited=4.0) == Chosen("cold")
    cheap = cold_idle._replace(cold_load=1.5, evicts=0.0)  # 2.5 s: loading beats the queue
    assert picker.place([warm_full, cheap], waited=0.0) == Chosen("cold")
    never = Picker(LATE, model_affinity, warm_lookahead=0)
    assert never.place([warm_full, cold_idle], waited=0.0) == Chosen("cold")


def test_least_loaded_never_waits_for_a_full_backend() -> None:
    picker = Picker(LATE, least_loaded, warm_lookahead=16)
    pool = [cand("full", 0, 2), cand("idle", 1, 0, cold_load=99.0)]
    assert picker.place(pool, waited=0.0) == Chosen("idle")


def test_work_stealing_moves_a_job_only_where_it_would_finish_sooner() -> None:
    stay = cand("owner", 0, 1, job_time=1.0)  # one running job ahead of it
    warm_idle = cand("idle", 1, 0, job_time=1.0)
    cold_idle = warm_idle._replace(cold_load=2.0)
    affinity = build_policy(RoutingSettings(policy="model_affinity"))
    assert affinity.worth_moving(stay, warm_idle)
    assert not affinity.worth_moving(stay, cold_idle)  # 3 s there against 2 s here
    plain = build_policy(RoutingSettings())
    assert plain.worth_moving(stay, cold_idle)  # least_loaded moves it whatever it costs


def test_warm_lookahead_is_configurable_and_checked_with_the_rest() -> None:
    backends = [{"url": "http://127.0.0.1:8189"}]
    routing = {"policy": "model_affinity", "warm_lookahead": 4}
    settings = parse_settings({"backends": backends, "routing": routing})
    assert build_policy(settings.routing).warm_lookahead == 4
    assert build_policy(RoutingSettings(policy="model_affinity")).warm_lookahead == 16
    bad = {"policy": "least_loaded", "warm_lookahead": 4, "max_queue": 0}
    with pytest.raises(ConfigError) as raised:
        parse_settings({"backends": backends, "routing": bad})
    errors = str(raised.value)
    assert "routing.warm_lookahead: applies to policy model_affinity only" in errors
    assert "routing.max_queue" in errors  # reported together
    with pytest.raises(ConfigError, match=r"routing\.warm_lookahead"):
        parse_settings({"backends": backends, "routing": {"warm_lookahead": -1}})
