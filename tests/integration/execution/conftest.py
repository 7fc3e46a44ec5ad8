"""Fixtures of the execution tests: a pool on a fresh database, signal rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from order_manager.adapters.postgres.pool import create_pool


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=8)
    yield p
    await p.close()


async def insert_signal(pool: asyncpg.Pool, signal_id: str | None = None) -> str:
    """A `signals` row (status processing), as the intake writes it before processing."""
    sid = signal_id or str(uuid.uuid4())
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO signals (signal_id, status, raw) VALUES ($1::uuid, 'processing', $2)"
            " ON CONFLICT DO NOTHING",
            sid,
            json.loads('{"test": true}'),
        )
    return sid
