import pytest

from balancer.bench.ideal import TraceJob, ideal_latencies, mean, quantile


def test_jobs_that_never_overlap_take_their_own_time() -> None:
    jobs = [TraceJob(0.0, 1.0), TraceJob(5.0, 2.0)]
    assert ideal_latencies(jobs, [1.0]) == [1.0, 2.0]


def test_a_busy_single_server_queues_fcfs() -> None:
    # Arrivals 0, 0.5, 1; work 2, 1, 1: finish at 2, 3, 4.
    jobs = [TraceJob(0.0, 2.0), TraceJob(0.5, 1.0), TraceJob(1.0, 1.0)]
    assert ideal_latencies(jobs, [1.0]) == [2.0, 2.5, 3.0]


def test_a_free_fast_server_is_preferred_over_a_free_slow_one() -> None:
    # Server 1 is fast; both are free, so the job goes to it.
    assert ideal_latencies([TraceJob(0.0, 1.0)], [2.0, 1.0]) == [1.0]


def test_a_free_slow_server_is_used_rather_than_waiting_for_the_fast_one() -> None:
    # Job 0 takes the fast server until 4; job 1 starts at once on the slow
    # one (work 1 x 2); job 2 waits for the first to free: slow, at 3.
    jobs = [TraceJob(0.0, 4.0), TraceJob(1.0, 1.0), TraceJob(1.5, 1.0)]
    assert ideal_latencies(jobs, [1.0, 2.0]) == [4.0, 2.0, 3.5]


def test_the_waiting_job_takes_the_first_server_to_free_up() -> None:
    # Both busy: fast until 3, slow until 2 (work 1 x 2); job 2 goes to slow at 2.
    jobs = [TraceJob(0.0, 3.0), TraceJob(0.0, 1.0), TraceJob(0.5, 1.0)]
    assert ideal_latencies(jobs, [1.0, 2.0]) == [3.0, 2.0, 3.5]


def test_results_follow_the_input_order_not_the_arrival_order() -> None:
    jobs = [TraceJob(1.0, 1.0), TraceJob(0.0, 2.0)]
    assert ideal_latencies(jobs, [1.0]) == [2.0, 2.0]


def test_no_servers_is_an_error() -> None:
    with pytest.raises(ValueError):
        ideal_latencies([TraceJob(0.0, 1.0)], [])


def test_mean_and_nearest_rank_quantile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert mean(values) == 50.5
    assert quantile(values, 0.99) == 99.0
    assert quantile(values, 1.0) == 100.0
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
