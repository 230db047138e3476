"""The Redis store: jobs, pins, kept history and the `number` counter shared
by several balancer replicas (`store.kind: redis`).

Every write that touches several keys is one Lua script (redis_scripts.py),
so a job's state never forks between replicas: of two replicas moving the
same job, one transition applies and the other gets None, as with one
process. A Redis that does not answer (refused, reset, timed out) raises
StoreUnavailable; a failed read is never an empty answer. The client
reconnects by itself on the next call once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from balancer.logs import get_logger
from balancer.store import redis_codec as codec
from balancer.store import redis_kept as kept_lua
from balancer.store import redis_outbox as outbox
from balancer.store import redis_scripts as lua
from balancer.store.kept import MAX_HISTORY, KeptHistory, Retention, entry_time
from balancer.store.model import JobStateName, OverQuota, Pin, StoredJob, Wall
from balancer.store.outbox import Owed
from balancer.store.reach import Deadline, reachable

log = get_logger("balancer.store")

DEFAULT_PREFIX = "balancer:"

DEFAULT_TIMEOUT = 2.0
# A call is tried this many more times on a refused or reset connection
# (a pooled connection Redis dropped, a Redis restarting), 25 ms then 50 ms apart.
RETRIES = 2

WAITING = json.dumps("waiting")  # the field of `states` that counts waiting jobs


def redis_client(url: str, timeout: float) -> redis.Redis:
    """A client for `url` (redis:// or rediss://, password in the URL) that
    gives up connecting after `timeout` seconds. No I/O here: it connects on
    its first call, and again after Redis comes back. Calls have no socket
    timeout of their own: RedisStore bounds each whole call (redis-py's
    per-send `asyncio.wait_for` can swallow a task's cancellation on
    Python 3.11, and a shutdown would then wait forever)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=None,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.025), RETRIES),
    )


class RedisStore:
    """The Store on Redis. `prefix` namespaces every key, so several pools
    can share one Redis (one database, not a cluster: scripts name keys they
    compute). A call that gets no answer within `timeout` seconds (retries
    included; `deadline` turns them into a timeout) raises StoreUnavailable.
    `token` names each job write (see redis_scripts). `max_age`: kept
    entries whose job started longer ago than this (seconds, by `wall`) go,
    and their pins and ended job records with them."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        max_history: int = MAX_HISTORY,
        *,
        max_age: float | None = None,
        wall: Wall = time.time,
        timeout: float = DEFAULT_TIMEOUT,
        token: Callable[[], str] = codec.new_token,
        deadline: Deadline = asyncio.timeout,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._deadline = deadline
        self._token = token
        self._prefix = prefix
        self._max = max_history
        self._retention = Retention(max_history, max_age, wall)
        self._kept = KeptHistory(max_history)
        self._kept_at: tuple[bytes, int] = (b"", -1)  # (life, last change) it holds
        self.rows_read = 0  # entries the last catch-up of kept history read
        script = client.register_script
        self._create = script(lua.PRELUDE + lua.CREATE)
        self._transition = script(lua.PRELUDE + lua.TRANSITION)
        self._discard = script(lua.PRELUDE + lua.DISCARD)
        self._jobs_in = script(lua.PRELUDE + lua.JOBS_IN)
        self._put_pin = script(lua.PRELUDE + lua.PUT_PIN)
        self._remove_pin = script(lua.PRELUDE + lua.REMOVE_PIN)
        self._pins_of = script(lua.PRELUDE + lua.PINS_OF)
        self._put_history = script(lua.PRELUDE + kept_lua.PUT_HISTORY)
        self._remove_history = script(lua.PRELUDE + kept_lua.REMOVE_HISTORY)
        self._histories = script(lua.PRELUDE + kept_lua.HISTORIES)
        self._expire_history = script(lua.PRELUDE + kept_lua.EXPIRE_HISTORY)
        self._transition_owing = script(lua.PRELUDE + outbox.TRANSITION_OWING)
        self._claim_owed = script(lua.PRELUDE + outbox.CLAIM)
        self._hold_owed = script(lua.PRELUDE + outbox.HOLD)
        self._settle_owed = script(lua.PRELUDE + outbox.SETTLE)

    def _key(self, *parts: str) -> str:
        return self._prefix + "".join(parts)

    def _reachable(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Redis errors that mean "no answer", and no answer in time, become
        StoreUnavailable."""
        return reachable(self._timeout, self._deadline)

    async def _run(self, script: Any, keys: Sequence[str], *args: codec.Arg) -> Any:
        async with self._reachable():
            return await script(keys=list(keys), args=[self._prefix, *args])

    @property
    def client(self) -> redis.Redis:
        """The client it talks through (replicas share it)."""
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    # ---- jobs
    async def create(self, job: StoredJob, max_unfinished: int | None = None) -> bool:
        args = codec.job_args({name: getattr(job, name) for name in codec.JOB_FIELDS})
        key = self._key("job:", job.prompt_id)
        cap = "" if max_unfinished is None else max_unfinished
        tenant = json.dumps(job.tenant)
        created = await self._run(
            self._create, [key], job.prompt_id, self._token(), self._max, cap, tenant, *args
        )
        if created == -1:
            raise OverQuota(job.tenant)
        return bool(created)

    async def transition(
        self,
        prompt_id: str,
        from_states: Collection[str],
        to_state: JobStateName,
        fields: Mapping[str, Any],
        owed: Owed | None = None,
    ) -> StoredJob | None:
        states = [json.dumps(s) for s in from_states]
        changes = codec.job_args({k: v for k, v in fields.items() if k != "state"})
        flat = await self._run(
            self._transition if owed is None else self._transition_owing,
            [self._key("job:", prompt_id)],
            prompt_id,
            self._token(),
            self._max,
            json.dumps(to_state),
            len(states),
            *states,
            *changes,
            *([] if owed is None else outbox.owed_args(owed)),
        )
        return None if flat is None else codec.job_of(prompt_id, flat)

    async def discard(self, prompt_id: str) -> None:
        await self._run(self._discard, [self._key("job:", prompt_id)], prompt_id)

    async def next_number(self) -> int:
        async with self._reachable():
            return int(await self._client.incr(self._key("number")))

    async def get_job(self, prompt_id: str) -> StoredJob | None:
        async with self._reachable():
            raw = await self._client.hgetall(self._key("job:", prompt_id))
        return codec.job_of(prompt_id, codec.flat(raw))

    async def _jobs(self, zset: str) -> list[StoredJob]:
        rows = await self._run(self._jobs_in, [], zset)
        return [job for pid, flat in rows if (job := codec.job_of(pid.decode(), flat)) is not None]

    async def unfinished_jobs(self) -> list[StoredJob]:
        return await self._jobs("unfinished")

    async def jobs(self) -> list[StoredJob]:
        return await self._jobs("jobs")

    async def jobs_on(self, backend: str) -> list[StoredJob]:
        return await self._jobs("on:" + backend)

    async def count_unfinished(self, tenant: str | None) -> int:
        async with self._reachable():
            count = await self._client.hget(self._key("tenants"), json.dumps(tenant))
        return int(count or 0)

    async def count_waiting(self) -> int:
        async with self._reachable():
            count = await self._client.hget(self._key("states"), WAITING)
        return max(0, int(count or 0))

    # ---- pins
    async def get_pin(self, prompt_id: str) -> Pin | None:
        async with self._reachable():
            raw = await self._client.hgetall(self._key("pin:", prompt_id))
        return codec.pin_of(prompt_id, codec.flat(raw))

    async def job_and_pin(self, prompt_id: str) -> tuple[StoredJob | None, Pin | None]:
        async with self._reachable(), self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key("job:", prompt_id))
            pipe.hgetall(self._key("pin:", prompt_id))
            job, pin = await pipe.execute()
        return codec.job_of(prompt_id, codec.flat(job)), codec.pin_of(prompt_id, codec.flat(pin))

    async def put_pin(self, pin: Pin) -> None:
        args: list[codec.Arg] = ["backend", pin.backend, "digest", pin.digest, "answer", pin.answer]
        args += ["client_id", json.dumps(pin.client_id), "tenant", json.dumps(pin.tenant)]
        await self._run(self._put_pin, [self._key("pin:", pin.prompt_id)], pin.prompt_id, *args)

    async def remove_pin(self, prompt_id: str) -> None:
        await self._run(self._remove_pin, [], prompt_id)

    async def pins_of(self, backend: str) -> list[Pin]:
        rows = await self._run(self._pins_of, [], backend)
        return [pin for pid, flat in rows if (pin := codec.pin_of(pid.decode(), flat)) is not None]

    # ---- the webhook outbox
    async def claim_owed(
        self, holder: str, now: float, until: float, mine: bool = False
    ) -> list[Owed]:
        rows = await self._run(self._claim_owed, [], holder, now, until, "1" if mine else "0")
        return outbox.claimed(rows, until)

    async def hold_owed(self, key: str, holder: str, until: float) -> bool:
        return bool(await self._run(self._hold_owed, [], key, holder, until))

    async def settle_owed(self, key: str) -> None:
        await self._run(self._settle_owed, [], key)

    async def count_owed(self) -> int:
        async with self._reachable():
            return int(await self._client.zcard(self._key("owed")))

    # ---- kept history
    async def put_history(self, prompt_id: str, entry: Any) -> None:
        text = json.dumps(entry)
        start = entry_time(entry)
        args = (start, text, self._max, self._cutoff(), self._token())
        await self._run(self._put_history, [], prompt_id, *args)

    def _cutoff(self) -> str:
        return repr(self._retention.cutoff())  # '-inf' without an age limit

    async def get_history(self, prompt_id: str) -> Any | None:
        async with self._reachable():
            text = await self._client.hget(self._key("entries"), prompt_id)
        if text is None:
            return None
        try:
            entry = json.loads(text)
        except ValueError as exc:
            codec.skipped("history", prompt_id, exc)
            return None
        if entry_time(entry) < self._retention.cutoff():
            await self._expire()
            return None
        return entry

    async def _expire(self) -> None:
        """Entries past `max_age` go now, with their pins and ended jobs."""
        keep, token = self._max, self._token()
        await self._run(self._expire_history, [], keep, self._cutoff(), token)

    async def remove_history(self, prompt_id: str) -> None:
        await self._run(self._remove_history, [], prompt_id, self._token())

    async def histories(self) -> KeptHistory:
        """The kept entries in time order. A read asks Redis for the changes
        since the last one (every replica's): nothing when there are none,
        the entries changed since, or all of them after the log of changes
        moved past what this copy holds (or Redis lost its data). Entries
        past `max_age` in it are expired in Redis, and the copy caught up."""
        await self._catch_up()
        if self._kept.expires(self._retention.cutoff()):
            await self._expire()
            await self._catch_up()
        return self._kept

    async def _catch_up(self) -> None:
        life, last = self._kept_at
        found, now, how, rows = await self._run(self._histories, [], life, last)
        if how == b"same":
            self.rows_read = 0
            return
        if how == b"all":
            self._kept = KeptHistory.of_raw(self._max, codec.raw_rows(rows))
        else:
            for start, prompt_id, text in rows:
                pid = prompt_id.decode()
                if text is None:
                    self._kept.remove(pid)
                else:
                    self._kept.put_raw(float(start), pid, text.decode())
        self._kept_at, self.rows_read = (found, int(now)), len(rows)
