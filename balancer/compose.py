"""The composition root: every part of one balancer built once, in
dependency order, with what it needs passed to its constructor."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec

from balancer.auth.access import Access
from balancer.auth.limits import LocalBuckets
from balancer.auth.owners import Owners
from balancer.auth.sessions import Sessions
from balancer.backends.channel import Channels
from balancer.backends.drain import Drainer, DrainWatch, Idleness
from balancer.backends.prober import Prober
from balancer.backends.registry import Registry
from balancer.backends.state import Clock
from balancer.catalog.book import CatalogueReader, Catalogues
from balancer.catalog.fit import Fitter
from balancer.catalog.residency import Residency
from balancer.config.settings import Settings
from balancer.jobs.cancel import Canceller
from balancer.jobs.dispatch import Dispatcher
from balancer.jobs.ends import RunEnds
from balancer.jobs.events import JobEvents
from balancer.jobs.failover import Failover
from balancer.jobs.follow import Follower
from balancer.jobs.ids import IdFactory
from balancer.jobs.late import LateBinder
from balancer.jobs.lateruns import LateRuns
from balancer.jobs.lifecycle import Jobs
from balancer.jobs.recall import Recall
from balancer.jobs.routing import Routing
from balancer.jobs.speed import SpeedObserver
from balancer.jobs.steal import Stealer
from balancer.jobs.submit import Submitter
from balancer.jobs.waiting import LocalWaiting, SharedWaiting
from balancer.ops.backend_admin import BackendAdmin, Following
from balancer.ops.context import Ops
from balancer.ops.drain_end import DrainEnds
from balancer.ops.membership import Membership
from balancer.ops.metrics import Metrics
from balancer.ops.status import JobTally
from balancer.proxy.file_context import Files, build_files, local_uploads, local_user_data
from balancer.proxy.forward import Forwarder
from balancer.proxy.kept_reads import KeptReads
from balancer.proxy.nodes import LocalNodes
from balancer.proxy.presenter import present_job_entry
from balancer.proxy.ws_hub import ClientHub
from balancer.proxy.ws_relay import EventRelay
from balancer.replicas.adoption import Adoption, while_held
from balancer.replicas.coordination import Replicas
from balancer.replicas.hub import SharedHub
from balancer.replicas.takeover import TakenChannels
from balancer.replicas.told import JournalOutputs
from balancer.resources import Opened
from balancer.state import Balancer
from balancer.store import MemoryStore
from balancer.store.guard import guarded
from balancer.upstream import Deadline, Upstream
from balancer.webhooks.owing import Owing
from balancer.webhooks.sender import Sleep, Webhooks

P = ParamSpec("P")


def held(
    replicas: Replicas | None, call: Callable[P, Awaitable[None]]
) -> Callable[P, Awaitable[None]]:
    """`call`; one of several replicas, only while it holds its lease."""
    return call if replicas is None else while_held(replicas.leases, call)


@dataclass(frozen=True)
class Injected:
    """Time, ids and waits: injected, so tests are deterministic."""

    clock: Clock  # monotonic: probes, timeouts, rates
    wall_clock: Clock  # job times (submitted, started, ended), session cookies, replica leases
    new_id: IdFactory  # prompt_ids the client did not choose
    sleep: Sleep  # between webhook delivery attempts, and replica heartbeats
    deadline: Deadline  # how long a call to a backend may take


@dataclass(frozen=True)
class Parts:
    """Everything `assemble` built, each published under its app key."""

    balancer: Balancer
    files: Files
    ops: Ops
    access: Access
    webhooks: Webhooks


def assemble(
    settings: Settings,
    registry: Registry,
    catalogues: Catalogues,
    metrics: Metrics,
    opened: Opened,
    given: Injected,
    replicas: Replicas | None = None,
) -> Parts:
    """The composition root: every part built once, in dependency order,
    with what it needs passed in; every listener is given to its source's
    constructor, and every job-event observer subscribes here or in its own
    constructor. Nothing here does network I/O. `replicas` is what this
    replica shares with the others (None: it runs alone)."""
    http, store, clock = opened.http, opened.store, given.clock
    timeouts = settings.timeouts
    upstream = Upstream(http, timeouts.request, timeouts.connect, given.deadline, opened.posts)
    events = JobEvents()
    events.subscribe(SpeedObserver(registry))
    residency = Residency(settings.routing.resident_models, settings.routing.model_load_estimate)
    events.subscribe(residency)
    reader = CatalogueReader(
        catalogues, upstream, settings.catalog.refresh, clock, residency.restarted
    )
    fitter = Fitter(registry, catalogues, residency)
    listen = settings.listen
    owing = Owing(
        lambda: b.settings.webhooks,
        f"http://{listen.host}:{listen.port}",
        replicas.me.name if replicas is not None else "balancer",
        given.wall_clock,
    )
    claims = replicas.owners if replicas is not None else None
    told = JournalOutputs(replicas.bus) if replicas is not None else None
    jobs = Jobs(store, events, given.wall_clock, claims, owing, told)
    routing = Routing(settings.routing)
    uploads = (
        replicas.uploads if replicas is not None else local_uploads(settings, given.wall_clock)
    )
    user_data = local_user_data(settings) if replicas is None else replicas.user_data.of
    files = build_files(settings, uploads, user_data, store, jobs, registry, http)
    room = replicas.slots if replicas is not None else None
    if replicas is not None:
        events.subscribe(replicas.slots)  # a job that leaves its backend gives its slot back
        events.subscribe(replicas.owners)  # an ended job is followed by nobody
    dispatcher = Dispatcher(
        registry,
        routing,
        fitter,
        jobs,
        upstream,
        settings.probe,
        clock,
        files.placement,
        metrics.routing,
        room,
    )

    only_own = replicas is not None  # the other replicas follow theirs
    late = LateRuns()  # runs backends may hold of jobs taken from them
    ends = RunEnds(registry, jobs, routing, upstream, present_job_entry, opened.sink, late)
    follower = Follower(ends, clock, only_own)
    recall = Recall(registry, jobs, upstream)
    stealer = Stealer(registry, store, recall, follower.follows, follower.may_wait_on)
    turn = replicas.turn if replicas is not None else None  # the tenants' turn, pool-wide
    binder = LateBinder(dispatcher, jobs, routing, stealer, clock, late, turn)
    failover = Failover(jobs, routing, clock, follower.follows)
    hub = SharedHub(replicas.bus) if replicas is not None else ClientHub()
    owners = Owners(store, lambda: bool(b.settings.auth.keys))
    events.subscribe(owners)  # before the relay: it knows each job's tenant from its events
    own = binder.queue_length_now
    watch = DrainWatch()  # draining backends to look at again: pushes, drains, job ends
    waiting = SharedWaiting(store, own, events) if replicas is not None else LocalWaiting(own)
    relay = EventRelay(
        registry,
        follower,
        hub,
        store,
        clock,
        waiting,
        binder.wake,
        owners.of,
        owners.index_outputs,
        replicas.nodes if replicas is not None else LocalNodes(),
        watch.note,
    )
    events.subscribe(relay)
    tally = JobTally()
    for observer in (metrics, tally):
        events.subscribe(observer)
    channels = Channels(http, relay, f"lb{secrets.token_hex(4)}")  # ids unique per process
    taken = TakenChannels(channels, registry, follower, given.wall_clock)  # a dead process's ids
    events.subscribe(taken)
    adoption = None
    if replicas is not None:
        adoption = Adoption(replicas, replicas.owners, jobs, follower, routing, binder.wake, taken)
    drainer = Drainer(upstream, residency.freed, [metrics.drain_changed], watch)
    idle = Idleness(clock, settings.probe, follower.holds)
    members = Membership(registry, channels, store, drainer, idle)
    drain_ends = DrainEnds(registry, drainer, members, watch, idle)
    events.subscribe(drain_ends)  # the end of a job may empty a draining backend
    probe_listeners = [  # those that need the store skip a probe while it cannot answer
        held(replicas, guarded("reconcile", follower.reconcile)),
        reader.after_probe,
        residency.after_probe,
        failover.probe_succeeded,
        guarded("placement_probe", files.placement.on_probe),
        drainer.on_probe,  # settles the VRAM reason before the drain's end is looked at
        guarded("drain_end_probe", drain_ends.on_probe),
    ]
    prober = Prober(
        registry,
        upstream,
        settings.probe,
        clock,
        held(replicas, guarded("failover", failover.probe_failed)),
        probe_listeners,
        [reader.backend_down],
        channels.answering,
        binder.wake,  # when a probe changes what a backend can take, and once a round
        lambda backend: follower.holds(backend.name) or reader.due(backend),
    )
    b = Balancer(
        settings=settings,
        registry=registry,
        prober=prober,
        upstream=upstream,
        forwarder=Forwarder(http, settings.limits.max_body, clock),
        store=store,
        clock=clock,
        events=events,
        routing=routing,
        jobs=jobs,
        dispatcher=dispatcher,
        binder=binder,
        submitter=Submitter(jobs, dispatcher, binder, routing, given.new_id, given.wall_clock),
        follower=follower,
        failover=failover,
        canceller=Canceller(registry, jobs, dispatcher, recall, follower, upstream),
        hub=hub,
        relay=relay,
        channels=channels,
        catalogues=catalogues,
        catalogue_reader=reader,
        residency=residency,
        replicas=replicas,
        adoption=adoption,
        taken=taken,
        waiting=waiting,
        kept=KeptReads(upstream, clock),
    )
    sessions = Sessions(lambda: b.settings.auth, Path(settings.data_dir), given.wall_clock)
    rates = replicas.rates if replicas is not None else LocalBuckets(clock)
    access = Access(lambda: b.settings, owners, clock, sessions, rates)
    webhooks = Webhooks(
        lambda: b.settings.webhooks,
        store,
        opened.hooks_http,
        owing,
        given.wall_clock,
        not isinstance(store, MemoryStore),  # the outbox outlives the process
        given.sleep,
    )
    events.subscribe(webhooks)
    shared = replicas.changes if replicas is not None else None
    admin = BackendAdmin(registry, members, drainer, shared)
    following = Following(shared, admin) if shared is not None else None
    ops = Ops(metrics, tally, drainer, members, drain_ends, admin, following)
    return Parts(b, files, ops, access, webhooks)
