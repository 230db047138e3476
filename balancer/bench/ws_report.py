"""The rows of `bench ws`: a broadcast phase, CPU per job, direct vs via."""

from __future__ import annotations

from dataclasses import dataclass

from balancer.bench.ws_probe import median, ms, quantile


@dataclass(frozen=True)
class Phase:
    jobs: int
    seconds: float
    added: list[float]
    missing: int
    dropped: int

    def rows(self, title: str, samples: int) -> list[list[object]]:
        events = (len(self.added) + self.missing) // max(1, samples)
        return [
            [title, f"{self.jobs} jobs, {events} events, {self.seconds:.1f} s", ""],
            ["  added latency p50", ms(median(self.added)), "< 1 ms"],
            ["  added latency p99", ms(quantile(self.added, 0.99)), ""],
            ["  added latency max", ms(max(self.added, default=float("nan"))), ""],
            ["  pairs missing / sockets dropped", f"{self.missing} / {self.dropped}", "0 / 0"],
        ]


def cpu_rows(balancer: float, floor: float, sockets: int) -> list[list[object]]:
    """CPU per paced broadcast job: the balancer against the plain relay."""
    return [
        [f"CPU per broadcast job, {sockets} sockets", "(paced phase)", ""],
        ["  floor (plain aiohttp relay)", ms(floor), ""],
        ["  balancer / ratio to floor", f"{ms(balancer)} / {balancer / floor:.2f}x", "< 1.5x"],
    ]


def ratio(direct: float, via: float) -> str:
    return f"{ms(direct)} / {ms(via)} / {via / direct:.2f}x"


def per_pair(sched: tuple[float, ...], pairs: int) -> str:
    """The balancer's time on a core and waiting for one, per pair of jobs,
    from `cores.scheduled_ms` before and after them."""
    ran, waited = sched[2] - sched[0], sched[3] - sched[1]
    return f"{ran / pairs:.2f} ms / {waited / pairs:.2f} ms a pair"
