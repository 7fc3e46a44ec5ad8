"""Tracking on real PostgreSQL + bybit_sim: the database ends equal to the exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from order_manager.services.tracker import resync_orders
from tests.helpers import eventually
from tests.integration.tracking.harness import SimTracking
from tests.integration.tracking.support import one_row, uow_factory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def tracking(sim: Any, pool: asyncpg.Pool, db_url: str) -> AsyncIterator[SimTracking]:
    harness = SimTracking(sim, pool, db_url)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


def fee_total(order: dict[str, Any]) -> Decimal:
    detail = order.get("cumFeeDetail") or {}
    if detail:
        return sum((Decimal(v) for v in detail.values()), Decimal(0))
    return Decimal(order.get("cumExecFee") or "0")


async def order_row(pool: asyncpg.Pool, order_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM orders WHERE order_id = $1", order_id)


async def wait_status(pool: asyncpg.Pool, order_id: str, status: str) -> asyncpg.Record:
    async def probe() -> asyncpg.Record | None:
        row = await order_row(pool, order_id)
        return row if row is not None and row["status"] == status else None

    found: asyncpg.Record | None = await eventually(
        probe, timeout=15, what=f"order {order_id} {status}"
    )
    assert found is not None
    return found


async def assert_equals_exchange(
    tracking: SimTracking, order_id: str, expected_fills: int
) -> asyncpg.Record:
    exchange = await tracking.exchange_order(order_id)
    fills = await tracking.exchange_executions(order_id)
    assert len(fills) == expected_fills
    await eventually(  # the order topic may be ahead of the execution topic
        lambda: tracking.pool.fetchval(
            "SELECT count(*) = $2 FROM executions WHERE order_id = $1", order_id, len(fills)
        ),
        what=f"{len(fills)} fills of {order_id} stored",
    )
    row = await one_row(tracking.pool, "SELECT * FROM orders WHERE order_id = $1", order_id)
    assert row["cum_exec_qty"] == Decimal(exchange["cumExecQty"])
    assert row["cum_exec_value"] == Decimal(exchange["cumExecValue"])
    assert row["cum_exec_fee"] == fee_total(exchange)
    assert row["cum_exec_fee"] == sum((Decimal(f["execFee"]) for f in fills), Decimal(0))
    assert row["avg_price"] == Decimal(exchange["cumExecValue"]) / Decimal(exchange["cumExecQty"])
    assert Decimal(exchange["avgPrice"]) == row["avg_price"].quantize(Decimal(exchange["avgPrice"]))
    stored = await tracking.pool.fetch(
        "SELECT exec_id FROM executions WHERE order_id = $1", order_id
    )
    assert sorted(r["exec_id"] for r in stored) == sorted(f["execId"] for f in fills)
    return row


async def test_partial_fills_over_several_events_give_exact_figures(
    tracking: SimTracking,
) -> None:
    price = await tracking.ticker_price()
    order_id = await tracking.place("Buy", "0.010", price=str(price - 100))
    for qty in ("0.003", "0.004", "0.002"):
        await tracking.force_fill(order_id, qty)
    row = await wait_status(tracking.pool, order_id, "partially_filled")
    await eventually(
        lambda: tracking.pool.fetchval(
            "SELECT cum_exec_qty = 0.009 FROM orders WHERE order_id = $1", order_id
        ),
        what="three partial fills applied",
    )
    await tracking.force_fill(order_id)  # the rest
    row = await wait_status(tracking.pool, order_id, "filled")
    row = await assert_equals_exchange(tracking, order_id, expected_fills=4)
    assert row["cum_exec_qty"] == Decimal("0.010")
    assert row["is_external"] is False
    assert row["signal_id"] is not None
    kinds = [
        r["event_type"]
        for r in await tracking.pool.fetch(
            "SELECT event_type FROM outbox WHERE aggregate_id = $1 ORDER BY sequence",
            str(row["id"]),
        )
    ]
    assert kinds[0] == "created"
    assert kinds[-1] == "filled"
    assert kinds.count("partially_filled") == 3


async def test_duplicated_and_reordered_ws_events_change_nothing(tracking: SimTracking) -> None:
    await tracking.fault(target="ws_private", topic="execution", kind="duplicate")
    await tracking.fault(
        target="ws_private", topic="order", kind="reorder", params={"hold_ms": 200}
    )
    await tracking.fault(target="ws_private", topic="position", kind="duplicate")
    price = await tracking.ticker_price()
    order_id = await tracking.place("Sell", "0.012", price=str(price + 100))
    for qty in ("0.005", "0.004"):
        await tracking.force_fill(order_id, qty)
    await tracking.force_fill(order_id)
    await wait_status(tracking.pool, order_id, "filled")
    await eventually(
        lambda: tracking.pool.fetchval(
            "SELECT count(*) = 3 FROM executions WHERE order_id = $1", order_id
        ),
        what="three distinct fills",
    )
    row = await assert_equals_exchange(tracking, order_id, expected_fills=3)
    sequences = [
        r["sequence"]
        for r in await tracking.pool.fetch(
            "SELECT sequence FROM outbox WHERE aggregate_id = $1 ORDER BY id", str(row["id"])
        )
    ]
    assert sequences == list(range(1, len(sequences) + 1))
    filled_events = await tracking.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type = 'filled'",
        str(row["id"]),
    )
    assert filled_events == 1
    position = await one_row(tracking.pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    exchange = await tracking.exchange_position("BTCUSDT")
    assert (position["side"], position["size"]) == (exchange["side"], Decimal(exchange["size"]))


async def test_outside_manual_order_is_adopted_as_external(tracking: SimTracking) -> None:
    result = await tracking.external_order(
        category="linear", symbol="ETHUSDT", side="Buy", orderType="Market", qty="0.5"
    )
    order_id = str(result.get("orderId") or result.get("order_id"))
    row = await wait_status(tracking.pool, order_id, "filled")
    assert row["is_external"] is True
    assert row["signal_id"] is None
    await assert_equals_exchange(
        tracking, order_id, expected_fills=len(await tracking.exchange_executions(order_id))
    )
    event = await one_row(
        tracking.pool,
        "SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = 'filled'",
        str(row["id"]),
    )
    assert event["payload"]["order"]["is_external"] is True


async def test_position_after_scale_in_and_partial_close_matches_the_exchange(
    tracking: SimTracking,
) -> None:
    first = await tracking.place("Buy", "0.010")
    await wait_status(tracking.pool, first, "filled")
    await tracking.set_price("BTCUSDT", "65321.7")
    second = await tracking.place("Buy", "0.025")  # scale-in at another price
    await wait_status(tracking.pool, second, "filled")
    await tracking.set_price("BTCUSDT", "65999.9")
    close = await tracking.place("Sell", "0.015", reduce_only=True)  # partial close
    await wait_status(tracking.pool, close, "filled")

    exchange = await tracking.exchange_position("BTCUSDT")

    async def caught_up() -> asyncpg.Record | None:
        row = await tracking.pool.fetchrow("SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
        return row if row is not None and row["size"] == Decimal(exchange["size"]) else None

    found: asyncpg.Record | None = await eventually(caught_up, what="position caught up")
    assert found is not None
    row = found
    assert row["side"] == exchange["side"] == "Buy"
    assert row["size"] == Decimal(exchange["size"]) == Decimal("0.020")
    exchange_avg = Decimal(exchange["avgPrice"])
    ours = row["entry_value"] / row["size"]
    assert ours.quantize(exchange_avg) == exchange_avg, (ours, exchange_avg)
    assert row["avg_entry_price"] == ours
    fills = await tracking.pool.fetch(
        "SELECT exec_fee, closed_size FROM executions WHERE symbol = 'BTCUSDT'"
    )
    assert row["fees_paid"] == sum((f["exec_fee"] for f in fills), Decimal(0))


async def test_validation_corrects_lasting_drift_and_later_fills_continue(
    tracking: SimTracking,
) -> None:
    # lose a fill on the stream: our book misses it, the exchange has it
    await miss_a_fill(tracking)

    report = await tracking.keeper.validate()
    assert report.corrected == ["linear:BTCUSDT:0"]
    exchange = await tracking.exchange_position("BTCUSDT")
    book = await one_row(tracking.pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert book["size"] == Decimal(exchange["size"]) == Decimal("0.014")
    assert book["drift_count"] == 1
    assert book["drift_detected_at"] is not None
    snapshot = await one_row(
        tracking.pool, "SELECT * FROM position_snapshots WHERE source = 'validation'"
    )
    assert snapshot["size"] == Decimal("0.014")
    event = await one_row(
        tracking.pool,
        "SELECT payload FROM outbox WHERE event_type = 'position_updated' ORDER BY id DESC LIMIT 1",
    )
    assert event["payload"]["source"] == "validation"
    assert event["payload"]["position"]["size"] == "0.014"

    # fills after the correction continue from the corrected book
    await tracking.set_price("BTCUSDT", "65500.0")
    more = await tracking.place("Buy", "0.006")
    await wait_status(tracking.pool, more, "filled")
    exchange = await tracking.exchange_position("BTCUSDT")

    async def caught_up() -> bool:
        size = await tracking.pool.fetchval("SELECT size FROM positions WHERE symbol = 'BTCUSDT'")
        return bool(size == Decimal(exchange["size"]))

    followed: bool = await eventually(
        caught_up, what="book follows the exchange after the correction"
    )
    assert followed
    again = await tracking.keeper.validate()
    assert again.drift == []
    assert await tracking.keeper.snapshot() == 1


async def miss_a_fill(tracking: SimTracking) -> str:
    """A filled 0.010 buy the book has, then a 0.004 buy whose fill the stream loses."""
    first = await tracking.place("Buy", "0.010")
    await wait_status(tracking.pool, first, "filled")
    fault = await tracking.fault(target="ws_private", topic="execution", kind="pause")
    missed = await tracking.place("Buy", "0.004")
    await wait_status(tracking.pool, missed, "filled")
    await tracking.admin.delete(f"/sim/faults/{fault}")
    book = await one_row(tracking.pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert book["size"] == Decimal("0.010")
    return missed


async def test_drift_from_missed_fills_is_caught_up_not_corrected(tracking: SimTracking) -> None:
    """Validation first lists the exchange's fills: the missed one is applied like a stream
    event (its fee counted), the book matches without a correction."""
    missed = await miss_a_fill(tracking)
    (lost,) = await tracking.exchange_executions(missed)
    report = await tracking.catching_keeper.validate()
    assert report.drift == ["linear:BTCUSDT:0"]
    assert report.caught_up == ["linear:BTCUSDT:0"]
    assert report.corrected == []
    book = await one_row(tracking.pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert book["size"] == Decimal("0.014")
    assert book["drift_count"] == 0  # nothing was overwritten
    assert book["validated_at"] is not None
    stored = await tracking.pool.fetch("SELECT exec_id, exec_fee FROM executions")
    assert lost["execId"] in {row["exec_id"] for row in stored}
    assert book["fees_paid"] == sum((row["exec_fee"] for row in stored), Decimal(0))
    assert (
        await tracking.pool.fetchval(
            "SELECT count(*) FROM position_snapshots WHERE source = 'validation'"
        )
        == 0
    )
    again = await tracking.catching_keeper.validate()
    assert (again.drift, again.caught_up, again.corrected) == ([], [], [])


async def test_drift_is_corrected_when_the_fills_cannot_be_listed(tracking: SimTracking) -> None:
    await miss_a_fill(tracking)
    await tracking.fault(
        target="rest", endpoint="/v5/execution/list", kind="http_status", params={"status": 503}
    )
    report = await tracking.catching_keeper.validate()
    await tracking.clear_faults()
    assert report.caught_up == []
    assert report.corrected == ["linear:BTCUSDT:0"]
    assert any("executions of linear:BTCUSDT" in error for error in report.errors)
    book = await one_row(tracking.pool, "SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert book["size"] == Decimal("0.014")
    assert book["drift_count"] == 1


async def test_resync_after_a_gap_restores_orders_and_fills(tracking: SimTracking) -> None:
    """Events lost while the stream was 'down' (paused on the simulator) are recovered from
    REST by the gap handler, through the same tracker code path."""
    price = await tracking.ticker_price()
    resting = await tracking.place("Buy", "0.010", price=str(price - 100))
    await wait_status(tracking.pool, resting, "pending")
    for topic in ("order", "execution"):
        await tracking.fault(target="ws_private", topic=topic, kind="pause")
    await tracking.force_fill(resting, "0.004")  # lost on the stream
    await tracking.clear_faults()
    row = await one_row(tracking.pool, "SELECT * FROM orders WHERE order_id = $1", resting)
    assert row["cum_exec_qty"] == 0

    looked = await resync_orders(tracking.tracker, uow_factory(tracking.pool), tracking.queries)
    assert looked >= 1
    row = await assert_equals_exchange(tracking, resting, expected_fills=1)
    assert row["status"] == "partially_filled"
    assert row["cum_exec_qty"] == Decimal("0.004")


async def test_hedge_mode_books_match_the_exchange(
    sim_factory: Any, pool: asyncpg.Pool, db_url: str
) -> None:
    from bybit_sim.config import SimConfig

    sim = await sim_factory(SimConfig(position_mode="hedge").with_path("frozen"))
    tracking = SimTracking(sim, pool, db_url)
    await tracking.start()
    try:
        long_id = await tracking.place("Buy", "0.010", position_idx=1)
        short_id = await tracking.place("Sell", "0.004", position_idx=2)
        await tracking.set_price("BTCUSDT", "65432.1")
        more_short = await tracking.place("Sell", "0.002", position_idx=2)
        for order_id in (long_id, short_id, more_short):
            await wait_status(pool, order_id, "filled")
        for idx, side, size in ((1, "Buy", "0.010"), (2, "Sell", "0.006")):
            exchange = await tracking.exchange_position("BTCUSDT", idx)

            async def book(
                idx: int = idx, size: Decimal = Decimal(exchange["size"])
            ) -> asyncpg.Record | None:
                return await pool.fetchrow(
                    "SELECT * FROM positions WHERE symbol = 'BTCUSDT' AND position_idx = $1"
                    " AND size = $2",
                    idx,
                    size,
                )

            row: asyncpg.Record | None = await eventually(book, what=f"book {idx}")
            assert row is not None
            assert (row["side"], row["size"]) == (exchange["side"], Decimal(exchange["size"]))
            assert (side, Decimal(size)) == (row["side"], row["size"])
            exchange_avg = Decimal(exchange["avgPrice"])
            assert row["avg_entry_price"].quantize(exchange_avg) == exchange_avg
    finally:
        await tracking.stop()
