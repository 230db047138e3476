"""What the balancer follows on each backend: a job it sent there, until
that run's end is read, and after a restart every job the store has on a
backend (their events went to the channels of the process before, so only
reads of their backend find their ends). A backend that holds such a job is
read even while its pushes say its queue is empty (see the prober's `due`)."""

from __future__ import annotations

import pytest
from store_support import Reopen
from support import PoolFactory, StartClient, colored


async def test_a_job_is_followed_on_its_backend_until_its_end_is_read(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(2)
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    owner = await pool.owner(prompt_id)
    other = "gpu1" if owner == "gpu0" else "gpu0"
    follower = pool.balancer.follower
    assert follower.holds(owner) and not follower.holds(other)
    gpu0.resume()
    await pool.done(prompt_id)
    assert not follower.holds(owner)


@pytest.mark.parametrize("reopen_store", ["sqlite"], indirect=True)
async def test_after_a_restart_the_stored_jobs_on_a_backend_are_followed_there(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    pool = await make_pool(1, store=await reopen_store())
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    prompt_id = (await pool.submit(colored(1)))["prompt_id"]
    again = await pool.restarted(aiohttp_client, reopen_store)
    assert again.balancer.follower.holds("gpu0"), "still queued there"
    gpu0.resume()
    await gpu0.wait_idle(10.0)
    await again.settle([prompt_id])  # its end is read by a probe
    assert not again.balancer.follower.holds("gpu0")
