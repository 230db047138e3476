"""Reads that span every backend: /queue, /system_stats (and /history's fetch)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from balancer.auth.access import visible_ids
from balancer.auth.tenancy import filter_queue
from balancer.backends.state import Backend
from balancer.proxy import merge
from balancer.proxy.context import ctx
from balancer.proxy.presenter import waiting_item
from balancer.state import Balancer
from balancer.store import StoredJob
from balancer.upstream import UpstreamError, UpstreamReply


async def healthy_json(b: Balancer, path: str) -> list[tuple[str, Any]]:
    """(backend name, parsed answer) of every healthy backend that answered 200,
    kept from an earlier read while it still holds (see `KeptReads`);
    concurrent calls for the same path share one round while nothing they
    depend on changes (see `SharedReads`)."""
    healthy = b.registry.healthy()
    held = b.kept.held(healthy, path, b.settings.probe.interval)
    if held is not None:
        return held
    key = (path, *b.kept.version(healthy))
    answers: list[tuple[str, Any]] = await b.reads.get(key, lambda: _fetch_all(b, path, healthy))
    return answers


async def _fetch_all(b: Balancer, path: str, healthy: list[Backend]) -> list[tuple[str, Any]]:
    async def ask(backends: list[Backend]) -> list[tuple[Backend, Any]]:
        return [(backend, _parsed(reply)) for backend, reply in await b.each(backends, "GET", path)]

    return await b.kept.answers(healthy, path, ask, b.settings.probe.interval)


def _parsed(reply: UpstreamReply | UpstreamError) -> Any:
    """The JSON of a 200 answer, or None."""
    if isinstance(reply, UpstreamError) or reply.status != 200:
        return None
    try:
        return reply.json()
    except UpstreamError:
        return None


async def get_queue(request: web.Request) -> web.StreamResponse:
    """The backends' queues, then the jobs this balancer holds: those on
    their way to a backend that no backend listed (read-your-writes: a job
    waiting here when the read began, or bound since, is sent meanwhile, and
    a backend's answer asked before it got the job lacks it), then those
    still waiting here. A backend that gave no answer (down, or its read
    failed) is not taken as empty: the jobs the balancer sent there and has
    not seen end are listed from its own records (unknown is not idle)."""
    b = ctx(request)
    held = _held(b)
    answered = await healthy_json(b, "/queue")
    answers = [data for _, data in answered]
    unanswered = _unanswered(b, answered)
    visible = visible_ids(request)  # a client key sees only its own jobs
    if visible is None and not held and not unanswered and not _held(b):
        body = b.queue_view.body(answers)
        if body is not None:
            return web.Response(body=body, content_type="application/json", charset="utf-8")
    merged = await b.queue_view.presented(b.store, answers)
    waiting = list(b.jobs.queue)
    listed = {item[1] for items in merged.values() for item in items if _is_item(item)}
    for job in await _recorded_on(b, unanswered):
        if job.prompt_id not in listed:
            running = job.state == "running"
            merged["queue_running" if running else "queue_pending"].append(waiting_item(job))
            listed.add(job.prompt_id)
    listed.update(job.prompt_id for job in waiting)
    moved = [pid for pid in dict.fromkeys(held + _held(b)) if pid not in listed]
    merged["queue_pending"] += [waiting_item(job) for job in await _unfinished(b, moved)]
    merged["queue_pending"] += [waiting_item(job) for job in waiting]
    return web.json_response(merged if visible is None else await filter_queue(merged, visible))


def _unanswered(b: Balancer, answered: list[tuple[str, Any]]) -> list[str]:
    """The registered backends that gave no /queue answer."""
    if len(answered) >= len(b.registry):
        return []
    names = {name for name, _ in answered}
    return [backend.name for backend in b.registry if backend.name not in names]


async def _recorded_on(b: Balancer, names: list[str]) -> list[StoredJob]:
    """The unfinished jobs the store records on these backends."""
    return [job for name in names for job in await b.store.jobs_on(name)]


def _held(b: Balancer) -> list[str]:
    """The jobs waiting in this balancer and those it is sending now."""
    waiting = [job.prompt_id for job in b.jobs.queue] if len(b.jobs.queue) else []
    return waiting + b.dispatcher.sending()


def _is_item(item: Any) -> bool:
    return isinstance(item, list) and len(item) > 1


async def _unfinished(b: Balancer, prompt_ids: list[str]) -> list[StoredJob]:
    jobs = [await b.store.get_job(prompt_id) for prompt_id in prompt_ids]
    return [job for job in jobs if job is not None and not job.finished]


async def get_system_stats(request: web.Request) -> web.StreamResponse:
    """From the latest probes when every healthy backend's is younger than
    `probe.interval` (`age_s` says how old the oldest is), else asked anew."""
    b = ctx(request)
    probed = _probed_stats(b, b.clock())
    if probed:
        merged = merge.merge_system_stats([(name, stats) for name, stats, _ in probed])
        return web.json_response({**merged, "age_s": round(max(a for *_, a in probed), 3)})
    answers = await healthy_json(b, "/system_stats")
    return web.json_response({**merge.merge_system_stats(answers), "age_s": 0.0})


def _probed_stats(b: Balancer, now: float) -> list[tuple[str, Any, float]]:
    """(name, stats, age) of every healthy backend, or [] when any of them
    has no probe younger than the probe interval."""
    probed = []
    for backend in b.registry.healthy():
        snapshot = backend.snapshot
        age = None if snapshot is None else now - snapshot.stats_at
        if snapshot is None or snapshot.stats is None or age is None:
            return []
        if age >= b.settings.probe.interval:
            return []
        probed.append((backend.name, snapshot.stats, age))
    return probed
