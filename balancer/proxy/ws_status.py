"""The pool-wide `status` to every client socket: paced, sliced, and only
where it is news.

The count goes to every socket, so with 1,000 sockets one round costs about
as much as 1,000 job events. A change of the count starts a round at once
when none began in the last `status_every` seconds, else when that time is
up (the changes in between make no message of their own). A round reaches
`STATUS_SLICE` sockets per loop turn, after that turn's events (in the same
write, ws_hub.py), so a job's own events never wait for a whole round; each
slice carries the count of its turn, so a socket is never sent a count older
than one it was sent (a job's client is sent the count among its job's
events, ws_relay.py).

Each socket keeps the count it was last sent, and a round writes only to
those holding another one. A count that changes and changes back between
two rounds (a job shorter than the pace: 0, 1, 0) costs no round at all, and
a round over which the count changed is followed by one to the sockets that
were sent the older count, not by one to every socket.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Collection
from typing import Any

from balancer.proxy.ws_socket import ClientSocket, event, ws_frame

# Seconds: the shortest time from one status round to the next. At 0.25 s,
# with 1,000 idle sockets, status rounds were 60 % of the balancer's CPU in
# bench ws's targeted jobs (each job's start and end changes the count).
STATUS_EVERY = 1.0
STATUS_SLICE = 32  # sockets a status round writes per loop turn


def status_event(count: int, sid: str | None = None) -> str:
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": count}}}
    if sid is not None:
        data["sid"] = sid
    return event("status", data)


class StatusRounds:
    """The count, which socket was sent which, and the round under way.
    `sockets` are the hub's, in connection order (only read here);
    `schedule` asks the hub for a flush next turn, which calls `write_slice`
    while `under_way`, then `next_round`."""

    def __init__(
        self,
        sockets: Collection[ClientSocket],
        schedule: Callable[[], None],
        status_every: float,
        now: Callable[[], float],
    ) -> None:
        self._sockets = sockets
        self._schedule = schedule
        self.status_every = status_every
        self.now = now
        self.count = 0
        self._holding: dict[int, int] = {}  # a count -> the sockets last sent it
        self._round_at = -math.inf  # when the last round began
        self._round: list[ClientSocket] = []  # sockets the round has yet to write
        self._timer: asyncio.TimerHandle | None = None
        self._framed = (0, ws_frame(status_event(0)))  # a count and its framed status

    def joined(self, sock: ClientSocket) -> None:
        self._holding[sock.count] = self._holding.get(sock.count, 0) + 1

    def left(self, sock: ClientSocket) -> None:
        self._holding[sock.count] -= 1

    def sent(self, sock: ClientSocket, count: int) -> None:
        """`sock` was sent (or is queued) the status with `count`."""
        self.left(sock)
        sock.count = count
        self.joined(sock)

    def set(self, count: int) -> None:
        self.count = count
        self.next_round()

    @property
    def under_way(self) -> bool:
        return bool(self._round)

    def next_round(self) -> None:
        """Start a round, or time one, when a socket holds another count."""
        if self._round or self._timer is not None or not self._news():
            return  # the round under way, or the one timed, sees this count
        wait = self._round_at + self.status_every - self.now()
        if wait > 0:
            self._timer = asyncio.get_running_loop().call_later(wait, self._due)
        else:
            self._start()

    def _news(self) -> bool:
        return self._holding.get(self.count, 0) < len(self._sockets)

    def _due(self) -> None:
        self._timer = None
        if self._news():
            self._start()

    def _start(self) -> None:
        self._round_at = self.now()
        count = self.count
        self._round = [s for s in self._sockets if s.count != count]
        self._round.reverse()  # taken from the end: connection order
        self._schedule()

    def write_slice(self) -> None:
        """The status with the count of now for the round's next
        `STATUS_SLICE` sockets, after the events queued for them."""
        count, data = self.count, self.framed()
        sockets = self._sockets
        for sock in self._round[-STATUS_SLICE:]:
            if sock.count != count and sock in sockets:
                sock.push(data)
                sock.flush()
                self.sent(sock, count)
        del self._round[-STATUS_SLICE:]

    def framed(self) -> bytes:
        """The framed status with the count of now (made once per count)."""
        if self._framed[0] != self.count:
            self._framed = (self.count, ws_frame(status_event(self.count)))
        return self._framed[1]

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
