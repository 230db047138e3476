"""Live reload: add, remove and change backends under load without a failed
request; an invalid file keeps the running config."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import structlog
from support import Pool, PoolFactory, colored

from balancer.config.backend_settings import BackendSettings
from balancer.config.reload import ConfigWatcher, diff_backends, file_stamp
from balancer.ops.context import OPS
from balancer.ops.reconfigure import apply_settings


def url_of(pool: Pool, name: str) -> str:
    return str(pool.servers[name].make_url("")).rstrip("/")


def write(path: Path, backends: list[dict[str, Any]], **extra: Any) -> None:
    path.write_text(json.dumps({"backends": backends, **extra}))
    # A new stamp even within the filesystem's mtime granularity.
    path.write_text(path.read_text() + "\n" * (1 + len(backends)))


def watcher_for(pool: Pool, path: Path) -> ConfigWatcher:
    b = pool.balancer
    ops = pool.client.app[OPS]  # type: ignore[index]

    async def on_change(settings: Any) -> None:
        await apply_settings(b, ops.members, settings)

    return ConfigWatcher(path, on_change, lambda: b.settings.probe.interval)


def test_diff_backends_by_name() -> None:
    a, b, c = (BackendSettings(name=n, url=f"http://{n}:1") for n in "abc")
    b2 = BackendSettings(name="b", url="http://b:2")
    diff = diff_backends([a, b], [b2, c])
    assert diff.added == (c,) and diff.removed == ("a",) and diff.changed == (b2,)


def test_file_stamp_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert file_stamp(tmp_path / "nope.yaml") is None


async def test_reload_adds_removes_and_changes_backends_under_load(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    pool = await make_pool(3)
    config = tmp_path / "balancer.yaml"
    write(config, [{"name": n, "url": url_of(pool, n)} for n in ("gpu0", "gpu1", "gpu2")])
    watcher = watcher_for(pool, config)
    assert await watcher.poll() is False  # unchanged since the watcher looked

    write(
        config,
        [
            {"name": "gpu0", "url": url_of(pool, "gpu0"), "drain": True},
            {"name": "gpu1", "url": url_of(pool, "gpu1"), "min_free_vram": "1GiB"},
            {"name": "spare", "url": url_of(pool, "gpu2")},
        ],
        probe={"interval": "2s", "stale_after": "10s"},
    )
    answers = await asyncio.gather(
        *(pool.client.post("/prompt", json={"prompt": colored(i)}) for i in range(6)),
        watcher.poll(),
        *(pool.client.post("/prompt", json={"prompt": colored(i)}) for i in range(6, 12)),
    )
    reloaded = answers.pop(6)
    assert reloaded is True
    assert [r.status for r in answers] == [200] * 12

    b = pool.balancer
    assert b.settings.probe.interval == 2.0 and b.prober.settings.interval == 2.0
    assert b.registry.get("gpu0").drain_reasons == {"config"}  # type: ignore[union-attr]
    assert b.registry.get("gpu1").settings.min_free_vram == 1024**3  # type: ignore[union-attr]
    await pool.channels_up(["spare"])
    for _ in range(20):  # queued prompts drain out as backends free up
        await pool.wait_idle()
        await pool.probe()
        if b.registry.get("gpu2") is None and not b.jobs.queue:
            break
    assert b.registry.get("gpu2") is None  # removed once idle
    assert b.registry.get("spare").healthy  # type: ignore[union-attr]
    names = [
        r["name"] for r in (await (await pool.client.get("/balancer/status")).json())["backends"]
    ]
    assert names == ["gpu0", "gpu1", "spare"]


async def test_an_invalid_file_keeps_the_running_config(
    make_pool: PoolFactory, tmp_path: Path
) -> None:
    pool = await make_pool(2)
    config = tmp_path / "balancer.yaml"
    write(config, [{"name": "gpu0", "url": url_of(pool, "gpu0")}])
    watcher = watcher_for(pool, config)
    before = pool.balancer.settings
    write(config, [{"name": "gpu0", "url": "ftp://nope", "vram_limit": 7}], probe={"interval": 0})
    with structlog.testing.capture_logs() as logs:
        assert await watcher.poll() is False
    errors = [e["error"] for e in logs if e["event"] == "config_invalid"]
    assert len(errors) == 3
    assert any(e.startswith("backends[0].url") for e in errors)
    assert any(e.startswith("probe.interval") for e in errors)
    assert pool.balancer.settings is before
    assert [b.name for b in pool.balancer.registry] == ["gpu0", "gpu1"]
    await pool.submit(colored(1))
