"""An end told is never told again, and a job whose end was told never runs
again (issue 14). The balancer writes that it told the end (`told_at`, one
write through the store) before its client hears the end's first frame; the
mark outlives the balancer (SQLite file, Redis)."""

from __future__ import annotations

from typing import Any

from store_support import Outage, Reopen
from support import Pool, PoolFactory, StartClient, colored

from balancer.config.model import ProbeSettings
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
