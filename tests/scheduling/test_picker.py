from balancer.scheduling import Candidate, Chosen, NoBackend, Picker

GiB = 1024**3


def cand(name: str, order: int, load: int | None = 0, **kw: object) -> Candidate:
    fields: dict[str, object] = {
        "healthy": True,
        "channel_up": True,
        "fresh": True,
        "vram_free": 20 * GiB,
        "min_free_vram": 0,
    }
    fields.update(kw)
    return Candidate(name=name, order=order, load=load, **fields)  # type: ignore[arg-type]


def test_least_loaded_wins() -> None:
    picker = Picker()
    assert picker.pick([cand("a", 0, 3), cand("b", 1, 1), cand("c", 2, 2)]) == Chosen("b")


def test_ties_rotate_in_file_order() -> None:
    picker = Picker()
    pool = [cand("a", 0, 1), cand("b", 1, 1), cand("c", 2, 5)]
    picks = [picker.pick(pool) for _ in range(4)]
    assert picks == [Chosen("a"), Chosen("b"), Chosen("a"), Chosen("b")]


def test_down_backends_are_skipped_even_when_idle() -> None:
    picker = Picker()
    assert picker.pick([cand("a", 0, 0, healthy=False), cand("b", 1, 9)]) == Chosen("b")


def test_stale_or_unknown_load_is_never_idle() -> None:
    picker = Picker()
    pool = [cand("a", 0, 0, fresh=False), cand("b", 1, None), cand("c", 2, 7)]
    assert picker.pick(pool) == Chosen("c")


def test_vram_filter_uses_each_backends_requirement() -> None:
    picker = Picker()
    pool = [
        cand("a", 0, 0, vram_free=4 * GiB, min_free_vram=8 * GiB),
        cand("b", 1, 3, vram_free=9 * GiB, min_free_vram=8 * GiB),
    ]
    assert picker.pick(pool) == Chosen("b")


def test_missing_vram_figures_fail_a_vram_requirement() -> None:
    picker = Picker()
    pool = [cand("a", 0, 0, vram_free=None, min_free_vram=1)]
    assert picker.pick(pool) == NoBackend("not_enough_vram", "no backend has enough free VRAM")


def test_no_backend_names_the_filter_that_emptied_the_pool() -> None:
    picker = Picker()
    assert isinstance(picker.pick([]), NoBackend)
    down = picker.pick([cand("a", 0, healthy=False)])
    stale = picker.pick([cand("a", 0, fresh=False)])
    assert isinstance(down, NoBackend) and down.outcome == "all_down"
    assert isinstance(stale, NoBackend) and stale.outcome == "all_stale"


def test_a_backend_without_an_event_channel_takes_no_prompts() -> None:
    picker = Picker()
    assert picker.pick([cand("a", 0, 0, channel_up=False), cand("b", 1, 4)]) == Chosen("b")


def test_expected_finish_prefers_the_faster_of_two_idle_backends() -> None:
    from balancer.scheduling.scores import expected_finish

    picker = Picker(score=expected_finish)
    pool = [cand("slow", 0, 0, slowness=2.0), cand("fast", 1, 0)]
    assert [picker.pick(pool) for _ in range(3)] == [Chosen("fast")] * 3
    busy_fast = [cand("slow", 0, 0, slowness=2.0), cand("fast", 1, 2)]
    assert picker.pick(busy_fast) == Chosen("slow"), "3 runs on fast > 1 run on slow x 2"


def test_relative_slowness_needs_runs_and_ignores_small_spread() -> None:
    from balancer.backends.state import Backend
    from balancer.catalog.fit import Fit
    from balancer.config.backend_settings import BackendSettings, ProbeSettings
    from balancer.scheduling import candidates_from

    def backend(name: str, times: list[float]) -> Backend:
        b = Backend(BackendSettings(name=name, url="http://x:1"), 0)
        for t in times:
            b.record_run(t)
        return b

    pool = [backend("a", [1.0] * 3), backend("b", [1.1] * 3), backend("c", [2.0] * 3)]
    pool.append(backend("d", [0.5, 0.5]))  # too few runs to judge, even as the fastest
    candidates = candidates_from(pool, 0.0, ProbeSettings(), lambda _name: Fit())
    slowness = {c.name: c.slowness for c in candidates}
    assert slowness == {"a": 1.0, "b": 1.0, "c": 2.0, "d": 1.0}
