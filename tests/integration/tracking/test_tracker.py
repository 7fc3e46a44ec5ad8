"""Tracker on real PostgreSQL with raw Bybit objects: exact fills, dedupe, adoption, books."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from order_manager.domain.plans import order_link_id
from order_manager.services.tracker import Tracker
from tests.integration.tracking.streams import Fill, exec_obj, lifecycle
from tests.integration.tracking.support import (
    PREFIX,
    insert_intent,
    insert_signal,
    one_row,
    uow_factory,
)

pytestmark = pytest.mark.integration


async def feed(tracker: Tracker, stream: list[tuple[str, dict[str, object]]]) -> None:
    for topic, item in stream:
        await tracker.handle(topic, [item])


async def test_partial_fills_give_exact_cumulative_figures_and_events(pool: asyncpg.Pool) -> None:
    signal_id = str(uuid.uuid4())
    await insert_signal(pool, signal_id, is_warmup=True)
    link = await insert_intent(pool, signal_id, "0.015", "64240.0")
    fills = [
        Fill("0.004", "64240.0", "0.0514"),
        Fill("0.006", "64239.5", "0.07709"),
        Fill("0.005", "64240.0", "0.06424"),
    ]
    stream = lifecycle(
        order_id="ord-1",
        link=link,
        symbol="BTCUSDT",
        side="Buy",
        qty="0.015",
        price="64240.0",
        fills=fills,
    )
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)
    await feed(tracker, stream)
    await feed(tracker, stream)  # everything twice: nothing changes

    row = await one_row(pool, "SELECT * FROM orders WHERE order_link_id = $1", link)
    assert row["status"] == "filled"
    assert row["order_id"] == "ord-1"
    assert row["cum_exec_qty"] == Decimal("0.015")
    value = sum(Decimal(f.qty) * Decimal(f.price) for f in fills)
    assert row["cum_exec_value"] == value
    assert row["avg_price"] == value / Decimal("0.015")
    assert row["cum_exec_fee"] == Decimal("0.19273")
    assert not row["is_external"]
    assert await pool.fetchval("SELECT count(*) FROM executions") == 3

    events = await pool.fetch(
        "SELECT event_type, sequence, payload FROM outbox WHERE aggregate_type = 'order'"
        " ORDER BY id"
    )
    assert [e["event_type"] for e in events] == [
        "created",
        "partially_filled",
        "partially_filled",
        "filled",
    ]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4]
    # every event of the order is enriched (one batch per message: the later ones come from
    # the tracker's memory of the signal, not from a fresh read)
    assert all(e["payload"]["signal"]["strategy_id"] == "momentum_v1" for e in events)
    last = events[-1]["payload"]
    assert last["order"]["filled_quantity"] == "0.015"
    assert last["order"]["fees"] == "0.19273"
    assert last["signal"]["strategy_id"] == "momentum_v1"
    assert last["signal"]["is_warmup"] is True  # read back from signals.is_warmup
    assert last["is_dry_run"] is False
    assert last["market_conditions"] == {
        "mid_price": "64250.5",
        "spread": "0.5",
        "source": "signal",
    }
    assert last["trace_id"] == "trace-sig"

    pos = await one_row(pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert pos["side"] == "Buy"
    assert pos["size"] == Decimal("0.015")
    assert pos["entry_value"] == value
    assert pos["fees_paid"] == Decimal("0.19273")
    assert pos["realized_pnl"] == Decimal("-0.19273")
    pos_events = await pool.fetch(
        "SELECT payload FROM outbox WHERE aggregate_type = 'position' ORDER BY id"
    )
    assert len(pos_events) == 3
    assert pos_events[-1]["payload"]["position"]["size"] == "0.015"


async def test_unknown_orders_are_adopted_ours_or_external(pool: asyncpg.Pool) -> None:
    signal_id = str(uuid.uuid4())
    await insert_signal(pool, signal_id)
    ours = order_link_id(PREFIX, signal_id, 2)  # no row: placed before a crash
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)
    for order_id, link in (("ord-ours", ours), ("ord-ext", "")):
        stream = lifecycle(
            order_id=order_id,
            link=link,
            symbol="ETHUSDT",
            side="Sell",
            qty="1.0",
            price="3000",
            fills=[Fill("1.0", "3000", "0.6")],
        )
        await feed(tracker, stream)
    rows = {
        r["order_id"]: r for r in await pool.fetch("SELECT * FROM orders WHERE symbol = 'ETHUSDT'")
    }
    assert rows["ord-ours"]["is_external"] is False
    assert str(rows["ord-ours"]["signal_id"]) == signal_id
    assert rows["ord-ours"]["leg"] == 2
    assert rows["ord-ours"]["status"] == "filled"
    assert rows["ord-ext"]["is_external"] is True
    assert rows["ord-ext"]["signal_id"] is None
    assert rows["ord-ext"]["order_link_id"] == "x-ord-ext"
    assert rows["ord-ext"]["status"] == "filled"
    pos = await one_row(pool, "SELECT * FROM positions WHERE symbol = 'ETHUSDT'")
    assert (pos["side"], pos["size"]) == ("Sell", Decimal("2.0"))


async def test_execution_for_an_unknown_order_without_rest_is_kept(pool: asyncpg.Pool) -> None:
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)  # no exchange queries
    item = exec_obj(
        exec_id="lonely-1",
        order_id="ord-lonely",
        link="",
        symbol="SOLUSDT",
        side="Buy",
        qty="2",
        price="150",
        fee="0.06",
        exec_ms=1_795_000_000_000,
        seq=7,
        order_qty="5",
        order_price="150",
    )
    outcome = await tracker.handle("execution", [item])
    assert len(outcome.adopted) == 1
    row = await one_row(pool, "SELECT * FROM orders WHERE order_id = 'ord-lonely'")
    assert row["is_external"] is True
    assert row["status"] == "partially_filled"
    assert row["qty"] == Decimal("5")
    assert row["cum_exec_qty"] == Decimal("2")


async def test_unparseable_items_are_recorded_not_dropped(pool: asyncpg.Pool) -> None:
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)
    outcome = await tracker.handle("order", [{"orderId": "x", "symbol": "BTCUSDT"}])
    assert outcome.problems == 1
    row = await one_row(pool, "SELECT * FROM audit_log WHERE action = 'unparseable_order'")
    assert row is not None
    assert row["request"] == {"orderId": "x", "symbol": "BTCUSDT"}
    assert "KeyError" in row["error"]


async def test_wallet_items_update_the_balances_for_risk(pool: asyncpg.Pool) -> None:
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)
    account = {
        "accountType": "UNIFIED",
        "coin": [
            {
                "coin": "USDT",
                "walletBalance": "10000.5",
                "equity": "10001",
                "totalPositionIM": "1000.25",
                "totalOrderIM": "10",
                "locked": "0",
                "unrealisedPnl": "0.5",
            },
            {"coin": "BTC", "walletBalance": "0.1", "locked": "0.01"},
        ],
    }
    await tracker.handle("wallet", [account], datetime.now(UTC))
    async with uow_factory(pool)() as uow:
        balances = await uow.tracking.available_balances(is_dry_run=False)
    assert balances == {"USDT": Decimal("9000.25"), "BTC": Decimal("0.09")}


def _position_push(mark: str, size: str = "0.015") -> dict[str, object]:
    return {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "size": size,
        "avgPrice": "64240",
        "markPrice": mark,
        "positionIdx": 0,
        "unrealisedPnl": "0",
        "cumRealisedPnl": "0",
    }


async def test_the_loss_monitor_warns_once_per_crossing(pool: asyncpg.Pool) -> None:
    """Threshold 5 %: a long of 0.015 bought at 64240 warns when the exchange's mark puts it
    more than 5 % under water (event source `loss_warning`), stays quiet while it stays there,
    re-arms after recovering, and never closes anything."""
    signal_id = str(uuid.uuid4())
    await insert_signal(pool, signal_id)
    link = await insert_intent(pool, signal_id, "0.015", "64240")
    stream = lifecycle(
        order_id="ord-loss",
        link=link,
        symbol="BTCUSDT",
        side="Buy",
        qty="0.015",
        price="64240",
        fills=[Fill("0.015", "64240", "0.1")],
    )
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX, loss_warning_ratio=Decimal("0.05"))
    await feed(tracker, stream)

    async def warnings() -> int:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE payload->>'source' = 'loss_warning'"
            )
        )

    for mark, expected in (
        ("61100", 0),  # -4.9 %: under the threshold
        ("60900", 1),  # -5.2 %: crosses
        ("60000", 1),  # still under water: no second warning
        ("64000", 1),  # recovered: re-armed
        ("60000", 2),  # crosses again
    ):
        await tracker.handle("position", [_position_push(mark)])
        assert await warnings() == expected, mark
    [event] = await pool.fetch(
        "SELECT payload FROM outbox WHERE payload->>'source' = 'loss_warning' ORDER BY id LIMIT 1"
    )
    assert event["payload"]["position"]["mark_price"] == "60900"
    assert event["payload"]["position"]["size"] == "0.015"  # nothing was closed


async def test_a_position_push_keeps_the_exchanges_display_figures(pool: asyncpg.Pool) -> None:
    """Leverage, position value, liquidation price and TP/SL come from the exchange's push
    (the API shows them); Bybit's "0" for an unset stop means none."""
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)
    push = _position_push("64000") | {
        "leverage": "10",
        "positionValue": "963.6",
        "liqPrice": "58000.5",
        "takeProfit": "70000",
        "stopLoss": "0",
    }
    await tracker.handle("position", [push])
    row = await one_row(pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert row["leverage"] == Decimal("10")
    assert row["position_value"] == Decimal("963.6")
    assert row["liq_price"] == Decimal("58000.5")
    assert row["take_profit"] == Decimal("70000")
    assert row["stop_loss"] is None


async def test_events_naming_another_order_than_their_row_are_refused(pool: asyncpg.Pool) -> None:
    """A restarted simulator once reissued an old order's orderId for a new order: its events
    matched the OLD row by orderId and overwrote it. Now an event that contradicts its row on
    the other id is kept as a problem and changes nothing — neither row nor position."""
    old_signal, new_signal = str(uuid.uuid4()), str(uuid.uuid4())
    await insert_signal(pool, old_signal)
    await insert_signal(pool, new_signal)
    old_link = await insert_intent(pool, old_signal, "0.010", "64000.0")
    new_link = await insert_intent(pool, new_signal, "0.020", "64100.0")
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX)
    old = lifecycle(
        order_id="ord-reused",
        link=old_link,
        symbol="BTCUSDT",
        side="Buy",
        qty="0.010",
        price="64000.0",
        fills=[Fill("0.010", "64000.0", "0.128")],
    )
    await feed(tracker, old)
    before = await one_row(pool, "SELECT * FROM orders WHERE order_link_id = $1", old_link)
    position_before = await one_row(pool, "SELECT size FROM positions WHERE symbol = 'BTCUSDT'")

    reused = lifecycle(  # same orderId, the new order's link: another order
        order_id="ord-reused",
        link=new_link,
        symbol="BTCUSDT",
        side="Buy",
        qty="0.020",
        price="64100.0",
        fills=[Fill("0.020", "64100.0", "0.256")],
        t0=1_795_100_000_000,
        seq0=50,
    )
    problems = 0
    for topic, item in reused:
        problems += (await tracker.handle(topic, [item])).problems
    assert problems == len(reused)

    after = await one_row(pool, "SELECT * FROM orders WHERE order_link_id = $1", old_link)
    assert dict(after) == dict(before)
    untouched = await one_row(pool, "SELECT * FROM orders WHERE order_link_id = $1", new_link)
    assert (untouched["status"], untouched["order_id"]) == ("submitting", None)
    assert await pool.fetchval("SELECT count(*) FROM executions") == 1
    position_after = await one_row(pool, "SELECT size FROM positions WHERE symbol = 'BTCUSDT'")
    assert position_after["size"] == position_before["size"] == Decimal("0.010")
    kept = await pool.fetch(
        "SELECT request, error FROM audit_log WHERE action = 'order_identity_conflict'"
    )
    assert len(kept) == len(reused)
    assert all(row["request"]["orderLinkId"] == new_link for row in kept)
    assert all("differs from the stored" in row["error"] for row in kept)

    # the reverse: our link, but an exchange id other than the one the row already holds
    stray = dict(old[-1][1], orderId="ord-stray", execId="stray-exec")
    outcome = await tracker.handle(old[-1][0], [stray])
    assert outcome.problems == 1
    assert dict(await one_row(pool, "SELECT * FROM orders WHERE id = $1", before["id"])) == dict(
        before
    )


async def test_a_fill_and_its_position_push_in_one_batch_store_what_two_batches_store(
    pool: asyncpg.Pool,
) -> None:
    """The book and the exchange's view of it are written in one statement when a batch has
    both (``save_position_with_view``): the row must be exactly what the fill's batch followed
    by the push's batch leaves — two symbols, same story, compared column by column."""
    tracker = Tracker(uow_factory(pool), link_prefix=PREFIX, loss_warning_ratio=Decimal("0.05"))
    for symbol, together in (("BTCUSDT", True), ("ETHUSDT", False)):
        fills = [
            exec_obj(
                exec_id=f"{symbol}-{n}",
                order_id=f"ord-{symbol}",
                link="",
                symbol=symbol,
                side="Buy",
                qty="0.010",
                price=price,
                fee="0.12",
                exec_ms=1_795_000_000_000 + n,
                seq=n,
                order_qty="0.020",
                order_price="64000",
            )
            for n, price in ((1, "64000"), (2, "63990"))
        ]
        push = _position_push("60000", size="0.020") | {
            "symbol": symbol,
            "leverage": "10",
            "avgPrice": "63995",
        }
        if together:
            await tracker.handle_many([("execution", fills, None), ("position", [push], None)])
        else:
            await tracker.handle("execution", fills)
            await tracker.handle("position", [push])
    rows = {r["symbol"]: dict(r) for r in await pool.fetch("SELECT * FROM positions")}
    # row_version counts UPDATEs: one fewer is the point
    ignored = {"symbol", "created_at", "updated_at", "exchange_updated_time", "row_version"}
    together_row, apart_row = rows["BTCUSDT"], rows["ETHUSDT"]
    assert together_row["last_exec_id"] == "BTCUSDT-2"
    apart_row["last_exec_id"] = "BTCUSDT-2"
    assert {k: v for k, v in together_row.items() if k not in ignored} == {
        k: v for k, v in apart_row.items() if k not in ignored
    }
    assert together_row["size"] == Decimal("0.020")
    assert together_row["exchange_size"] == Decimal("0.020")
    assert together_row["mark_price"] == Decimal("60000")
    assert together_row["unrealized_pnl"] == Decimal("0.020") * 60000 - Decimal("1279.90")
    warnings = await pool.fetch(
        "SELECT aggregate_id FROM outbox WHERE payload->>'source' = 'loss_warning' ORDER BY id"
    )
    assert len(warnings) == 2  # 6.2 % under water: both books warned once


async def test_locate_brings_the_signals_enrichment_exactly_as_the_separate_read(
    pool: asyncpg.Pool,
) -> None:
    """The tracker enriches an order's events from the row `locate` returns (joined signal
    fields) instead of a second read: both must say the same."""
    signal_id = str(uuid.uuid4())
    await insert_signal(pool, signal_id, is_warmup=True)
    link = await insert_intent(pool, signal_id, "0.010", "64000.0")
    async with uow_factory(pool)() as uow:
        located = await uow.orders.locate("", link)
        separate = await uow.tracking.signal_info(signal_id)
        external = await uow.orders.locate("", "no-such-link")
    assert located is not None and external is None
    assert located.signal_info == separate
    assert separate is not None and separate["strategy_id"] == "momentum_v1"
    assert separate["market_data_snapshot"] == {"price": "64250.5", "spread": "0.5"}
