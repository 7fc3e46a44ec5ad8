"""Fixtures of the API tests: a pool on a fresh migrated database and the real app over it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from order_manager.adapters.postgres.pool import create_pool
from tests.integration.api.support import ApiHarness, api_harness


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=6)
    yield p
    await p.close()


@pytest.fixture
async def api(pool: asyncpg.Pool, db_url: str) -> AsyncIterator[ApiHarness]:
    async with api_harness(pool, db_url) as harness:
        yield harness
