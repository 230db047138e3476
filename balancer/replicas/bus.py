"""Job events between replicas: the replica that follows a job (its
backend's channel events arrive there) publishes each frame for a client to
Redis; the replicas holding that client's sockets deliver it.

One pub/sub channel per client sid (`<prefix>ws:sid:<sid>`), which a
replica subscribes to while it holds a socket of that sid, and one for
ComfyUI's broadcasts (`<prefix>ws:all`), which every replica subscribes to.
Pub/sub channels are not per Redis database: the prefix alone keeps two
pools on one Redis apart.

A socket's handshake waits until Redis confirmed its replica's subscription
(`joined`): pub/sub keeps nothing for a channel nobody listens to, so a
client that opened its socket, then posted through another replica, would
otherwise lose the first frames of its job while its replica was slow to
subscribe. Changes of one sid's subscription are made one at a time.

A replica publishes from one task, in the order its relay produced the
frames, so each client gets one replica's frames in order: what was queued
while the last batch was out goes in one script call (bus_script.py), and
the frames of one batch for one channel in one message. A replica drops its
own messages unread (it delivered them to its own sockets already). Keys
the frames tell of (a running job's node, nodes.py) are written by the same
task, in the same order: a replica that gets a frame can read what its
relay noted before it.

A frame in a message has its entry in its client's stream (journal.py: a
client's text frames are kept a while, for a socket that opens later; `-`
for the others), a JSON header line (sender, tenant, text or binary) and
the frame's bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from balancer.logs import get_logger
from balancer.replicas.bus_script import BATCH as BATCH_SCRIPT
from balancer.replicas.bus_script import UNKEPT, Ops, frames_of
from balancer.replicas.journal import KEEP_FOR, KEEP_FRAMES, Journal
from balancer.replicas.listen import RETRY, Message, listen, text_of
from balancer.replicas.outage import Outage, Sleep

log = get_logger("balancer.replicas")

SID = "ws:sid:"  # after the store's prefix
ALL = "ws:all"

Frame = str | bytes
# A client's `status` (the pool-wide count) is not kept: replayed, it would
# be older than the one its socket was sent when it opened.
STATUS = '{"type": "status"'
BATCH = 512  # writes per script call
CONFIRM_WITHIN = 5.0  # seconds a handshake waits for its subscription at most


@dataclass(frozen=True)
class Delivery:
    """A frame for this replica's sockets: to `sid`'s (None: to every
    socket) that may see a job of tenant `owner`; a preview only to those
    that asked for preview metadata (`preview` True) or did not (False)."""

    sid: str | None
    owner: str | None
    frame: Frame
    preview: bool | None = None
    entry: str | None = None  # its id in the client's stream, when it is kept there


def encode(sender: str, delivery: Delivery) -> bytes:
    frame = delivery.frame
    text = isinstance(frame, str)
    meta = {"from": sender, "owner": delivery.owner, "text": text, "preview": delivery.preview}
    return json.dumps(meta).encode() + b"\n" + (frame.encode() if isinstance(frame, str) else frame)


def decode(channel: str, raw: bytes, sid_prefix: str) -> list[Delivery]:
    """The deliveries of a message on `channel` (a sid's channel starts
    with `sid_prefix`), those that are ours, in order."""
    sid = channel[len(sid_prefix) :] if channel.startswith(sid_prefix) else None
    found = []
    for entry, body in frames_of(raw):
        unpacked = unpack(body)
        if unpacked is not None:
            d = unpacked[1]
            kept = entry.decode(errors="replace") if entry != UNKEPT else None
            found.append(Delivery(sid, d.owner, d.frame, d.preview, kept))
    return found


def unpack(raw: bytes) -> tuple[str, Delivery] | None:
    """(sender, delivery, without its sid) of what `encode` made."""
    header, _, payload = raw.partition(b"\n")
    try:
        meta = json.loads(header)
        sender, owner, text = str(meta["from"]), meta["owner"], bool(meta["text"])
        preview = meta["preview"]
    except (ValueError, KeyError, TypeError):
        return None
    frame: Frame = payload.decode() if text else payload
    owner = owner if isinstance(owner, str) else None
    return sender, Delivery(None, owner, frame, preview if isinstance(preview, bool) else None)


class Write(Protocol):
    """Ops of the send loop's batch (bus_script.py), and what follows once
    Redis has applied them."""

    def add(self, ops: Ops) -> None: ...

    def applied(self, results: list[Any]) -> None:
        """`results`: the results of the ops `add` added, in order."""


@dataclass(frozen=True)
class Publish:
    """A frame that is not kept: published only."""

    channel: str
    payload: bytes

    def add(self, ops: Ops) -> None:
        ops.add("pub", [], self.channel, self.payload)

    def applied(self, results: list[Any]) -> None:
        """Nothing waits on a frame."""


@dataclass(frozen=True)
class After:
    """Nothing to write: `then` runs once every write queued before it is
    applied (a frame that must not overtake those before it)."""

    then: Callable[[], None]

    def add(self, ops: Ops) -> None:
        pass

    def applied(self, results: list[Any]) -> None:
        self.then()


@dataclass
class _Turns:
    """One sid's subscription changes, made one at a time."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class EventBus:
    def __init__(self, redis: Redis, me: str, prefix: str) -> None:
        self.redis = redis
        self.me = me
        self.sid, self.all = prefix + SID, prefix + ALL
        self.journal = Journal(prefix)
        self._script = redis.register_script(BATCH_SCRIPT)
        self._echo = me.encode() + b"\n"  # how this replica's own messages start
        self._out: asyncio.Queue[Write] = asyncio.Queue()
        self._pubsub: PubSub = redis.pubsub()
        self._sids: dict[str, int] = {}  # sid -> sockets held here
        self._subscribed: set[str] = set()  # sids whose channel was asked for
        self._changing: dict[str, _Turns] = {}  # sid -> its (un)subscriptions in progress
        self._confirmed: dict[str, asyncio.Event] = {}  # channel -> Redis confirmed it

    def publish(self, delivery: Delivery, handed: bool = False) -> None:
        """Queue a frame for the other replicas (sent in this order); a
        client's job event is kept in its stream too (`handed`: a socket of
        its sid here was written it)."""
        sid, message = delivery.sid, encode(self.me, delivery)
        if sid is None:
            self._out.put_nowait(Publish(self.all, message))
        elif isinstance(delivery.frame, str) and not delivery.frame.startswith(STATUS):
            self._out.put_nowait(self.journal.publish(sid, self.sid + sid, message, handed))
        else:
            self._out.put_nowait(Publish(self.sid + sid, message))

    def write(self, write: Write) -> None:
        """Queue a write, after the frames published so far."""
        self._out.put_nowait(write)

    async def joined(self, sid: str) -> None:
        """A socket of `sid` opens here: its frames are wanted. Returns once
        Redis confirmed the subscription (frames published from then on
        reach this replica), or Redis failed to: the listener subscribes
        again when it returns."""
        self._sids[sid] = self._sids.get(sid, 0) + 1
        await self._settle(sid)

    async def left(self, sid: str) -> None:
        count = self._sids.pop(sid, 0) - 1
        if count > 0:
            self._sids[sid] = count
        await self._settle(sid)

    async def _settle(self, sid: str) -> None:
        """Subscribe to `sid`'s channel, or unsubscribe, as its sockets here
        want now; one change at a time per sid, a subscription awaited until
        Redis confirmed it (so an unsubscription before it is done too)."""
        turns = self._changing.setdefault(sid, _Turns())
        turns.users += 1
        try:
            async with turns.lock:
                await self._change(sid)
        finally:
            turns.users -= 1
            if not turns.users:
                del self._changing[sid]

    async def _change(self, sid: str) -> None:
        try:
            if sid in self._sids and sid not in self._subscribed:
                self._subscribed.add(sid)
                await self._subscribe(self.sid + sid)
            elif sid not in self._sids and sid in self._subscribed:
                self._subscribed.discard(sid)
                await self._pubsub.unsubscribe(self.sid + sid)
        except (RedisError, TimeoutError) as exc:
            log.warning("socket_subscription_unconfirmed", error=str(exc) or type(exc).__name__)

    async def _subscribe(self, channel: str) -> None:
        confirmed = self._confirmed[channel] = asyncio.Event()
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed.wait(), CONFIRM_WITHIN)
        finally:
            self._confirmed.pop(channel, None)

    def _confirm(self, channel: str) -> None:
        """Redis confirmed a subscription to `channel`."""
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            confirmed.set()

    async def send_loop(self, sleep: Sleep = asyncio.sleep) -> None:
        """Publish queued frames (and make queued writes) in order, a batch
        per script call, until cancelled. Redis away: the batch waits and
        goes when it returns."""
        outage = Outage("events_publish", replica=self.me)
        while True:
            batch = [await self._out.get()]
            while not self._out.empty() and len(batch) < BATCH:
                batch.append(self._out.get_nowait())
            while not await self._publish(batch, outage):
                await sleep(RETRY)

    async def _publish(self, batch: list[Write], outage: Outage) -> bool:
        ops, ends = Ops(), []
        for write in batch:
            write.add(ops)
            ends.append(ops.count)
        args = [self.me, KEEP_FRAMES, KEEP_FOR, *ops.args]
        try:
            results = await self._script(ops.keys, args, self.redis) if ops.count else []
        except RedisError as exc:
            outage.failed(exc)
            return False
        outage.ok()
        for write, start, end in zip(batch, [0, *ends[:-1]], ends, strict=True):
            write.applied(results[start:end])
        return True

    async def receive_loop(
        self, deliver: Callable[[list[Delivery]], None], sleep: Sleep = asyncio.sleep
    ) -> None:
        """Deliver the other replicas' frames to this replica's sockets, a
        message's at once, until cancelled; Redis away, it subscribes again
        when it returns."""
        outage = Outage("events_receive", replica=self.me)
        channels = lambda: [self.all, *(self.sid + sid for sid in self._sids)]  # noqa: E731
        received = partial(self._received, deliver=deliver)
        await listen(self._pubsub, channels, received, outage, sleep, self._confirm)

    def _received(self, message: Message, deliver: Callable[[list[Delivery]], None]) -> None:
        raw = message["data"]
        if raw.startswith(self._echo):
            return  # this replica's own: its sockets have them
        found = decode(text_of(message["channel"]), raw, self.sid)
        if found:
            deliver(found)

    async def close(self) -> None:
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
