"""The asyncpg connection pool every repository shares.

Each connection is set up the same way: session time zone UTC (timestamps come back as aware
UTC datetimes), `json`/`jsonb` encoded and decoded as Python objects (Decimal values are
written as exact strings, never floats), and an application name that shows in
`pg_stat_activity`. NUMERIC columns come back as `decimal.Decimal` (asyncpg's default).

Releasing a connection costs no round trip. asyncpg's default reset runs
`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release — one extra round
trip per unit of work, ~6 per signal. Our code never leaves session state on a pooled
connection: advisory locks are transaction-scoped (`pg_advisory_xact_lock`), LISTEN runs on the
relay's own connection (`outbox_listener`), settings are only ever `SET LOCAL`, no cursor
outlives its transaction. asyncpg still rolls back a transaction left open before calling our
reset, so a released connection is never handed out inside a transaction (tested).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

APPLICATION_NAME = "order-manager"


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: object) -> str:
    """JSON text for a json/jsonb parameter (Decimal and UUID as strings, datetimes ISO)."""
    return json.dumps(value, default=_json_default, separators=(",", ":"))


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up used by the pool (also usable for single connections)."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing to undo (see the module docstring); asyncpg has already rolled back
    any open transaction before it calls this."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    command_timeout: float = 10.0,
) -> asyncpg.Pool:
    """Open a pool; raises `OSError`/`asyncpg.PostgresError` when the database is unreachable."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=init_connection,
        reset=_keep_session,
        server_settings={"timezone": "UTC", "application_name": APPLICATION_NAME},
    )
    assert pool is not None  # asyncpg types the awaited pool as optional
    return pool


async def ping(pool: asyncpg.Pool) -> None:
    """Raise when the database does not answer a trivial query."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
