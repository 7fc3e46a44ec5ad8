"""Property (hypothesis) on the tracker's PERSISTED result (real PostgreSQL): any permutation of
a valid exchange event stream, with duplicated items and arbitrary batching, ends in the same
order rows, fills and position book as the stream delivered in order.

The stream: a buy filled in three parts and a sell partly filled then cancelled, on one symbol,
with interleaved fill times — so a late fill must be replayed into the position book at its
place (average cost and realised PnL depend on the order of fills). The domain's own
permutation property covers the pure state machine; this one covers the shell: row locking,
execId uniqueness in the table, rebuilding state from rows, adoption and book replays.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from order_manager.services.tracker import Tracker
from tests.integration.tracking.streams import T0, Fill, lifecycle
from tests.integration.tracking.support import uow_factory

Item = tuple[str, dict[str, Any]]

_tags = itertools.count(1)
_reference: dict[str, Any] = {}


def stream(tag: str) -> list[Item]:
    symbol = f"P{tag}USDT"
    buy = lifecycle(
        order_id=f"{tag}-A",
        link="",
        symbol=symbol,
        side="Buy",
        qty="0.010",
        price="100.0",
        fills=[
            Fill("0.003", "100.0", "0.0006"),
            Fill("0.004", "99.5", "0.000796"),
            Fill("0.003", "100.0", "0.0006"),
        ],
        t0=T0,
        seq0=0,
    )
    sell = lifecycle(
        order_id=f"{tag}-B",
        link="",
        symbol=symbol,
        side="Sell",
        qty="0.006",
        price="101.0",
        fills=[Fill("0.002", "101.0", "-0.0000404"), Fill("0.002", "101.5", "-0.0000406")],
        t0=T0 + 15,
        seq0=10,
        cancel_at_end=True,
    )
    # the exchange's own order of emission: by event time
    return sorted(
        buy + sell, key=lambda item: int(item[1].get("execTime") or item[1]["updatedTime"])
    )


@st.composite
def deliveries(draw: st.DrawFn, size: int) -> list[list[int]]:
    """A permutation of item indexes with duplicates inserted anywhere, cut into batches of
    consecutive items (a batch holds one topic, like a WebSocket message)."""
    order = list(draw(st.permutations(range(size))))
    for duplicate in draw(st.lists(st.integers(0, size - 1), max_size=6)):
        order.insert(draw(st.integers(0, len(order))), duplicate)
    cuts = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    batches: list[list[int]] = []
    for index, cut in zip(order, cuts, strict=True):
        if batches and not cut:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


async def feed(tracker: Tracker, items: list[Item], batches: list[list[int]]) -> None:
    for batch in batches:
        # a WebSocket message carries one topic: split a mixed batch by topic, keep the order
        for topic, group in itertools.groupby(batch, key=lambda i: items[i][0]):
            await tracker.handle(topic, [items[i][1] for i in group])


async def persisted(pool: asyncpg.Pool, tag: str) -> dict[str, Any]:
    """The tracker's result for one stream, without ids that differ between runs."""
    orders = await pool.fetch(
        "SELECT order_id, status, exchange_status, qty, price, cum_exec_qty, cum_exec_value,"
        " cum_exec_fee, avg_price, leaves_qty, is_external FROM orders"
        " WHERE order_id LIKE $1 ORDER BY order_id",
        f"{tag}-%",
    )
    fills = await pool.fetch(
        "SELECT exec_id, exec_qty, exec_price, exec_fee FROM executions"
        " WHERE order_id LIKE $1 ORDER BY exec_id",
        f"{tag}-%",
    )
    book = await pool.fetchrow(
        "SELECT side, size, entry_value, avg_entry_price, realized_pnl, fees_paid"
        " FROM positions WHERE symbol = $1",
        f"P{tag}USDT",
    )
    strip = len(tag)
    return {
        "orders": [{**dict(r), "order_id": r["order_id"][strip:]} for r in orders],
        "fills": [{**dict(r), "exec_id": r["exec_id"][strip:]} for r in fills],
        "book": dict(book) if book is not None else None,
    }


async def reference(pool: asyncpg.Pool) -> dict[str, Any]:
    if "state" not in _reference:
        tag = f"r{next(_tags)}"
        items = stream(tag)
        await feed(
            Tracker(uow_factory(pool), link_prefix="om"), items, [[i] for i in range(len(items))]
        )
        _reference["state"] = await persisted(pool, tag)
    return dict(_reference["state"])


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=deliveries(len(stream("x"))))
async def test_any_delivery_order_persists_the_same_state(
    pool: asyncpg.Pool, batches: list[list[int]]
) -> None:
    expected = await reference(pool)
    tag = f"p{next(_tags)}"
    await feed(Tracker(uow_factory(pool), link_prefix="om"), stream(tag), batches)
    assert await persisted(pool, tag) == expected


async def test_reference_state_is_the_exchange_truth(pool: asyncpg.Pool) -> None:
    """The in-order result itself is right (so equality above means 'right', not 'same')."""
    state = await reference(pool)
    a, b = state["orders"]
    assert (a["status"], a["cum_exec_qty"], a["cum_exec_fee"]) == (
        "filled",
        Decimal("0.010"),
        Decimal("0.001996"),
    )
    assert a["cum_exec_value"] == Decimal("0.300") + Decimal("0.398") + Decimal("0.300")
    assert (b["status"], b["cum_exec_qty"]) == ("cancelled", Decimal("0.004"))
    assert len(state["fills"]) == 5
    book = state["book"]
    assert (book["side"], book["size"]) == ("Buy", Decimal("0.006"))
    # fills in time order: buy 3@100, buy 4@99.5, sell 2@101, buy 3@100, sell 2@101.5
    # (quantities in thousandths); average cost after the two buys: 697/7 per unit
    fees = Decimal("0.0006") + Decimal("0.000796") + Decimal("0.0006") - Decimal("0.0000810")
    assert book["fees_paid"] == fees
    avg1 = Decimal("0.698") / Decimal("0.007")
    pnl1 = (Decimal("101.0") - avg1) * Decimal("0.002")
    remaining_entry = Decimal("0.698") - Decimal("0.698") * Decimal("0.002") / Decimal("0.007")
    entry = remaining_entry + Decimal("0.300")
    avg2 = entry / Decimal("0.008")
    pnl2 = (Decimal("101.5") - avg2) * Decimal("0.002")
    assert abs(book["realized_pnl"] - (pnl1 + pnl2 - fees)) < Decimal("1e-20")
