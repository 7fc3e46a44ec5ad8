"""Fixtures for the tracking suite: a pool on the per-test database, a private broker node."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from order_manager.adapters.postgres.pool import create_pool
from tests.integration.tracking.private_broker import PrivateRabbitMQ


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=12)
    yield p
    await p.close()


@pytest.fixture
def private_rabbitmq(tmp_path: Path) -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node of this test only (it may be stopped); shut down even on failure."""
    broker = PrivateRabbitMQ(tmp_path / "rabbitmq")
    try:
        broker.start()
        yield broker
    finally:
        broker.shutdown()
