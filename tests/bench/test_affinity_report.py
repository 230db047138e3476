"""`bench affinity --repeat`: each run set against least_loaded's run of the
same round, and a run counted worse only beyond least_loaded's own spread."""

from __future__ import annotations

from balancer.bench.affinity_report import Row, noise_line, summary


def rows(trace: str, policy: str, means: list[float]) -> list[Row]:
    return [Row(trace, policy, 200, m, 2 * m, 2.0, run) for run, m in enumerate(means, 1)]


def test_a_run_is_worse_only_beyond_least_loadeds_own_spread() -> None:
    table = [
        *rows("one model", "least_loaded", [2.0, 2.2, 1.8]),  # spread (2.2 - 1.8) / 2.0 = 20 %
        *rows("one model", "model_affinity", [2.3, 2.7, 1.5]),  # +15 %, +23 %, -17 %
    ]
    lines = summary(table).splitlines()
    affinity = next(line for line in lines if "model_affinity" in line)
    assert "| 2.17 s (1.50-2.70) |" in affinity
    assert "0.87x, 0.81x, 1.20x" in affinity
    assert affinity.endswith("| 1 of 3 |")  # only the +23 % run
    assert noise_line(table).endswith("one model 20%")
