"""Fixtures: an emulator app per test (time_scale 0, its own directories)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from balancer.emulator import EmulatorOptions, create_emulator_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path) -> ClientFactory:
    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        sub = overrides.pop("sub", "emu")
        options = replace(EmulatorOptions(base_dir=tmp_path / sub, time_scale=0.0), **overrides)
        client: TestClient[Any, Any] = await aiohttp_client(create_emulator_app(options))
        return client

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()
