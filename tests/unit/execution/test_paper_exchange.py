"""Property tests of the paper exchange's matching (pure in-process logic, fixed books)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.adapters.paper.exchange import PaperExchange
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.instruments import Instrument
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.plans import LegIntent, Place
from order_manager.domain.positions import ExchangePosition

BTC = Instrument(
    category=Category.LINEAR,
    symbol="BTCUSDT",
    base_coin="BTC",
    quote_coin="USDT",
    tick_size=Decimal("0.1"),
    qty_step=Decimal("0.001"),
    min_order_qty=Decimal("0.001"),
    max_order_qty=Decimal("100"),
    max_market_qty=Decimal("100"),
    min_notional=Decimal("5"),
)
Level = tuple[Decimal, Decimal]


class Book:
    """A fixed order book as the paper exchange's live source."""

    def __init__(self, bids: list[Level], asks: list[Level]) -> None:
        self.bids, self.asks = bids, asks

    async def instrument(self, category: Category, symbol: str) -> Instrument:
        return BTC

    async def market(self, category: Category, symbol: str) -> MarketSnapshot:
        return MarketSnapshot(
            symbol=symbol,
            best_bid=self.bids[0][0],
            best_ask=self.asks[0][0],
            as_of=datetime.now(UTC),
        )

    async def levels(
        self, category: Category, symbol: str
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        return tuple(self.bids), tuple(self.asks)


def book(mid: int, sizes: list[int]) -> Book:
    """Levels one tick apart around ``mid``, sizes in lots of 0.001."""
    tick = Decimal("0.1")
    base = Decimal(mid)
    bids = [(base - tick * (i + 1), Decimal(s) / 1000) for i, s in enumerate(sizes)]
    asks = [(base + tick * (i + 1), Decimal(s) / 1000) for i, s in enumerate(sizes)]
    return Book(bids, asks)


def leg(side: Side, qty: Decimal, order_type: OrderType, price: Decimal | None) -> Place:
    return Place(
        leg=1,
        order_link_id="om-paper-1",
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=side,
        order_type=order_type,
        qty=qty,
        price=price,
        time_in_force=TimeInForce.IOC if order_type is OrderType.MARKET else TimeInForce.GTC,
        reduce_only=False,
        post_only=False,
        position_idx=PositionIdx.ONE_WAY,
        intent=LegIntent.OPEN,
        reference_price=price or Decimal(60000),
        notional=qty * (price or Decimal(60000)),
    )


@settings(max_examples=150, deadline=None)
@given(
    mid=st.integers(min_value=1000, max_value=90000),
    sizes=st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=8),
    lots=st.integers(min_value=1, max_value=3000),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    limit_offset=st.one_of(st.none(), st.integers(min_value=-10, max_value=10)),
)
def test_fills_never_exceed_the_order_or_the_book_and_respect_the_price(
    mid: int, sizes: list[int], lots: int, side: Side, limit_offset: int | None
) -> None:
    source = book(mid, sizes)
    paper = PaperExchange(source, levels=source, balances={"USDT": Decimal(10) ** 12})
    qty = Decimal(lots) / 1000
    if limit_offset is None:
        order_type, price = OrderType.MARKET, None
    else:
        order_type, price = OrderType.LIMIT, Decimal(mid) + Decimal(limit_offset) / 10
    report = asyncio.run(paper.place(leg(side, qty, order_type, price), trace_id="t"))
    if not report.ok:
        assert report.error_kind == "invalid_request"  # below the minimum notional
        return
    order = report.order
    assert order is not None
    assert Decimal(0) <= order.cum_exec_qty <= qty
    available = sum((size for _, size in (source.asks if side is Side.BUY else source.bids)))
    assert order.cum_exec_qty <= available
    if order.cum_exec_qty:
        average = order.cum_exec_value / order.cum_exec_qty
        touch = source.asks[0][0] if side is Side.BUY else source.bids[0][0]
        # takers pay the touch or worse, never beyond their limit
        assert (average >= touch) if side is Side.BUY else (average <= touch)
        if price is not None:
            assert (average <= price) if side is Side.BUY else (average >= price)
    status = order.bybit_status.value
    if order.cum_exec_qty == qty:
        assert status == "Filled"
    elif order_type is OrderType.MARKET:
        assert status in ("Cancelled", "PartiallyFilledCanceled")  # IOC: the rest is cancelled
    else:
        assert status in ("New", "PartiallyFilled")  # the rest of a limit rests
    position = (
        paper.books[(Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY)]
        if order.cum_exec_qty
        else None
    )
    if position is not None:
        assert position.size == order.cum_exec_qty * side.sign


def test_a_repeated_order_link_id_returns_the_existing_order() -> None:
    source = book(60000, [100])
    paper = PaperExchange(source, levels=source)
    place = leg(Side.BUY, Decimal("0.010"), OrderType.LIMIT, Decimal("59000"))
    first = asyncio.run(paper.place(place, trace_id="t"))
    again = asyncio.run(paper.place(place, trace_id="t"))
    assert first.ok and again.ok
    assert again.outcome == "existing"
    assert again.order_id == first.order_id
    assert len(paper.orders) == 1


def test_a_market_leg_stops_walking_the_book_at_its_slippage_tolerance() -> None:
    # asks 3 USDT apart from 60000: a 1 bp band (60000 × 1.0001 = 60006) reaches three levels
    asks = [(Decimal(60000 + 3 * i), Decimal("0.010")) for i in range(5)]
    source = Book([(Decimal(59999), Decimal(1))], asks)
    paper = PaperExchange(source, levels=source)
    # 0.5 bp is below Bybit's minimum: sent, and applied, as 0.01 % like the live gateway does
    place = replace(
        leg(Side.BUY, Decimal("0.050"), OrderType.MARKET, None),
        slippage_tolerance_bps=Decimal("0.5"),
    )
    report = asyncio.run(paper.place(place, trace_id="t"))
    assert report.ok
    assert report.request["slippageToleranceType"] == "Percent"
    assert report.request["slippageTolerance"] == "0.01"
    order = report.order
    assert order is not None
    assert order.cum_exec_qty == Decimal("0.030")
    assert order.cum_exec_value == Decimal("0.010") * (60000 + 60003 + 60006)
    assert order.bybit_status.value == "PartiallyFilledCanceled"
    # without a tolerance only the paper exchange's own 5 % band applies: everything fills
    wide = PaperExchange(source, levels=source)
    unbounded = asyncio.run(
        wide.place(leg(Side.BUY, Decimal("0.050"), OrderType.MARKET, None), trace_id="t")
    )
    assert unbounded.order is not None
    assert unbounded.order.cum_exec_qty == Decimal("0.050")
    assert "slippageTolerance" not in unbounded.request


def drain(paper: PaperExchange) -> list[dict[str, Any]]:
    items = []
    while not paper.updates.empty():
        items.append(paper.updates.get_nowait())
    return items


def test_fills_and_mark_moves_push_bybit_shaped_positions() -> None:
    source = book(60000, [100])
    paper = PaperExchange(source, levels=source)
    buy = leg(Side.BUY, Decimal("0.010"), OrderType.MARKET, None)
    assert asyncio.run(paper.place(buy, trace_id="t")).ok
    pushed = [item for item in drain(paper) if item["topic"] == "position"]
    assert len(pushed) == 1  # one fill, one position item
    at_fill = ExchangePosition.from_bybit(pushed[0]["data"])
    assert at_fill.size == Decimal("0.010")
    assert at_fill.avg_entry_price == Decimal("60000.1")  # the ask it took
    assert at_fill.mark_price == Decimal("60000.1")
    assert at_fill.leverage == Decimal(10)

    # the book drops 1 000: the next read re-marks the position at the mid and pushes it
    lower = book(59000, [100])
    source.bids, source.asks = lower.bids, lower.asks
    asyncio.run(paper.market(Category.LINEAR, "BTCUSDT"))
    (moved,) = drain(paper)
    assert moved["topic"] == "position"
    marked = ExchangePosition.from_bybit(moved["data"])
    assert marked.mark_price == Decimal(59000)
    # 0.010 × (59 000 − 60 000.1)
    assert marked.unrealized_pnl == Decimal("-10.001")
    assert paper.position_markets() == {(Category.LINEAR, "BTCUSDT")}
    # an unchanged mark pushes nothing
    asyncio.run(paper.market(Category.LINEAR, "BTCUSDT"))
    assert drain(paper) == []


def test_a_flat_position_is_pushed_flat_and_no_longer_marked() -> None:
    source = book(60000, [100])
    paper = PaperExchange(source, levels=source)
    asyncio.run(paper.place(leg(Side.BUY, Decimal("0.010"), OrderType.MARKET, None), trace_id="t"))
    close = replace(leg(Side.SELL, Decimal("0.010"), OrderType.MARKET, None), order_link_id="x")
    asyncio.run(paper.place(close, trace_id="t"))
    last = [item for item in drain(paper) if item["topic"] == "position"][-1]
    assert ExchangePosition.from_bybit(last["data"]).size == 0
    assert last["data"]["side"] == ""
    assert paper.position_markets() == set()
    lower = book(59000, [100])
    source.bids, source.asks = lower.bids, lower.asks
    asyncio.run(paper.market(Category.LINEAR, "BTCUSDT"))
    assert drain(paper) == []


def test_mark_pushes_are_throttled_per_position_fills_are_not() -> None:
    now = [100.0]
    source = book(60000, [100])
    paper = PaperExchange(source, levels=source, mark_interval=1.0, clock=lambda: now[0])
    asyncio.run(paper.place(leg(Side.BUY, Decimal("0.010"), OrderType.MARKET, None), trace_id="t"))
    drain(paper)

    def move_to(mid: int) -> list[dict[str, Any]]:
        moved = book(mid, [100])
        source.bids, source.asks = moved.bids, moved.asks
        asyncio.run(paper.market(Category.LINEAR, "BTCUSDT"))
        return [item for item in drain(paper) if item["topic"] == "position"]

    assert len(move_to(59900)) == 1  # first mark push
    now[0] += 0.5
    assert move_to(59800) == []  # within the interval: held back
    now[0] += 0.6
    (later,) = move_to(59700)  # the interval passed: the current mark is pushed
    assert ExchangePosition.from_bybit(later["data"]).mark_price == Decimal(59700)
    # a fill pushes at once, whatever the interval
    more = replace(leg(Side.BUY, Decimal("0.010"), OrderType.MARKET, None), order_link_id="m")
    asyncio.run(paper.place(more, trace_id="t"))
    assert [i["topic"] for i in drain(paper)].count("position") == 1
