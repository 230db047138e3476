"""`bench proxy`'s small rows: the paths compared take turns in slices, so
other work on a shared machine falls on each of them alike."""

from __future__ import annotations

import itertools

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from balancer.bench.proxy import ROUNDS, taking_turns


async def test_paths_take_turns_each_round_starting_one_further() -> None:
    arrivals: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        arrivals.append(request.match_info["name"])
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_get("/{name}", answer)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        paths = {name: (str(server.make_url(f"/{name}")), []) for name in ("a", "b", "c")}
        spent = await taking_turns(session, paths, concurrency=1, seconds=0.03 * ROUNDS)
    turns = [name for name, _ in itertools.groupby(arrivals)]
    rounds = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    expected = [name for i in range(ROUNDS) for name in rounds[i % 3]]
    # One slice's run of a path may meet the next round's first slice of it.
    assert [name for name, _ in itertools.groupby(expected)] == turns
    assert {name: s.result.requests for name, s in spent.items()} == {
        name: arrivals.count(name) for name in "abc"
    }
