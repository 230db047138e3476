from balancer.backends.state import Backend, LoadSnapshot
from balancer.config.backend_settings import BackendSettings, ProbeSettings

PROBE = ProbeSettings(unhealthy_after=3, healthy_after=1, stale_after=5.0)


def snap(at: float, running: int = 0, pending: int = 0) -> LoadSnapshot:
    return LoadSnapshot(at, ("r",) * running, ("p",) * pending, 100, 50)


def backend() -> Backend:
    return Backend(BackendSettings(name="gpu0", url="http://127.0.0.1:1"), 0)


def test_one_failure_is_not_death() -> None:
    b = backend()
    assert b.record_success(snap(0.0), PROBE) is True
    assert b.record_failure("slow", PROBE) is False
    assert b.record_failure("slow", PROBE) is False
    assert b.healthy
    assert b.record_failure("slow", PROBE) is True
    assert not b.healthy


def test_unknown_load_until_first_probe() -> None:
    b = backend()
    assert b.load() is None
    assert not b.is_fresh(0.0, PROBE)


def test_dispatches_count_until_a_later_probe_sees_them() -> None:
    b = backend()
    b.record_success(snap(0.0, running=1), PROBE)
    b.dispatch_started()
    assert b.load() == 2  # in flight counts
    b.dispatch_finished(accepted=True, now=1.0)
    assert b.load() == 2  # accepted after the probe left: still unseen
    b.record_success(snap(0.5, running=1), PROBE)  # probe started before the accept
    assert b.load() == 2
    b.record_success(snap(1.5, running=1, pending=1), PROBE)
    assert b.load() == 2  # now counted by the backend itself, not twice


def test_rejected_dispatch_does_not_count() -> None:
    b = backend()
    b.record_success(snap(0.0), PROBE)
    b.dispatch_started()
    b.dispatch_finished(accepted=False, now=1.0)
    assert b.load() == 0


def test_load_data_goes_stale() -> None:
    b = backend()
    b.record_success(snap(10.0), PROBE)
    assert b.is_fresh(15.0, PROBE)
    assert not b.is_fresh(15.1, PROBE)


def test_the_latest_push_counts_even_at_the_same_instant() -> None:
    backend = Backend(BackendSettings(name="gpu0", url="http://127.0.0.1:1"), 0)
    backend.record_push(3, 10.0)
    backend.record_push(0, 10.0)  # the queue emptied within one clock tick
    assert backend.queue_size() == 0 and backend.load() == 0
