"""A stateful property test of the job lifecycle (issue 11): hypothesis
interleaves submits (some `front`), deletes, clears, cancels, interrupts
with and without an id, backend crashes, hangs and pauses, balancer
restarts (stopped cleanly or killed, then started again on its SQLite file
in front of the same backends) and reloads of `routing`, against two
in-process emulated backends. After every step and at the end of each run
it checks, whichever balancer is running by then:

- numbers are strictly increasing in the order prompts were accepted (front
  ones below every earlier one), across restarts, and `/api/jobs` and
  `/history` show the same number;
- a job a removal answered as `cancelled` never runs after that answer;
- once the pool is left to finish, every accepted job has exactly one end,
  visible in `/api/jobs/{id}` (and in `/history/{id}` unless cancelled);
- no job runs twice unless the balancer recorded it as a duplicate, or a
  crash wiped a run's end before the balancer read it (that result is gone,
  so the job runs again: at least once, as promised).

A killed balancer changes nothing after its kill (Pool.restarted); a
real SIGKILL of the process is tests/jobs/test_sigkill.py. Hypothesis runs
in a worker thread; each step runs on the test's event loop. Seed 0 in CI
(`STATEFUL_SEED=<n>` for others, see support.run_stateful)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from store_support import Outage, Reopen
from support import Pool, PoolFactory, StartClient, colored, run_stateful

from balancer.config.backend_settings import ProbeSettings
from balancer.ops.context import OPS
from balancer.ops.reconfigure import apply_settings

BACKENDS = ("gpu0", "gpu1")
ENDS = {"completed", "failed", "cancelled"}


@dataclass
class World:
    pool: Pool  # the running balancer: a new one after each restart
    loop: asyncio.AbstractEventLoop
    restart: Callable[[Pool, bool], Awaitable[Pool]]  # (old, killed) -> new
    restarts: int = 0
    accepted: list[tuple[str, float, bool]] = field(default_factory=list)  # id, number, front
    # Answered as cancelled, with the runs it had by then (ones a crash wiped).
    removed: dict[str, int] = field(default_factory=dict)
    # Runs whose end a crash wiped before the balancer read it.
    wiped: Counter[str] = field(default_factory=Counter)
    colour: int = 0

    def runs(self) -> Counter[str]:
        return Counter(i for e in self.pool.emulators.values() for i in e.executed)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)


def machine(world: World) -> type[RuleBasedStateMachine]:
    async def api_status(prompt_id: str) -> str:
        resp = await world.pool.client.get(f"/api/jobs/{prompt_id}")
        return str((await resp.json())["status"])

    async def note_removed(ids: list[str]) -> None:
        for prompt_id in ids:
            if await api_status(prompt_id) == "cancelled":
                job = await world.pool.balancer.store.get_job(prompt_id)
                if job is not None and job.state == "cancelled":
                    world.removed.setdefault(prompt_id, world.runs()[prompt_id])

    class Lifecycle(RuleBasedStateMachine):
        @initialize()
        def busy_pool(self) -> None:
            """Each run starts with both backends held and five jobs in the
            pool: two running, two in the backends' queues, one waiting here."""
            for emulator in world.pool.emulators.values():
                emulator.pause()
            for _ in range(5):
                self.submit(front=False, client=None)

        @rule(front=st.booleans(), client=st.sampled_from(["a", "b", None]))
        def submit(self, front: bool, client: str | None) -> None:
            world.colour += 1
            body: dict[str, Any] = {"prompt": colored(world.colour % 256), "front": front}
            if client is not None:
                body["client_id"] = client

            async def post() -> None:
                resp = await world.pool.client.post("/prompt", json=body)
                assert resp.status in (200, 429, 503), await resp.text()
                if resp.status == 200:
                    answer = await resp.json()
                    world.accepted.append((answer["prompt_id"], answer["number"], front))

            world.run(post())

        @rule(pick=st.integers(0, 1000), how=st.sampled_from(["delete", "cancel"]))
        def remove(self, pick: int, how: str) -> None:
            if not world.accepted:
                return
            prompt_id = world.accepted[pick % len(world.accepted)][0]

            async def go() -> None:
                if how == "delete":
                    resp = await world.pool.client.post("/queue", json={"delete": [prompt_id]})
                else:
                    resp = await world.pool.client.post(f"/api/jobs/{prompt_id}/cancel")
                assert resp.status == 200
                await note_removed([prompt_id])

            world.run(go())

        @rule()
        def clear(self) -> None:
            async def go() -> None:
                assert (await world.pool.client.post("/queue", json={"clear": True})).status == 200
                await note_removed([i for i, _, _ in world.accepted])

            world.run(go())

        @rule(body=st.sampled_from([{}, {"client_id": "a"}, {"prompt_id": "x"}]))
        def interrupt(self, body: dict[str, Any]) -> None:
            if "prompt_id" in body and world.accepted:
                body = {"prompt_id": world.accepted[-1][0]}
            world.run(world.pool.client.post("/interrupt", json=body))

        @rule(name=st.sampled_from(BACKENDS), paused=st.booleans())
        def pause(self, name: str, paused: bool) -> None:
            emulator = world.pool.emulators[name]
            emulator.pause() if paused else emulator.resume()

        @rule(name=st.sampled_from(BACKENDS))
        def crash(self, name: str) -> None:
            world.run(crash(world, name))
            world.run(world.pool.probe())

        @rule(name=st.sampled_from(BACKENDS), seconds=st.sampled_from([5.0, 61.0]))
        def hang(self, name: str, seconds: float) -> None:
            world.pool.hang(name)
            world.run(world.pool.probe())
            world.pool.clock.advance(seconds)
            world.run(world.pool.probe())
            world.pool.hang(name, False)

        @rule(killed=st.booleans())
        def restart(self, killed: bool) -> None:
            """The balancer stops (or is killed) and a new one starts on its
            SQLite file; the backends run on and keep what they hold."""
            world.pool = world.run(world.restart(world.pool, killed))
            world.restarts += 1

        @rule(
            max_queue=st.sampled_from([2, 10_000]),
            policy=st.sampled_from(["least_loaded", "round_robin"]),
        )
        def reload(self, max_queue: int, policy: str) -> None:
            b = world.pool.balancer
            routing = replace(b.settings.routing, max_queue=max_queue, policy=policy)  # type: ignore[arg-type]
            members = world.pool.client.app[OPS].members  # type: ignore[index]
            world.run(apply_settings(b, members, replace(b.settings, routing=routing)))

        @rule()
        def probe(self) -> None:
            world.run(world.pool.probe())

        @invariant()
        def numbers_rise(self) -> None:
            plain = [n for _, n, front in world.accepted if not front]
            assert plain == sorted(set(plain)), "numbers strictly increase"
            for index, (_, number, front) in enumerate(world.accepted):
                if front:
                    earlier = [n for _, n, _ in world.accepted[:index]]
                    assert all(number < n for n in earlier if n > 0)

        @invariant()
        def removed_never_runs(self) -> None:
            ran = ran_after_removal(world)
            assert not ran, f"removed as cancelled, then ran: {ran}"

        def teardown(self) -> None:
            world.run(settle(world))

    return Lifecycle


async def settle(world: World) -> None:
    """Let the pool finish, then check every accepted job's one end."""
    pool = world.pool
    for name, emulator in pool.emulators.items():
        pool.hang(name, False)
        emulator.resume()
    store = pool.balancer.store
    ids = [i for i, _, _ in world.accepted]
    await pool.settle(
        [i for i in ids if (j := await store.get_job(i)) is None or j.state != "cancelled"]
    )
    await pool.wait_idle()
    await pool.probe()  # as the prober would: ends a hung backend could not give are read now
    runs = world.runs()
    for prompt_id, count in runs.items():  # a late second run's end may still be on its way
        job = await store.get_job(prompt_id)
        allowed = 1 + world.wiped[prompt_id]
        if job is not None and count > allowed + len(job.duplicates):
            recorded = pool.watch("duplicated", prompt_id)
            if count > allowed + len((await store.get_job(prompt_id)).duplicates):  # type: ignore[union-attr]
                try:
                    await asyncio.wait_for(recorded.wait(), 10.0)
                except TimeoutError:
                    failure = f"{prompt_id} ran {count} times, no duplicate recorded"
                    raise AssertionError(failure) from None
    for prompt_id, number, _ in world.accepted:
        job = await (await pool.client.get(f"/api/jobs/{prompt_id}")).json()
        assert job["status"] in ENDS, (prompt_id, job["status"])
        assert job["priority"] == number
        history = await (await pool.client.get(f"/history/{prompt_id}")).json()
        stored = await pool.balancer.store.get_job(prompt_id)
        assert stored is not None
        assert (prompt_id in history) == (stored.state != "cancelled"), "history for every end"
        if prompt_id in history:
            assert history[prompt_id]["prompt"][0] == number, "the same number in /history"
        assert runs[prompt_id] <= 1 + world.wiped[prompt_id] + len(stored.duplicates), (
            "ran twice without a recorded grace expiry (or a crash that wiped its end)"
        )
    ran = ran_after_removal(world)
    assert not ran, f"removed as cancelled, then ran: {ran}"


def ran_after_removal(world: World) -> dict[str, int]:
    runs = world.runs()
    return {i: runs[i] for i, before in world.removed.items() if runs[i] > before}


async def crash(world: World, name: str) -> None:
    """Crash a backend; first note the runs that ended there whose end the
    balancer has not read (its history goes with the crash, so that job runs
    again). A read in flight may still get its entry: counted as wiped too."""
    emulator, store = world.pool.emulators[name], world.pool.balancer.store
    for prompt_id in list(emulator.history):
        job = await store.get_job(prompt_id)
        read = job is not None and job.finished and job.backend == name
        if job is not None and not read and name not in job.duplicates:
            world.wiped[prompt_id] += 1
    await emulator.crash()


@pytest.mark.parametrize("reopen_store", ["sqlite"], indirect=True)
async def test_the_job_lifecycle_keeps_its_promises(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    store = Outage(await reopen_store())
    pool = await make_pool(2, probe=ProbeSettings(unhealthy_after=1), store=store)

    async def restart(old: Pool, killed: bool) -> Pool:
        return await old.restarted(aiohttp_client, reopen_store, killed)

    world = World(pool, asyncio.get_running_loop(), restart)
    await run_stateful(machine(world), steps=15)
    if os.environ.get("STATEFUL_SEED") is None:  # another seed may leave a rule out
        assert len(world.accepted) > 50 and world.removed, "the runs exercised the pool"
        assert world.restarts > 5, "the runs restarted the balancer"
