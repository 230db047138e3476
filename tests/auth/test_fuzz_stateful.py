"""A stateful fuzz of two tenants on a live balancer in front of two
in-process emulators (issue 12). Alice and bob upload under generated names
and subfolders (dot segments, repeated slashes, backslashes, encodings,
unicode), submit prompts that reference their own and each other's uploads
and outputs in every form the balancer accepts, view, cancel, interrupt,
delete, re-post ids and hold sockets.

Invariants: never a 5xx; neither tenant receives, overwrites or runs on the
other's bytes (every image is coloured by its tenant, so the pixels say
whose bytes they are); no credential reaches a backend (a recording
middleware on each emulator sees every request).

Hypothesis runs in a worker thread; each step's requests run on the test's
event loop. Derandomized: the same steps every run."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from multidict import CIMultiDict
from PIL import Image
from support import Pool, PoolFactory, colored, run_stateful
from upload_support import form, i2i, png

from .auth_helpers import SECRETS, keyed_pool
from .recording import Recorder

TENANTS = ("alice", "bob")
# Red channel of every image a tenant makes: its colour, and that inverted.
MARK = {"alice": 0xA1, "bob": 0xB0}
REDS = {t: {r, 255 - r} for t, r in MARK.items()}
OTHER = {"alice": "bob", "bob": "alice"}

SEGMENTS = ["", ".", "..", "a", "_t_alice", "_t_bob", "@gpu0", "@gpu1", "ü", "%2e%2e", "x y"]
SUBFOLDERS = st.lists(st.sampled_from(SEGMENTS), max_size=3).flatmap(
    lambda parts: st.sampled_from(["/", "//", "\\"]).map(lambda sep: sep.join(parts))
)
NAMES = st.sampled_from(["in.png", "ü.png", "../in.png", "a/in.png", "in.png [input]", "%2e.png"])
# How a client may write a reference to a file it knows (sub, name).
FORMS = st.sampled_from(
    [
        "{sub}/{name}",
        "{sub}/{name} [input]",
        "{sub}/../{sub}/{name}",
        "_t_{me}/../{sub}/{name}",
        "{sub}\\{name}",
        "../input/{sub}/{name}",
        "{name} [output]",
        "{osub}/{name} [output]",
    ]
)
WHO = st.sampled_from(TENANTS)
STYLE = st.integers(0, 5)  # which way the key is presented (`key_headers`)
# Which of the files known so far a step names (the strategy must not depend
# on state that outlives one example, so an index, not a sampled value).
PICK = st.integers(0, 10_000)
OUTPUT_FORMS = st.sampled_from(
    [
        "{name} [output]",
        "{sub}/{name} [output]",
        "{name} [temp]",
        "../output/{name}",
        "{sub}/{name}",
    ]
)
SPELLINGS = st.sampled_from(
    ["{sub}", "_t_{me}/../{sub}", "_t_{me}\\..\\{sub}", "{sub}//", "./{sub}"]
)


def key_headers(tenant: str, style: int) -> tuple[CIMultiDict[str], dict[str, str]]:
    """(headers, query) presenting the tenant's key in one of its forms,
    repeated headers included."""
    secret, other = SECRETS[tenant], SECRETS[OTHER[tenant]]
    forms: list[tuple[list[tuple[str, str]], dict[str, str]]] = [
        ([("X-API-Key", secret)], {}),
        ([("Authorization", f"Bearer {secret}")], {}),
        ([], {"token": secret}),
        ([("X-API-Key", secret), ("X-API-Key", other)], {}),
        ([("Authorization", f"Bearer {secret}"), ("Authorization", "Basic eDp5")], {}),
        ([("X-API-Key", secret), ("Proxy-Authorization", "Basic eDp5")], {"token": secret}),
    ]
    headers, query = forms[style % len(forms)]
    return CIMultiDict(headers), query


def whose(data: bytes) -> str | None:
    """The tenant whose colour an image shows, None for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            red = img.convert("RGB").getpixel((0, 0))[0]  # type: ignore[index]
    except Exception:  # not an image at all
        return None
    return next((t for t, reds in REDS.items() if red in reds), None)


@dataclass
class World:
    """What each tenant made, across examples (the pool lives for the test)."""

    pool: Pool
    recorder: Recorder
    loop: asyncio.AbstractEventLoop
    uploads: dict[str, dict[tuple[str, str, str], bytes]] = field(default_factory=dict)
    jobs: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    counter: int = 0
    checked: int = 0

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def call(
        self, tenant: str, style: int, method: str, path: str, **kwargs: Any
    ) -> tuple[int, bytes]:
        headers, query = key_headers(tenant, style)
        params = {**kwargs.pop("params", {}), **query}
        resp = await self.pool.client.request(
            method, path, headers=headers, params=params, **kwargs
        )
        body = await resp.read()
        assert resp.status < 500, (method, path, kwargs, resp.status, body[:300])
        return resp.status, body

    def image(self, tenant: str) -> bytes:
        self.counter += 1
        return png((MARK[tenant], self.counter % 256, 7))

    def foreign(self, tenant: str, data: bytes) -> None:
        """Fail if `data` is the other tenant's: its upload, or its colour."""
        other = OTHER[tenant]
        assert data not in self.uploads.get(other, {}).values(), f"{tenant} got {other}'s upload"
        assert whose(data) != other, f"{tenant} got an image in {other}'s colour"


async def make_world(make_pool: PoolFactory) -> World:
    recorder = Recorder()
    pool = await keyed_pool(make_pool, 2, middlewares=(recorder.middleware,))
    return World(pool, recorder, asyncio.get_running_loop())


def machine(world: World) -> type[RuleBasedStateMachine]:
    class TwoTenants(RuleBasedStateMachine):
        @rule(tenant=WHO, style=STYLE, sub=SUBFOLDERS, name=NAMES, overwrite=st.booleans(),
              kind=st.sampled_from(["input", "output"]))  # fmt: skip
        def upload(
            self, tenant: str, style: int, sub: str, name: str, overwrite: bool, kind: str
        ) -> None:
            data = world.image(tenant)
            fields = {"subfolder": sub, "overwrite": str(overwrite).lower(), "type": kind}
            status, body = world.run(
                world.call(tenant, style, "POST", "/upload/image", data=form(data, name, **fields))
            )
            if status == 200:
                answer = json.loads(body)
                key = (answer["subfolder"], answer["name"], answer["type"])
                world.uploads.setdefault(tenant, {})[key] = data

        @rule(tenant=WHO, style=STYLE, spelling=SPELLINGS,
              pick=PICK)  # fmt: skip
        def view_upload(self, tenant: str, style: int, spelling: str, pick: int) -> None:
            known = [k for t in TENANTS for k in world.uploads.get(t, {})]
            if not known:
                return
            sub, name, kind = sorted(known)[pick % len(known)]
            params = {
                "filename": name,
                "type": kind,
                "subfolder": spelling.format(sub=sub, me=tenant),
            }
            status, body = world.run(world.call(tenant, style, "GET", "/view", params=params))
            if status == 200:
                world.foreign(tenant, body)

        @rule(tenant=WHO, style=STYLE, shape=FORMS, pick=PICK)
        def submit_upload_reference(self, tenant: str, style: int, shape: str, pick: int) -> None:
            files = [(k[0], k[1]) for t in TENANTS for k in world.uploads.get(t, {})]
            self._reference(tenant, style, shape, files, pick)

        @rule(tenant=WHO, style=STYLE, shape=OUTPUT_FORMS, pick=PICK)
        def submit_output_reference(self, tenant: str, style: int, shape: str, pick: int) -> None:
            files = [
                (o["subfolder"], o["filename"]) for t in TENANTS for o in world.outputs.get(t, [])
            ]
            self._reference(tenant, style, shape, files, pick)

        def _reference(
            self, tenant: str, style: int, shape: str, files: list[tuple[str, str]], pick: int
        ) -> None:
            if not files:
                return
            sub, name = sorted(files)[pick % len(files)]
            osub = sub if sub.startswith("@") else "@gpu0"
            value = shape.format(sub=sub, name=name, me=tenant, osub=osub)
            self._submit(tenant, style, i2i(value, prefix=f"{tenant}_i2i"))

        @rule(tenant=WHO, style=STYLE)
        def submit_plain(self, tenant: str, style: int) -> None:
            self._submit(tenant, style, colored(MARK[tenant] << 16, f"{tenant}_plain"))

        def _submit(self, tenant: str, style: int, prompt: dict[str, Any]) -> None:
            body = {"prompt": prompt, "client_id": f"c-{tenant}"}
            status, answer = world.run(world.call(tenant, style, "POST", "/prompt", json=body))
            if status == 200:
                world.jobs.setdefault(tenant, []).append(json.loads(answer)["prompt_id"])

        @rule(tenant=WHO, style=STYLE, same=st.booleans())
        def repost_an_id(self, tenant: str, style: int, same: bool) -> None:
            ids = [(t, i) for t in TENANTS for i in world.jobs.get(t, [])]
            if not ids:
                return
            owner, prompt_id = ids[-1]
            colour = MARK[owner] if same else MARK[tenant]
            body = {"prompt": colored(colour << 16, f"{owner}_plain"), "prompt_id": prompt_id}
            status, _ = world.run(world.call(tenant, style, "POST", "/prompt", json=body))
            if owner != tenant:
                assert status == 400, "another tenant's prompt_id was accepted"

        @rule(tenant=WHO, style=STYLE,
              action=st.sampled_from(["cancel", "interrupt", "queue", "history"]))  # fmt: skip
        def touch_a_job(self, tenant: str, style: int, action: str) -> None:
            ids = [i for t in TENANTS for i in world.jobs.get(t, [])]
            if not ids:
                return
            target = ids[len(ids) // 2]
            calls = {
                "cancel": ("POST", f"/api/jobs/{target}/cancel", None),
                "interrupt": ("POST", "/interrupt", {"prompt_id": target}),
                "queue": ("POST", "/queue", {"delete": [target]}),
                "history": ("POST", "/history", {"delete": [target]}),
            }
            method, path, body = calls[action]
            world.run(world.call(tenant, style, method, path, json=body))

        @rule(tenant=WHO, style=STYLE, pick=PICK)
        def view_output(self, tenant: str, style: int, pick: int) -> None:
            items = [o for t in TENANTS for o in world.outputs.get(t, [])]
            if not items:
                return
            item = items[pick % len(items)]
            status, body = world.run(world.call(tenant, style, "GET", "/view", params=item))
            if status == 200:
                world.foreign(tenant, body)

        @rule()
        def settle(self) -> None:
            world.run(finish_jobs(world))

        @invariant()
        def no_credential_reached_a_backend(self) -> None:
            assert world.recorder.credentials() == []

    return TwoTenants


async def finish_jobs(world: World) -> None:
    """Let every job end, then each tenant reads its own outputs: they must
    be in its own colour (it never ran on the other's bytes)."""
    await quiet(world.pool)
    for tenant in TENANTS:
        for prompt_id in world.jobs.get(tenant, []):
            status, body = await world.call(tenant, 0, "GET", f"/history/{prompt_id}")
            entry = json.loads(body).get(prompt_id, {})
            for output in entry.get("outputs", {}).values():
                for item in output.get("images", []):
                    params = {k: item[k] for k in ("filename", "subfolder", "type")}
                    status, data = await world.call(tenant, 0, "GET", "/view", params=params)
                    assert status == 200, (tenant, params)
                    assert whose(data) == tenant, f"{tenant}'s job ran on {OTHER[tenant]}'s bytes"
                    if params not in world.outputs.setdefault(tenant, []):
                        world.outputs[tenant].append(params)


async def quiet(pool: Pool, timeout: float = 20.0) -> None:
    """Probe (as the prober would) until nothing is waiting or running,
    waking on each job event. Deleted and cancelled jobs end too."""
    events: asyncio.Queue[Any] = asyncio.Queue()

    class Watch:
        async def job_event(self, event: Any) -> None:
            events.put_nowait(event)

    b = pool.balancer
    b.events.subscribe(Watch())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def busy() -> bool:
        return bool(await b.store.unfinished_jobs())

    while await busy():
        assert loop.time() < deadline, "jobs never ended"
        await pool.probe()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(events.get(), 0.05)


async def test_two_tenants_never_cross(make_pool: PoolFactory) -> None:
    world = await make_world(make_pool)
    sockets = {}
    for tenant in TENANTS:  # each listens under the other's client_id too
        other = f"c-{OTHER[tenant]}"
        sockets[tenant] = await world.pool.client.ws_connect(
            "/ws", params={"clientId": other, "token": SECRETS[tenant]}
        )
    await run_stateful(machine(world), steps=12)
    await finish_jobs(world)
    for tenant in TENANTS:  # the last bytes each uploaded under a name are still there
        for (sub, name, kind), data in world.uploads.get(tenant, {}).items():
            if ".." in name:
                continue  # stored, but /view refuses such a name (400), as ComfyUI does
            params = {"filename": name, "subfolder": sub, "type": kind}
            status, body = await world.call(tenant, 0, "GET", "/view", params=params)
            assert (status, body) == (200, data), (tenant, params)
    for tenant, sock in sockets.items():
        seen = await drain(sock)
        assert not any(i in seen for i in world.jobs.get(OTHER[tenant], [])), tenant
        await sock.close()
    assert sum(map(len, world.jobs.values())) > 10, "the fuzz ran jobs"
    assert sum(map(len, world.uploads.values())) > 10, "the fuzz made uploads"


async def drain(ws: Any) -> str:
    seen = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), 0.2)
        except TimeoutError:
            return "".join(seen)
        seen.append(str(msg.data))
