"""Two batches of one tracker that lock the same rows in opposite orders never deadlock.

The live stream, the reconciler and the position keeper write through one tracker, each batch
locking orders and position books in the order its items came. Here the interleaving that
deadlocks is forced on a real PostgreSQL: batch 1 is held inside its transaction right after
locking its first row; batch 2 (the same rows, the other order) is started and the test waits
until it can go no further — blocked on batch 1's row lock, or waiting for the tracker's turn —
before letting batch 1 go on. The tracker runs with ``retries=0``: a deadlock PostgreSQL breaks
would surface as ``DeadlockDetectedError`` instead of being hidden by a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from order_manager.domain.enums import Category
from order_manager.services.ports.uow import UnitOfWork
from order_manager.services.tracker import Tracker
from tests.helpers import eventually
from tests.integration.tracking.streams import T0, exec_obj, order_obj
from tests.integration.tracking.support import (
    PREFIX,
    insert_intent,
    insert_signal,
    one_row,
    uow_factory,
)

pytestmark = pytest.mark.integration

DEADLINE = 10.0  # s: a batch that is neither blocked nor done by then is a test failure


class HeldLock:
    """Real units of work; the first transaction that locks ``label``'s row (an order by
    orderLinkId, ``position:<symbol>`` for a book) is held right after the lock until
    ``release`` — with the row locked, as a transaction that was descheduled there."""

    def __init__(self, pool: asyncpg.Pool, label: str) -> None:
        self._factory = uow_factory(pool)
        self._label = label
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def _hold(self, label: str) -> None:
        if label == self._label and not self.holding.is_set():
            self.holding.set()
            await self.release.wait()

    def _gate(self, uow: UnitOfWork) -> None:
        locate = uow.orders.locate
        lock_position = uow.tracking.lock_position

        async def held_locate(order_id: str, link: str, *, for_update: bool = False) -> Any:
            found = await locate(order_id, link, for_update=for_update)
            await self._hold(link)
            return found

        async def held_lock_position(
            category: Category, symbol: str, idx: Any, *, is_dry_run: bool
        ) -> Any:
            book = await lock_position(category, symbol, idx, is_dry_run=is_dry_run)
            await self._hold(f"position:{symbol}")
            return book

        uow.orders.locate = held_locate  # type: ignore[method-assign]
        uow.tracking.lock_position = held_lock_position  # type: ignore[method-assign]

    @contextlib.asynccontextmanager
    async def _unit(self, atomic: bool) -> AsyncIterator[UnitOfWork]:
        async with self._factory(atomic=atomic) as uow:
            self._gate(uow)
            yield uow

    def __call__(self, *, atomic: bool = True) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._unit(atomic)


async def lock_waiters(pool: asyncpg.Pool) -> int:
    """Backends of this database waiting for a lock (a row, or another transaction's id)."""
    value = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(value)


async def run_crossed(
    pool: asyncpg.Pool,
    held: HeldLock,
    first: tuple[str, list[dict[str, Any]]],
    second: tuple[str, list[dict[str, Any]]],
) -> Tracker:
    """Batch ``first`` is held after locking ``held``'s row; ``second`` runs until it can go no
    further; then ``first`` goes on. Both must commit."""
    tracker = Tracker(held, link_prefix=PREFIX, retries=0)  # type: ignore[arg-type]
    one = asyncio.create_task(tracker.handle(*first))
    await asyncio.wait_for(held.holding.wait(), DEADLINE)
    two = asyncio.create_task(tracker.handle(*second))

    async def stuck() -> bool:
        assert not two.done() or two.exception() is None, two.exception()
        assert not two.done(), "the second batch ran through rows the first one holds"
        return tracker.waiting > 0 or await lock_waiters(pool) > 0

    await eventually(stuck, timeout=DEADLINE, what="the second batch waits for the first")
    held.release.set()
    await asyncio.wait_for(asyncio.gather(one, two), DEADLINE)
    return tracker


async def add_order(pool: asyncpg.Pool, symbol: str, qty: str, price: str) -> str:
    signal_id = str(uuid.uuid4())
    await insert_signal(pool, signal_id)
    return await insert_intent(pool, signal_id, qty, price, symbol)


def order_at(link: str, symbol: str, qty: str, price: str, status: str, t: int) -> dict[str, Any]:
    filled = Decimal(qty) if status == "Filled" else Decimal(0)
    return order_obj(
        order_id=f"ord-{link}",
        link=link,
        symbol=symbol,
        side="Buy",
        qty=qty,
        price=price,
        status=status,
        cum_qty=filled,
        cum_value=filled * Decimal(price),
        cum_fee=Decimal(0),
        updated_ms=t,
    )


async def test_order_batches_in_opposite_orders_both_commit(pool: asyncpg.Pool) -> None:
    a = await add_order(pool, "BTCUSDT", "0.010", "60000")
    b = await add_order(pool, "BTCUSDT", "0.020", "59000")
    live = [
        order_at(a, "BTCUSDT", "0.010", "60000", "New", T0),
        order_at(b, "BTCUSDT", "0.020", "59000", "New", T0),
    ]
    listing = [  # e.g. a sync's listing, later: B cancelled, then A cancelled
        order_at(b, "BTCUSDT", "0.020", "59000", "Cancelled", T0 + 100),
        order_at(a, "BTCUSDT", "0.010", "60000", "Cancelled", T0 + 100),
    ]
    await run_crossed(pool, HeldLock(pool, a), ("order", live), ("order", listing))

    for link in (a, b):
        row = await one_row(pool, "SELECT * FROM orders WHERE order_link_id = $1", link)
        assert row["status"] == "cancelled"
        assert row["order_id"] == f"ord-{link}"
        events = await pool.fetch(
            "SELECT event_type FROM outbox WHERE aggregate_id = $1::text ORDER BY sequence",
            str(row["id"]),
        )
        assert [e["event_type"] for e in events] == ["created", "cancelled"]


async def test_fills_and_position_pushes_in_opposite_orders_both_commit(
    pool: asyncpg.Pool,
) -> None:
    """Fills on BTC then ETH lock the BTC book then the ETH book; the exchange's position
    pushes in the other order lock them the other way round."""
    btc = await add_order(pool, "BTCUSDT", "0.010", "60000")
    eth = await add_order(pool, "ETHUSDT", "0.100", "3000")
    fills = [
        exec_obj(
            exec_id=f"e-{link}",
            order_id=f"ord-{link}",
            link=link,
            symbol=symbol,
            side="Buy",
            qty=qty,
            price=price,
            fee="0",
            exec_ms=T0 + 10,
            seq=i,
            order_qty=qty,
            order_price=price,
        )
        for i, (link, symbol, qty, price) in enumerate(
            ((btc, "BTCUSDT", "0.010", "60000"), (eth, "ETHUSDT", "0.100", "3000")), start=1
        )
    ]
    pushes = [
        position_obj("ETHUSDT", "0.100", "3000", T0 + 20),
        position_obj("BTCUSDT", "0.010", "60000", T0 + 20),
    ]
    held = HeldLock(pool, "position:BTCUSDT")
    await run_crossed(pool, held, ("execution", fills), ("position", pushes))

    for symbol, size in (("BTCUSDT", "0.010"), ("ETHUSDT", "0.100")):
        book = await one_row(pool, "SELECT * FROM positions WHERE symbol = $1", symbol)
        assert book["size"] == Decimal(size)
        assert book["side"] == "Buy"
    assert await pool.fetchval("SELECT count(*) FROM executions") == 2


def position_obj(symbol: str, size: str, price: str, t: int) -> dict[str, Any]:
    return {
        "category": "linear",
        "symbol": symbol,
        "side": "Buy",
        "size": size,
        "positionIdx": 0,
        "avgPrice": price,
        "entryPrice": price,
        "markPrice": price,
        "positionValue": str(Decimal(size) * Decimal(price)),
        "unrealisedPnl": "0",
        "cumRealisedPnl": "0",
        "leverage": "10",
        "positionStatus": "Normal",
        "updatedTime": str(t),
        "seq": 1,
    }
