"""Small helpers of the tracking suite."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import asyncpg

from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.domain.enums import Category, OrderType, Side, TimeInForce
from order_manager.domain.orders import OrderState
from order_manager.domain.plans import order_link_id
from order_manager.services.ports.uow import UnitOfWorkFactory

PREFIX = "om"  # the orderLinkId prefix of the tracking tests


def uow_factory(pool: asyncpg.Pool) -> UnitOfWorkFactory:
    """The PostgreSQL factory typed as the port (the Protocol's repository attributes are
    mutable, hence invariant for mypy, so the structural match needs this cast)."""
    return cast(UnitOfWorkFactory, PostgresUnitOfWorkFactory(pool))


async def one_row(pool: asyncpg.Pool, query: str, *args: object) -> asyncpg.Record:
    """The single row `query` returns (fails the test when there is none)."""
    row = await pool.fetchrow(query, *args)
    assert row is not None, f"no row for {query!r} {args!r}"
    return row


async def insert_signal(pool: asyncpg.Pool, signal_id: str, *, is_warmup: bool = False) -> None:
    """An executed BTCUSDT signal row (with a market snapshot for event enrichment)."""
    await pool.execute(
        "INSERT INTO signals"
        " (signal_id, status, symbol, strategy_id, amount, confidence, is_warmup, raw)"
        " VALUES ($1::uuid, 'executed', 'BTCUSDT', 'momentum_v1', 1000, 0.82, $3, $2)",
        signal_id,
        {"signal_id": signal_id, "market_data_snapshot": {"price": "64250.5", "spread": "0.5"}},
        is_warmup,
    )


async def insert_intent(
    pool: asyncpg.Pool, signal_id: str, qty: str, price: str, symbol: str = "BTCUSDT"
) -> str:
    """Our limit buy's write-ahead intent (leg 1 of ``signal_id``); returns its orderLinkId."""
    link = order_link_id(PREFIX, signal_id, 1)
    state = OrderState.submitting(
        order_link_id=link,
        category=Category.LINEAR,
        symbol=symbol,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal(qty),
        price=Decimal(price),
        time_in_force=TimeInForce.GTC,
        created_at=datetime.now(UTC),
    )
    async with uow_factory(pool)() as uow:
        _record, created = await uow.orders.add_intent(
            state, signal_id=signal_id, leg=1, trace_id="trace-sig", is_dry_run=False
        )
        await uow.commit()
    assert created
    return link
