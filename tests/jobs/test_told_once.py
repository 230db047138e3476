"""An end told is never told again, and a job whose end was told never runs
again (issue 14). The balancer writes that it told the end (`told_at`, one
write through the store) before its client hears the end's first frame; the
mark outlives the balancer (SQLite file, Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

from store_support import Outage, Reopen
from support import HANG_BOUND, Pool, PoolFactory, StartClient, colored

from balancer.config.backend_settings import ProbeSettings
from balancer.store import StoreUnavailable
from tests.proxy.test_ws import Message, Socket, connect


def url_of(pool: Pool, name: str) -> str:
    return str(pool.servers[name].make_url("")).rstrip("/")


def about(frames: list[Message], prompt_id: str) -> list[str]:
    """The types of the frames about `prompt_id`."""
    return [
        f["type"]
        for f in frames
        if isinstance(f, dict) and isinstance(f["data"], dict)
        if f["data"].get("prompt_id") == prompt_id
    ]


async def heard_after(pool: Pool, sock: Socket, seed: int) -> list[Message]:
    """Every frame `sock` got until the end of a new job of its client: what
    the balancer sent it before is all in there (one balancer sends in order)."""
    start = len(sock.frames)
    later = (await pool.submit(colored(seed), client_id="c"))["prompt_id"]
    await sock.until_done(later, 30)
    return sock.frames[start:]


def killed_when_it_records(pool: Pool) -> None:
    """The balancer dies the moment it would keep a job's history entry,
    after its client was told the end: nothing it writes from then on lands."""
    store = pool.balancer.store
    assert isinstance(store, Outage)

    async def put_history(prompt_id: str, entry: Any) -> None:
        store.down = True
        raise StoreUnavailable("the balancer was killed")

    store.put_history = put_history  # type: ignore[method-assign]


async def test_an_end_told_before_a_kill_is_not_told_again_after_the_restart(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    pool = await make_pool(1, store=Outage(await reopen_store()))
    killed_when_it_records(pool)
    sock = await connect(pool, "c")
    prompt_id = (await pool.submit(colored(1), client_id="c"))["prompt_id"]
    told = await sock.until_done(prompt_id, 30)
    assert about(told, prompt_id)[-2:] == ["execution_success", "executing"]
    pool.stalls.urls.add(url_of(pool, "gpu0"))  # the new balancer's first probes time out
    again = await pool.restarted(aiohttp_client, reopen_store, killed=True)
    job = await again.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "running", "its end was not recorded"
    back = await connect(again, "c")  # the client's socket, on the new balancer
    again.stalls.urls.clear()
    await again.settle([prompt_id])  # the end is read from gpu0 now
    job = await again.balancer.store.get_job(prompt_id)
    assert job is not None and job.state == "succeeded"
    assert about(await heard_after(again, back, 2), prompt_id) == [], "not told again"
    assert again.emulators["gpu0"].executed.count(prompt_id) == 1


async def test_a_job_whose_end_was_told_is_not_run_again_when_its_backend_dies_unread(
    make_pool: PoolFactory, reopen_store: Reopen
) -> None:
    """gpu0 runs the job and tells its end, then dies before the balancer
    read its history: the job ends as an error (its outputs lost with
    gpu0), not as a second run on gpu1 with a second end."""
    pool = await make_pool(2, probe=ProbeSettings(unhealthy_after=1), store=await reopen_store())
    gpu0, gpu1 = pool.emulators["gpu0"], pool.emulators["gpu1"]
    sock = await connect(pool, "c")
    gpu0.pause()
    prompt_id = (await pool.submit(colored(1), client_id="c"))["prompt_id"]
    assert await pool.owner(prompt_id) == "gpu0"
    pool.stalls.urls.add(url_of(pool, "gpu0"))  # its history cannot be read...
    gpu0.resume()
    told = await sock.until_done(prompt_id, 30)  # ...when its channel tells the end
    assert about(told, prompt_id)[-2:] == ["execution_success", "executing"]
    pool.stalls.urls.clear()
    pool.kill("gpu0")  # then it dies
    await pool.probe()
    await pool.settle([prompt_id])
    history = await (await pool.client.get(f"/history/{prompt_id}")).json()
    status = history[prompt_id]["status"]
    assert status["status_str"] == "error"
    (error,) = [data for name, data in status["messages"] if name == "execution_error"]
    assert "lost with gpu0" in error["exception_message"], error
    assert gpu1.executed == [], "not run again"
    detail = await (await pool.client.get(f"/api/jobs/{prompt_id}")).json()
    assert detail["status"] == "failed"
    assert about(await heard_after(pool, sock, 2), prompt_id) == [], "no second run, no second end"


class LaggingChannel:
    """The balancer's handling of its channel's frames held from the one
    after the first `executing` of a node on (the loop busy under load),
    until `gate` opens; `holding` is set once a frame waits."""

    def __init__(self, pool: Pool) -> None:
        relay = pool.balancer.relay
        handle = relay.on_json
        self.gate, self.holding = asyncio.Event(), asyncio.Event()
        seen_node = False

        async def lagging(backend: Any, message: dict[str, Any], raw: str | None = None) -> None:
            nonlocal seen_node
            if seen_node:
                self.holding.set()
                await self.gate.wait()
            await handle(backend, message, raw)
            data = message.get("data")
            if message.get("type") == "executing" and isinstance(data, dict):
                seen_node = seen_node or data.get("node") is not None

        relay.on_json = lagging  # type: ignore[method-assign]


async def test_frames_a_lagging_channel_brings_after_a_probe_told_the_end_are_dropped(
    make_pool: PoolFactory,
) -> None:
    """A probe finds the job gone from its backend's queue while its channel
    lags behind, reads its end and tells it (from its history). The run's
    frames the channel brings after that are not relayed: its client hears
    one end, and nothing of the job after it."""
    pool = await make_pool(1)
    lag = LaggingChannel(pool)
    sock = await connect(pool, "c")
    prompt_id = (await pool.submit(colored(1), client_id="c"))["prompt_id"]
    await asyncio.wait_for(lag.holding.wait(), HANG_BOUND)
    await pool.emulators["gpu0"].wait_idle(HANG_BOUND)  # it ran to its end meanwhile
    await pool.settle([prompt_id])  # a probe ends it
    lag.gate.set()
    types = about([*sock.frames, *await heard_after(pool, sock, 2)], prompt_id)
    assert types[0] == "execution_start" and types.count("execution_success") == 1, types
    assert types[-2:] == ["execution_success", "executing"], types


async def test_an_end_marked_while_its_dispatch_is_being_recorded_is_told_whole(
    make_pool: PoolFactory,
) -> None:
    """A backend may run a job and tell its end before the balancer has
    recorded that it accepted it (the job still `dispatching`), and that
    record may land between the mark's read and its write: the end is
    marked all the same, and told whole."""
    pool = await make_pool(1)
    jobs, store = pool.balancer.jobs, pool.balancer.store
    record, move = jobs.dispatched, store.transition
    go, done = asyncio.Event(), asyncio.Event()

    async def held_dispatched(*args: Any) -> Any:
        await go.wait()  # the dispatch is recorded only when the mark is being written
        try:
            return await record(*args)
        finally:
            done.set()

    async def transition(prompt_id: str, from_states: Any, to_state: Any, fields: Any) -> Any:
        if "told_at" in fields and "dispatching" in from_states and not go.is_set():
            go.set()
            await done.wait()  # the job is `queued` now: this write no longer applies
        return await move(prompt_id, from_states, to_state, fields)

    jobs.dispatched = held_dispatched  # type: ignore[method-assign]
    store.transition = transition  # type: ignore[method-assign]
    sock = await connect(pool, "c")
    prompt_id = "0f0e0d0c-0b0a-4900-8800-000000000001"
    posting = asyncio.ensure_future(pool.submit(colored(1), client_id="c", prompt_id=prompt_id))
    await sock.until_done(prompt_id, HANG_BOUND)
    assert (await posting)["prompt_id"] == prompt_id
    assert go.is_set(), "the end came while the job was dispatching"
    await pool.settle([prompt_id])
    types = about(sock.frames, prompt_id)
    assert types[-2:] == ["execution_success", "executing"], types
