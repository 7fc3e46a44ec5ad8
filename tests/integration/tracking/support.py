"""Small helpers of the tracking suite."""

from __future__ import annotations

from typing import cast

import asyncpg

from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.services.ports.uow import UnitOfWorkFactory


def uow_factory(pool: asyncpg.Pool) -> UnitOfWorkFactory:
    """The PostgreSQL factory typed as the port (the Protocol's repository attributes are
    mutable, hence invariant for mypy, so the structural match needs this cast)."""
    return cast(UnitOfWorkFactory, PostgresUnitOfWorkFactory(pool))


async def one_row(pool: asyncpg.Pool, query: str, *args: object) -> asyncpg.Record:
    """The single row `query` returns (fails the test when there is none)."""
    row = await pool.fetchrow(query, *args)
    assert row is not None, f"no row for {query!r} {args!r}"
    return row
