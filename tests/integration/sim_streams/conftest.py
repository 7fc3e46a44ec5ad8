"""Fixtures for the simulator stream/fault tests.

Each test gets its own fresh simulator (starting one takes milliseconds) with frozen prices, so
no price tick fills or moves anything behind a test's back, and without Bybit's per-UID rate
limits, so tests that create many orders quickly are not throttled (rate limits have their own
tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer
from tests.integration.sim_streams.helpers import SimRest


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig().with_path("frozen").with_overrides(rate_limits_enabled=False)
    server = SimServer(config)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def credentials(sim: SimServer) -> tuple[str, str]:
    key, secret = next(iter(sim.state.config.api_keys.items()))
    return str(key), str(secret)


@pytest.fixture
def ws_base(sim: SimServer) -> str:
    return str(sim.url).replace("http://", "ws://", 1).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def rest(
    sim: SimServer, http: aiohttp.ClientSession, credentials: tuple[str, str]
) -> AsyncIterator[SimRest]:
    """Signed client; fault rules are cleared after each test so drills never leak."""
    client = SimRest(http, str(sim.url), *credentials)
    yield client
    sim.state.faults.clear()
