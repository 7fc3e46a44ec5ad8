"""Fixtures for the simulator's raw-protocol REST tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bybit_sim.server import SimServer
from tests.integration.sim.client import RawClient


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[RawClient]:
    async with aiohttp.ClientSession() as http:
        yield RawClient(http, sim.url)
