"""A balancer running alone is killed while its backend runs a job, and
restarted on the same data (SQLite; Redis with no other replica). The backend
sends the rest of that run's frames to the killed process's channel
client_id: the restarted balancer takes that id over (takeover.py), so the
job's client, its socket reconnected to the new balancer, hears every frame
sent after the restart, once each, in order, and the end once."""

from __future__ import annotations

from store_support import Outage, Reopen
from support import HANG_BOUND, PoolFactory, StartClient

from tests.jobs.test_told_once import about, heard_after
from tests.proxy.test_ws import connect
from tests.replicas.test_taken_channel import reference, shape, submit, until_heard


async def test_frames_sent_after_a_restart_reach_the_reconnected_client_once_in_order(
    make_pool: PoolFactory, aiohttp_client: StartClient, reopen_store: Reopen
) -> None:
    """gpu0 has started the job (its start and cached nodes were told) and
    holds it before its first node while the balancer is killed and started
    again; then gpu0 runs it. The client's new socket hears the rest of the
    run as a socket open throughout hears it: every `executing`, `progress`
    and preview, the output, then one end."""
    pool = await make_pool(1, store=Outage(await reopen_store()))
    (texts, previews) = await reference(pool)
    assert [t for t, _, _ in texts[:2]] == ["execution_start", "execution_cached"]
    gpu0 = pool.emulators["gpu0"]
    gpu0.pause()
    sock = await connect(pool, "c")
    prompt_id = await submit(pool, "c")
    await until_heard(sock, "execution_cached")
    again = await pool.restarted(aiohttp_client, reopen_store, killed=True)
    back = await connect(again, "c")  # the client reconnects to the new balancer
    gpu0.resume()
    await back.until_done(prompt_id, HANG_BOUND)
    assert shape(back.frames, prompt_id) == (texts[2:], previews)
    assert [t for t, _, _ in texts[2:]].count("progress") > 1, "the run has progress to hear"
    assert about(await heard_after(again, back, 2), prompt_id) == [], "its end told once"
    assert gpu0.executed.count(prompt_id) == 1
