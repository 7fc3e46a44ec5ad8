"""A dry-run service SIGKILLed under load, while signals keep arriving and its paper feed is
still draining, then restarted twice: afterwards its paper account is exactly what its stored
fills say, and planning from the restored paper exchange closes exactly what we hold.

The crash sweep (`tests/integration/execution/test_crash_anywhere.py`) covers every write a
signal makes, one at a time; this covers the timing: many lanes mid-signal, paper fills
answered but not yet stored, events not yet published, when the process dies.

What must hold at the end:

* no signal left ``processing``, no intent ``submitting``;
* every paper order's filled quantity is the sum of its stored fills, and a ``filled`` order
  filled its whole quantity;
* our position per symbol is the net of its stored fills, and the paper exchange's last word
  on it (``exchange_size``) agrees; each book (size, realized PnL, fees) is exactly its stored
  fills replayed in execution order;
* after a restart, a large sell per symbol (planned from the restored paper account: reduce
  only, up to what the paper exchange says we hold) leaves every position flat;
* every event stream is gapless and published.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

from order_manager.adapters.rabbitmq.signal_publisher import build_signal
from order_manager.domain.enums import Category, Side
from order_manager.domain.positions import Position, PositionFill, apply_fill
from tests.e2e.test_chaos import (
    FINAL,
    SYMBOLS,
    all_settled,
    assert_events_gapless,
    outbox_drained,
    signal_mix,
    statuses,
)
from tests.e2e.test_intake_service import World, until, world

__all__ = ["world"]

SIGNALS = 300
RATE = 400.0  # signals/s offered: more than a dry-run service takes, a backlog builds
KILL_AFTER = 80  # settled signals before the SIGKILL


async def publish_paced(world: World, signals: list[dict[str, Any]]) -> None:
    """The model service: one signal every 1/RATE s, whatever the Order Manager is doing."""
    for signal_ in signals:
        await world.publisher.publish_signal(signal_)
        await asyncio.sleep(1 / RATE)  # pacing the load, not waiting for an outcome


async def ticker(world: World, symbol: str) -> Decimal:
    r = await world.admin.get("/v5/market/tickers", params={"category": "linear", "symbol": symbol})
    r.raise_for_status()
    return Decimal(r.json()["result"]["list"][0]["lastPrice"])


async def set_price(world: World, symbol: str, price: Decimal) -> None:
    r = await world.admin.post(
        "/sim/price", json={"category": "linear", "symbol": symbol, "price": str(price)}
    )
    assert r.status_code == 200, r.text


async def open_paper_orders(world: World, side: str | None = None) -> int:
    rows = await world.fetch(
        "SELECT count(*) AS n FROM orders WHERE is_dry_run AND side = coalesce($1, side)"
        " AND status IN ('submitting', 'pending', 'partially_filled', 'untriggered', 'triggered')",
        side,
    )
    return int(rows[0]["n"])


async def cross_every_resting_limit(world: World) -> None:
    """Move each symbol's live price 3 % down, then 3 % up: every resting paper limit (priced
    near the touch) is crossed and fills as maker — the restored ones included. Each move is
    held until the paper exchange has filled that side (it reads the live book every 0.2 s)."""
    for side, factor in (("Buy", Decimal("0.97")), ("Sell", Decimal("1.03"))):
        prices = {symbol: await ticker(world, symbol) for symbol in SYMBOLS}
        for symbol, price in prices.items():
            await set_price(world, symbol, price * factor)

        async def side_filled(side: str = side) -> bool:
            return await open_paper_orders(world, side) == 0

        await until(side_filled, what=f"every resting paper {side} limit filled")
        for symbol, price in prices.items():
            await set_price(world, symbol, price)


async def fills_and_positions_agree(world: World) -> None:
    mismatched = await world.fetch(
        "SELECT o.order_link_id, o.status, o.qty, o.cum_exec_qty,"
        " coalesce(sum(e.exec_qty), 0) AS stored"
        " FROM orders o LEFT JOIN executions e ON e.order_uuid = o.id"
        " WHERE o.is_dry_run GROUP BY o.id"
        " HAVING o.cum_exec_qty <> coalesce(sum(e.exec_qty), 0)"
        " OR (o.status = 'filled' AND o.cum_exec_qty <> o.qty)"
    )
    assert mismatched == [], [dict(r) for r in mismatched]
    net = {
        r["symbol"]: Decimal(r["net"])
        for r in await world.fetch(
            "SELECT symbol, sum(CASE side WHEN 'Buy' THEN exec_qty ELSE -exec_qty END) AS net"
            " FROM executions WHERE is_dry_run GROUP BY symbol"
        )
    }
    positions = await world.fetch(
        "SELECT symbol, side, size, exchange_size FROM positions"
        " WHERE is_dry_run AND category = 'linear'"
    )
    ours = {r["symbol"]: (r["size"] if r["side"] == "Buy" else -r["size"]) for r in positions}
    assert {s: q for s, q in ours.items() if q} == {s: q for s, q in net.items() if q}
    for r in positions:
        assert r["exchange_size"] is None or r["exchange_size"] == r["size"], dict(r)
    # each book is exactly its stored fills replayed in execution order: size, entry, realized
    # PnL and fees (a fill booked twice or lost by a restore shows here)
    replayed: dict[str, Position] = {}
    for fill in await world.fetch(
        "SELECT symbol, side, exec_qty, exec_price, exec_fee, exec_id FROM executions"
        " WHERE is_dry_run AND exec_qty > 0 ORDER BY exec_time, COALESCE(exchange_seq, 0), exec_id"
    ):
        book = replayed.get(fill["symbol"], Position.flat(Category.LINEAR, fill["symbol"]))
        replayed[fill["symbol"]] = apply_fill(
            book,
            PositionFill(
                Side(fill["side"]), fill["exec_qty"], fill["exec_price"], fill["exec_fee"]
            ),
        )
    books = await world.fetch(
        "SELECT symbol, size, avg_entry_price, realized_pnl, fees_paid FROM positions"
        " WHERE is_dry_run AND category = 'linear'"
    )
    assert {r["symbol"] for r in books} == set(replayed)
    for r in books:
        book = replayed[r["symbol"]]
        assert (abs(book.size), book.realized_pnl) == (r["size"], r["realized_pnl"]), (
            dict(r),
            book,
        )
        assert book.fees == r["fees_paid"], (dict(r), book)


async def test_a_dry_run_service_killed_under_load_keeps_an_exact_paper_account(
    world: World,
) -> None:
    world.service.env["ORDERMANAGER_DRY_RUN"] = "true"
    await world.service.start()
    sent = signal_mix(random.Random(20261130), SIGNALS)
    ids = {s["signal_id"] for s in sent}
    publishing = asyncio.create_task(publish_paced(world, sent))

    async def some_settled() -> bool:
        now = await statuses(world)
        return sum(now.get(i) in FINAL for i in ids) >= KILL_AFTER

    await until(some_settled, what=f"{KILL_AFTER} signals settled")
    await world.service.kill()  # lanes mid-signal, fills unstored, events unpublished
    killed_with = await statuses(world)
    await world.service.start()
    await publishing
    await until(lambda: all_settled(world, ids), what="every signal settled", within=90)
    assert sum(killed_with.get(i) in FINAL for i in ids) < SIGNALS  # killed mid-stream
    final = await statuses(world)
    assert sum(final[i] == "executed" for i in ids) >= SIGNALS // 2, final
    assert "failed" not in final.values(), final  # nothing in dry-run may fail for good

    await cross_every_resting_limit(world)  # the restored resting limits fill too
    await until(lambda: outbox_drained(world), what="every event published")
    await fills_and_positions_agree(world)

    # a clean restart restores the paper account from the database once more: closing
    # everything is planned from it (reduce-only up to what the paper exchange holds)
    await world.service.terminate()
    await world.service.start()
    held = await world.fetch(
        "SELECT symbol FROM positions WHERE is_dry_run AND side = 'Buy' AND size > 0"
    )
    assert held, "the run left no position to close"
    closing = [
        build_signal(
            asset=r["symbol"], side="sell", amount=Decimal("1000000"), confidence=Decimal("0.9")
        )
        for r in held
    ]
    for signal_ in closing:
        await world.publisher.publish_signal(signal_)
    await until(lambda: all_settled(world, {s["signal_id"] for s in closing}), what="closing sells")
    assert {(await statuses(world))[s["signal_id"]] for s in closing} == {"executed"}
    await until(lambda: outbox_drained(world), what="every event published")

    async def flat() -> bool:
        rows = await world.fetch("SELECT size FROM positions WHERE is_dry_run AND size <> 0")
        return rows == []

    await until(flat, what="every paper position closed")
    await fills_and_positions_agree(world)
    assert await world.fetch("SELECT id FROM orders WHERE status = 'submitting'") == []
    await assert_events_gapless(world)
