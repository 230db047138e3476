"""`outputs.wait: false` ends jobs at once and adds the URLs when the copies
are done; `outputs.delete_after` deletes a job's objects once it has aged."""

from __future__ import annotations

import asyncio
from typing import Any

from support import Pool, PoolFactory, colored

from balancer.bench.s3server import S3Server
from balancer.outputs.retention import ended_at, sweep
from balancer.outputs.setup import OUTPUTS

from .conftest import sink_settings
from .test_sink import first_image


async def image_of(pool: Pool, prompt_id: str) -> dict[str, Any]:
    entry = (await (await pool.client.get(f"/history/{prompt_id}")).json())[prompt_id]
    return first_image(entry)


async def test_without_wait_the_job_ends_first_and_its_url_follows(
    make_pool: PoolFactory, s3: S3Server
) -> None:
    outputs = sink_settings(s3, wait=False, max_attempts=10_000, retry_delay=0.05)
    pool = await make_pool(1, settings_overrides={"outputs": outputs})
    sink = pool.client.app[OUTPUTS]  # type: ignore[index]
    s3.stop()  # the copy cannot finish: the job must end without it
    prompt_id = (await pool.submit(colored(2)))["prompt_id"]
    await pool.done(prompt_id, timeout=30)
    ended = await image_of(pool, prompt_id)
    assert "stored" not in ended and "url" not in ended and sink.state.backlog == 1
    await s3.start()
    await asyncio.wait_for(sink.settled(), 30)
    image = await image_of(pool, prompt_id)
    assert image["stored"] is True and s3.object_path(image["key"]).exists()


async def test_objects_older_than_delete_after_are_deleted(
    make_pool: PoolFactory, s3: S3Server
) -> None:
    pool = await make_pool(1, settings_overrides={"outputs": sink_settings(s3)})
    sink = pool.client.app[OUTPUTS]  # type: ignore[index]
    store = pool.balancer.store
    old, new = [(await pool.submit(colored(c)))["prompt_id"] for c in (1, 2)]
    for prompt_id in (old, new):
        await pool.done(prompt_id, timeout=30)
    keys = {pid: (await image_of(pool, pid))["key"] for pid in (old, new)}
    ends = [ended_at(await store.get_history(pid)) for pid in (old, new)]
    assert None not in ends
    first, last = min(ends), max(ends)  # type: ignore[type-var]
    assert await sweep(sink, store, now=first + 59.9, keep=60) == 0
    assert all(s3.object_path(key).exists() for key in keys.values())
    assert await sweep(sink, store, now=last + 60, keep=60) == 2
    for pid in (old, new):
        assert not s3.object_path(keys[pid]).exists()
        image = await image_of(pool, pid)
        assert image["stored"] is False and image["deleted"] is True
