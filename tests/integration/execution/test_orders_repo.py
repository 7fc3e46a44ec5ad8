"""Orders repository on real PostgreSQL: idempotent intents, state round trip, audit rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

import asyncpg
import pytest

from order_manager.adapters.postgres.orders_repo import (
    FOR_SIGNAL_SQL,
    LOCATE_SQL,
    PgOrderRepository,
)
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.domain.enums import Category, OrderType, Side, TimeInForce
from order_manager.domain.orders import (
    ExchangeOrderUpdate,
    OrderState,
    OrderStatus,
    acknowledge,
    apply_update,
    mark_failed,
)
from order_manager.domain.plans import LinkType, Relation, SignalOrderLink, order_link_id
from order_manager.services.ports.orders import OrderRepository
from order_manager.services.ports.outbox import QueuedEvent
from tests.helpers import record_create_call

from .conftest import insert_signal

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _intent(link: str, qty: str = "0.015") -> OrderState:
    return OrderState.submitting(
        order_link_id=link,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal(qty),
        price=Decimal("64000.1"),
        time_in_force=TimeInForce.GTC,
        created_at=NOW,
    )


async def test_intent_is_idempotent_by_link_id_and_links_are_written(
    pool: asyncpg.Pool,
) -> None:
    signal_id = await insert_signal(pool)
    link = order_link_id("om", signal_id, 1)
    links = [
        SignalOrderLink(signal_id, link, LinkType.ONE_TO_ONE, Relation.CREATE, 1, Decimal("0.015"))
    ]
    factory = PostgresUnitOfWorkFactory(pool)
    async with factory() as uow:
        repo: OrderRepository = uow.orders
        first, created = await repo.add_intent(
            _intent(link), signal_id=signal_id, leg=1, trace_id="t1", is_dry_run=False, links=links
        )
        await uow.commit()
    assert created
    async with factory() as uow:
        again, created_again = await uow.orders.add_intent(
            _intent(link, "9"), signal_id=signal_id, leg=1, trace_id="t2", is_dry_run=False
        )
        await uow.commit()
    assert not created_again
    assert again.uuid == first.uuid
    assert again.state.qty == Decimal("0.015")  # the first intent wins
    assert again.state.status is OrderStatus.SUBMITTING
    assert again.signal_ids == (signal_id,)
    assert again.trace_id == "t1"
    async with factory() as uow:
        assert [o.uuid for o in await uow.orders.submitting(is_dry_run=False)] == [first.uuid]
        assert await uow.orders.submitting(is_dry_run=True) == []
        assert [o.uuid for o in await uow.orders.for_signal(signal_id)] == [first.uuid]


async def test_state_round_trips_through_the_row(pool: asyncpg.Pool) -> None:
    signal_id = await insert_signal(pool)
    link = order_link_id("om", signal_id, 1)
    factory = PostgresUnitOfWorkFactory(pool)
    async with factory() as uow:
        row, _ = await uow.orders.add_intent(
            _intent(link), signal_id=signal_id, leg=1, trace_id="t", is_dry_run=False
        )
        acked = acknowledge(row.state, "ex-1", NOW + timedelta(milliseconds=5))
        row = await uow.orders.save(row, acked.state)
        await uow.commit()
    assert row.state.status is OrderStatus.PENDING
    assert row.state.order_id == "ex-1"
    assert row.submitted_at is not None

    update = ExchangeOrderUpdate.from_bybit(
        {
            "orderId": "ex-1",
            "orderLinkId": link,
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "orderStatus": "PartiallyFilled",
            "qty": "0.015",
            "price": "64000.1",
            "cumExecQty": "0.005",
            "cumExecValue": "320.0005",
            "cumExecFee": "0.176",
            "avgPrice": "64000.1",
            "leavesQty": "0.010",
            "timeInForce": "GTC",
            "updatedTime": "1795867200100",
            "createdTime": "1795867200000",
            "category": "linear",
        }
    )
    async with factory() as uow:
        locked = await uow.orders.get(link, for_update=True)
        assert locked is not None
        result = apply_update(locked.state, update)
        assert result.applied
        await uow.orders.save(locked, result.state)
        await uow.commit()
    async with factory() as uow:
        loaded = await uow.orders.get_by_order_id("ex-1")
        open_rows = await uow.orders.open_orders(Category.LINEAR, "BTCUSDT", is_dry_run=False)
    assert loaded is not None
    assert loaded.state.status is OrderStatus.PARTIALLY_FILLED
    assert loaded.state.last_update == update  # the freshness key survives the round trip
    assert loaded.state.filled_qty == Decimal("0.005")
    assert apply_update(loaded.state, update).outcome.value == "duplicate"
    assert [o.uuid for o in open_rows] == [loaded.uuid]


async def test_exchange_calls_are_audited(pool: asyncpg.Pool) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    async with factory() as uow:
        await uow.orders.record_exchange_call(
            action="order.create",
            request={"symbol": "BTCUSDT", "qty": Decimal("0.015")},
            response=None,
            ok=False,
            ret_code=110007,
            error_kind="insufficient_funds",
            message="ab not enough for new order",
            duration_ms=3.5,
            trace_id="trace-x",
            signal_id=None,
            order_uuid=None,
            order_link_id="om-x-1",
            is_dry_run=False,
        )
        await uow.commit()
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM audit_log WHERE trace_id = 'trace-x'")
    assert row is not None
    assert row["kind"] == "exchange_call"
    assert row["ret_code"] == 110007
    assert row["request"] == {"symbol": "BTCUSDT", "qty": "0.015"}
    assert row["error"] == "ab not enough for new order"
    assert row["entity_id"] == "om-x-1"


async def test_for_signal_finds_own_and_linked_orders_through_indexes(
    pool: asyncpg.Pool,
) -> None:
    """A signal's orders = the ones it created + the ones linked to it (an amend of another
    signal's resting order); found by index lookups, never by scanning the orders table (the
    query runs for every resumed signal and the table holds the whole history)."""
    first, second, unrelated = [await insert_signal(pool) for _ in range(3)]
    factory = PostgresUnitOfWorkFactory(pool)
    async with factory() as uow:
        own, _ = await uow.orders.add_intent(
            _intent(order_link_id("om", first, 1)),
            signal_id=first,
            leg=1,
            trace_id="t",
            is_dry_run=False,
        )
        later, _ = await uow.orders.add_intent(
            _intent(order_link_id("om", second, 1)),
            signal_id=second,
            leg=1,
            trace_id="t",
            is_dry_run=False,
        )
        # the second signal also amended the first one's resting order
        amend = SignalOrderLink(
            second,
            own.state.order_link_id,
            LinkType.MANY_TO_ONE,
            Relation.AMEND,
            1,
            Decimal("0.015"),
        )
        await uow.orders.add_link(amend, own.uuid)
        await uow.commit()
    async with factory() as uow:
        assert [o.uuid for o in await uow.orders.for_signal(first)] == [own.uuid]
        assert sorted(o.uuid for o in await uow.orders.for_signal(second)) == sorted(
            [own.uuid, later.uuid]
        )
        assert await uow.orders.for_signal(unrelated) == []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {FOR_SIGNAL_SQL}", first))
    assert "Seq Scan on orders" not in plan, plan


async def test_locate_prefers_the_exchange_id_then_the_link_in_one_indexed_read(
    pool: asyncpg.Pool,
) -> None:
    factory = PostgresUnitOfWorkFactory(pool)
    acked_signal, pending_signal = await insert_signal(pool), await insert_signal(pool)
    acked_link = order_link_id("om", acked_signal, 1)
    pending_link = order_link_id("om", pending_signal, 1)
    async with factory() as uow:
        acked, _ = await uow.orders.add_intent(
            _intent(acked_link), signal_id=acked_signal, leg=1, trace_id="t", is_dry_run=False
        )
        pending, _ = await uow.orders.add_intent(
            _intent(pending_link), signal_id=pending_signal, leg=1, trace_id="t", is_dry_run=False
        )
        await uow.orders.save(acked, acknowledge(acked.state, "ord-acked", NOW).state)
        await uow.commit()
    async with factory() as uow:
        orders = uow.orders
        by_id = await orders.locate("ord-acked", "", for_update=True)
        by_link = await orders.locate("ord-not-yet-stored", pending_link, for_update=True)
        # both ids match different rows: the exchange id wins (the tracker then refuses it)
        both = await orders.locate("ord-acked", pending_link)
        assert await orders.locate("", "") is None
        assert await orders.locate("ord-unknown", "om-unknown-1") is None
    assert by_id is not None and by_id.uuid == acked.uuid
    assert by_link is not None and by_link.uuid == pending.uuid
    assert both is not None and both.uuid == acked.uuid
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                f"EXPLAIN {LOCATE_SQL} FOR UPDATE OF o", "ord-acked", pending_link
            )
        )
    assert "Seq Scan on orders" not in plan, plan


async def test_an_answer_is_stored_with_its_events_only_on_the_untouched_intent(
    pool: asyncpg.Pool,
) -> None:
    """``answer_untouched``: one statement that writes the acknowledged state and its events
    if the row is still the intent as written, and nothing otherwise."""
    factory = PostgresUnitOfWorkFactory(pool)
    links = {name: order_link_id("om", await insert_signal(pool), 1) for name in "abc"}
    rows = {}
    async with factory() as uow:
        for name, link in links.items():
            rows[name], _ = await uow.orders.add_intent(
                _intent(link), signal_id=None, leg=1, trace_id="t", is_dry_run=False
            )
        # b: the tracker applied the exchange's events first; c: recovery failed it
        await uow.orders.save(rows["b"], acknowledge(rows["b"].state, "ord-b", NOW).state)
        await uow.orders.save(
            rows["c"], mark_failed(rows["c"].state, "not at the exchange", NOW).state
        )
        await uow.commit()

    def answer(name: str) -> tuple[OrderState, list[QueuedEvent]]:
        result = acknowledge(rows[name].state, f"ord-{name}", NOW)
        event = QueuedEvent(
            uuid.uuid4(),
            "order-manager.order_events",
            "created",
            "order",
            rows[name].uuid,
            {"answer": name},
            "t",
            False,
        )
        return result.state, [event]

    async def audited(link: str) -> int:
        return int(await pool.fetchval("SELECT count(*) FROM audit_log WHERE entity_id = $1", link))

    held = {}
    for name in "abc":
        state, queued = answer(name)
        link = rows[name].state.order_link_id
        async with factory(atomic=False) as uow:
            await record_create_call(uow.orders, link, order_uuid=rows[name].uuid)
            assert await audited(link) == 0  # queued: the answer's statement carries it
            held[name] = await uow.orders.answer_untouched(
                rows[name], state, events=queued, submitted_at=NOW
            )
            assert await audited(link) == 1  # written by that statement, stored or not
    assert held == {"a": (True, "ord-a"), "b": (False, "ord-b"), "c": (False, None)}
    stored = {r["order_link_id"]: r for r in await pool.fetch("SELECT * FROM orders")}
    assert (stored[links["a"]]["status"], stored[links["a"]]["order_id"]) == ("pending", "ord-a")
    assert stored[links["a"]]["submitted_at"] == NOW
    assert stored[links["c"]]["status"] == "failed"
    events = await pool.fetch("SELECT aggregate_id, sequence, payload FROM outbox")
    assert [(e["aggregate_id"], e["sequence"], e["payload"]["answer"]) for e in events] == [
        (rows["a"].uuid, 1, "a")
    ]


async def test_an_audit_row_no_answer_carried_is_written_when_the_unit_of_work_closes(
    pool: asyncpg.Pool,
) -> None:
    """Without a transaction (e.g. the stale-order sweeper's cancel), the call's audit row is
    written when the block is left — also when it is left by an exception: no call goes
    unrecorded."""
    factory = PostgresUnitOfWorkFactory(pool)
    async with factory(atomic=False) as uow:
        await record_create_call(uow.orders, "om-lone-1")
    with pytest.raises(RuntimeError, match="after the call"):
        async with factory(atomic=False) as uow:
            await record_create_call(uow.orders, "om-lone-2")
            raise RuntimeError("the block failed after the call")
    rows = await pool.fetch("SELECT entity_id, action, ret_code FROM audit_log ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("om-lone-1", "order.create", 0),
        ("om-lone-2", "order.create", 0),
    ]


async def test_the_open_orders_read_settles_on_one_cached_plan(pool: asyncpg.Pool) -> None:
    """``all_open_orders`` runs on every signal. PostgreSQL re-plans a prepared statement on
    every call while its generic plan looks worse than a custom one; with the open statuses
    passed as a parameter the generic plan could not use the partial index of open orders, so
    every call was planned afresh (~0.27 ms of PostgreSQL CPU per signal in the bench)."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO orders (order_link_id, category, symbol, side, order_type, qty, status,"
            " cum_exec_qty, created_at)"
            " SELECT 'hist-' || g, 'linear', 'BTCUSDT', 'Buy', 'Market', 1, 'filled', 1,"
            " now() - g * interval '1 second' FROM generate_series(1, 3000) AS g"
        )
        await conn.execute(
            "INSERT INTO orders (order_link_id, category, symbol, side, order_type, qty, status,"
            " price, time_in_force)"
            " SELECT 'live-' || g, 'linear', 'BTCUSDT', 'Buy', 'Limit', 1, 'pending', 60000,"
            " 'GTC' FROM generate_series(1, 5) AS g"
        )
        await conn.execute("ANALYZE orders")
    async with pool.acquire() as conn:
        repo = PgOrderRepository(cast(asyncpg.Connection, conn), in_transaction=False)
        for _ in range(8):
            rows = await repo.all_open_orders(is_dry_run=False, resting_only=True)
        plans = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%FROM orders o%ORDER BY o.created_at, o.id%'"
            " AND statement LIKE '%o.is_dry_run = $1%'"
            " AND statement NOT LIKE '%pg_prepared_statements%'"
        )
    assert sorted(r.state.order_link_id for r in rows) == [f"live-{g}" for g in range(1, 6)]
    assert [(p["generic_plans"] > 0) for p in plans] == [True], [dict(p) for p in plans]
