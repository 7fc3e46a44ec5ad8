"""The real FastAPI app (`api.app.create_app`) over a real PostgreSQL pool, for API tests.

`ApiHarness.client` is an `httpx.AsyncClient` on the ASGI app that sends the API key;
`anonymous` sends none. Seeding helpers write rows the way the service's own repositories
would (plain SQL: the read side is what is under test here).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from fastapi import APIRouter

from order_manager.adapters.postgres.queries_repo import PgReadQueries
from order_manager.api.app import create_app
from order_manager.api.probes import Probes
from order_manager.api.routers import ApiServices, build_routers
from order_manager.config import Settings, load_settings

API_KEY = "api-test-key-0123456789abcdef"


def api_settings(db_url: str) -> Settings:
    return load_settings(
        environ={
            "ORDERMANAGER_DATABASE_URL": db_url,
            "ORDERMANAGER_RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:1/",
            "ORDERMANAGER_API_KEY": API_KEY,
        }
    )


@dataclass
class ApiTestContainer:
    """`ApiContainer` with nothing to start: the pool is opened by the fixture."""

    settings: Settings
    probes: Probes
    api_routers: list[APIRouter] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


@dataclass
class ApiHarness:
    pool: asyncpg.Pool
    client: httpx.AsyncClient
    anonymous: httpx.AsyncClient


@asynccontextmanager
async def api_harness(
    pool: asyncpg.Pool, db_url: str, services: ApiServices | None = None
) -> AsyncIterator[ApiHarness]:
    services = services or ApiServices(queries=PgReadQueries(pool))
    container = ApiTestContainer(api_settings(db_url), Probes(), build_routers(services))
    app = create_app(container)
    transport = httpx.ASGITransport(app=app)
    base = "http://om.test"
    async with (
        httpx.AsyncClient(
            transport=transport, base_url=base, headers={"X-API-Key": API_KEY}, timeout=60
        ) as client,
        httpx.AsyncClient(transport=transport, base_url=base, timeout=60) as anonymous,
    ):
        yield ApiHarness(pool, client, anonymous)


# ------------------------------------------------------------------------------ seeding


async def seed_signal(
    pool: asyncpg.Pool,
    *,
    status: str = "executed",
    symbol: str = "BTCUSDT",
    reason_code: str | None = None,
    reason_message: str | None = None,
    received_at: datetime | None = None,
    strategy_id: str = "strat-a",
    is_dry_run: bool = False,
) -> str:
    sid = str(uuid.uuid4())
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO signals (signal_id, status, symbol, signal_type, strategy_id, amount,"
            " amount_unit, confidence, raw, reason_code, reason_message, received_at,"
            " is_dry_run, completed_at)"
            " VALUES ($1::uuid, $2, $3, 'buy', $7, 1000, 'quote', 0.8, $4, $5, $6,"
            " COALESCE($8, now()), $9, CASE WHEN $2 IN ('executed', 'rejected', 'failed')"
            " THEN COALESCE($8, now()) + interval '1 second' END)",
            sid,
            status,
            symbol,
            json.loads('{"seeded": true}'),
            reason_code,
            reason_message,
            strategy_id,
            received_at,
            is_dry_run,
        )
    return sid


async def seed_order(
    pool: asyncpg.Pool,
    *,
    symbol: str = "BTCUSDT",
    side: str = "Buy",
    status: str = "pending",
    qty: str = "0.010",
    price: str | None = "60000.5",
    cum_exec_qty: str = "0",
    avg_price: str | None = None,
    signal_id: str | None = None,
    order_id: str | None = None,
    created_at: datetime | None = None,
    is_dry_run: bool = False,
    link_id: str | None = None,
) -> dict[str, Any]:
    link = link_id or f"om-{uuid.uuid4().hex[:20]}"
    oid = order_id if order_id is not None else uuid.uuid4().hex
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO orders (order_link_id, order_id, signal_id, leg, symbol, side,"
            " order_type, time_in_force, qty, price, status, cum_exec_qty, avg_price,"
            " created_at, is_dry_run)"
            " VALUES ($1, $2, $3::uuid, 1, $4, $5, 'Limit', 'GTC', $6, $7, $8, $9, $10,"
            " $11, $12) RETURNING id::text AS id",
            link,
            oid,
            signal_id,
            symbol,
            side,
            Decimal(qty),
            Decimal(price) if price is not None else None,
            status,
            Decimal(cum_exec_qty),
            Decimal(avg_price) if avg_price is not None else None,
            created_at or datetime.now(UTC),
            is_dry_run,
        )
    assert row is not None
    return {"id": row["id"], "order_link_id": link, "order_id": oid}


async def seed_link(pool: asyncpg.Pool, signal_id: str, order_uuid: str, relation: str) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO signal_order_links (signal_id, order_uuid, relation, allocated_qty)"
            " VALUES ($1::uuid, $2::uuid, $3, 0.005)",
            signal_id,
            order_uuid,
            relation,
        )


async def seed_fill(
    pool: asyncpg.Pool, order: dict[str, Any], qty: str, price: str, *, symbol: str = "BTCUSDT"
) -> str:
    exec_id = uuid.uuid4().hex
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO executions (exec_id, order_uuid, order_id, order_link_id, symbol, side,"
            " exec_qty, exec_price, exec_value, exec_fee, fee_currency, is_maker, exec_time)"
            " VALUES ($1, $2::uuid, $3, $4, $5, 'Buy', $6, $7, $8, 0.0012, 'USDT', true, now())",
            exec_id,
            order["id"],
            order["order_id"],
            order["order_link_id"],
            symbol,
            Decimal(qty),
            Decimal(price),
            Decimal(qty) * Decimal(price),
        )
    return exec_id


async def seed_position(
    pool: asyncpg.Pool,
    *,
    symbol: str,
    side: str,
    size: str,
    avg: str,
    position_idx: int = 0,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO positions (symbol, position_idx, side, size, avg_entry_price,"
            " realized_pnl, unrealized_pnl, fees_paid, mark_price)"
            " VALUES ($1, $2, $3, $4, $5, 1.5, -0.25, 0.06, 60010)",
            symbol,
            position_idx,
            side,
            Decimal(size),
            Decimal(avg),
        )


async def seed_snapshots(
    pool: asyncpg.Pool, symbol: str, times: Sequence[datetime], source: str = "periodic"
) -> None:
    async with pool.acquire() as conn:
        for i, at in enumerate(times):
            await conn.execute(
                "INSERT INTO position_snapshots (category, symbol, position_idx, side, size,"
                " avg_entry_price, realized_pnl, unrealized_pnl, source, snapshot_at)"
                " VALUES ('linear', $1, 0, 'Buy', $2, 60000, 0, 0, $3, $4)",
                symbol,
                Decimal(i + 1) / 1000,
                source,
                at,
            )
