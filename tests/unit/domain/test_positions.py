from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.domain.enums import Category, PositionIdx, Side
from order_manager.domain.orders import Execution
from order_manager.domain.positions import (
    ExchangePosition,
    Position,
    PositionFill,
    apply_fill,
    compare,
    loss_ratio,
    position_from_fills,
)
from tests.unit.domain.conftest import NOW

D = Decimal


def fill(
    side: Side, qty: str, price: str, fee: str = "0", idx: int = 0, exec_id: str = ""
) -> PositionFill:
    return PositionFill(side, D(qty), D(price), D(fee), exec_id, PositionIdx(idx))


def test_scale_in_averages_the_entry() -> None:
    pos = position_from_fills(
        Category.LINEAR,
        "BTCUSDT",
        [fill(Side.BUY, "0.010", "60000", "0.33"), fill(Side.BUY, "0.030", "64000", "1.056")],
    )
    assert pos.size == D("0.040") and pos.side is Side.BUY
    assert pos.avg_entry_price == D("63000")
    assert pos.realized_pnl == D("-1.386") and pos.fees == D("1.386")
    assert pos.unrealized_pnl(D("65000")) == D("80.000")
    assert pos.notional(D("65000")) == D("2600.000")


def test_partial_close_realises_pnl_net_of_fees() -> None:
    pos = position_from_fills(
        Category.LINEAR,
        "BTCUSDT",
        [fill(Side.BUY, "0.040", "63000"), fill(Side.SELL, "0.010", "65000", "0.5")],
    )
    assert pos.size == D("0.030")
    assert pos.avg_entry_price == D("63000")
    assert pos.realized_pnl == D("20.000") - D("0.5")


def test_one_way_flip_opens_the_remainder_at_the_fill_price() -> None:
    pos = position_from_fills(
        Category.LINEAR,
        "BTCUSDT",
        [fill(Side.BUY, "1", "100"), fill(Side.SELL, "3", "110")],
    )
    assert pos.size == D("-2") and pos.side is Side.SELL
    assert pos.avg_entry_price == D("110")
    assert pos.realized_pnl == D("10")
    assert pos.unrealized_pnl(D("100")) == D("20")  # short gains when price falls


def test_hedge_mode_books_never_flip() -> None:
    long_book = position_from_fills(
        Category.LINEAR, "BTCUSDT", [fill(Side.BUY, "2", "100", idx=1)], PositionIdx.HEDGE_LONG
    )
    assert long_book.size == 2
    closed = apply_fill(long_book, fill(Side.SELL, "2", "90", idx=1))
    assert closed.is_flat and closed.realized_pnl == D("-20") and closed.avg_entry_price is None
    with pytest.raises(ValueError):
        apply_fill(long_book, fill(Side.SELL, "3", "90", idx=1))
    with pytest.raises(ValueError):
        apply_fill(
            Position.flat(Category.LINEAR, "BTCUSDT", PositionIdx.HEDGE_LONG),
            fill(Side.SELL, "1", "90", idx=1),
        )
    with pytest.raises(ValueError):
        apply_fill(long_book, fill(Side.BUY, "1", "90", idx=2))
    short_book = position_from_fills(
        Category.LINEAR, "BTCUSDT", [fill(Side.SELL, "1", "100", idx=2)], PositionIdx.HEDGE_SHORT
    )
    assert short_book.size == -1 and short_book.side is Side.SELL


def test_inverse_contracts_use_harmonic_average_and_base_pnl() -> None:
    pos = position_from_fills(
        Category.INVERSE,
        "BTCUSD",
        [fill(Side.BUY, "100", "50000"), fill(Side.BUY, "100", "40000")],
    )
    # 200 contracts for 100/50000 + 100/40000 BTC
    assert pos.avg_entry_price == D(200) / (D(100) / 50000 + D(100) / 40000)
    closed = apply_fill(pos, fill(Side.SELL, "200", "50000"))
    assert closed.is_flat
    assert closed.realized_pnl == (D(100) / 50000 + D(100) / 40000) - D(200) / 50000
    assert pos.notional() == D(200)


def test_duplicate_exec_ids_count_once_and_bad_fills_raise() -> None:
    fills = [fill(Side.BUY, "1", "100", exec_id="a"), fill(Side.BUY, "1", "100", exec_id="a")]
    assert position_from_fills(Category.LINEAR, "X", fills).size == 1
    with pytest.raises(ValueError):
        apply_fill(Position.flat(Category.LINEAR, "X"), fill(Side.BUY, "0", "100"))


def test_from_execution_and_loss_ratio() -> None:
    ex = Execution("e", "o", "l", "BTCUSDT", Side.BUY, D("100"), D("2"), D("0.1"), NOW)
    pos = apply_fill(Position.flat(Category.LINEAR, "BTCUSDT"), PositionFill.from_execution(ex))
    assert pos.size == 2 and pos.fees == D("0.1")
    assert loss_ratio(pos, D("90")) == D("0.1")
    assert loss_ratio(pos, D("110")) == 0


def test_compare_reports_drift() -> None:
    ours = position_from_fills(Category.LINEAR, "BTCUSDT", [fill(Side.BUY, "0.040", "63000")])
    exchange = ExchangePosition.from_bybit(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "size": "0.040",
            "avgPrice": "63000.00",
            "markPrice": "64000",
            "positionIdx": 0,
            "unrealisedPnl": "40",
            "cumRealisedPnl": "-1.2",
        }
    )
    assert not compare(ours, exchange).has_drift
    short = ExchangePosition.from_bybit(
        {
            "symbol": "BTCUSDT",
            "side": "Sell",
            "size": "0.040",
            "entryPrice": "63000",
            "positionIdx": 0,
        },
        Category.LINEAR,
    )
    drift = compare(ours, short)
    assert [f.name for f in drift.fields] == ["size"]
    off = compare(
        ours, ExchangePosition.from_bybit({**_row(), "avgPrice": "63100"}, Category.LINEAR)
    )
    assert [f.name for f in off.fields] == ["avg_entry_price"]
    flat = ExchangePosition.from_bybit(
        {**_row(), "side": "", "size": "0", "avgPrice": "0"}, Category.LINEAR
    )
    assert {f.name for f in compare(ours, flat).fields} == {"size", "avg_entry_price"}
    other = position_from_fills(Category.LINEAR, "BTCUSDT", [fill(Side.BUY, "0.040", "63000", "1")])
    assert [f.name for f in compare(ours, other, pnl_tolerance=D("0.01")).fields] == [
        "realized_pnl"
    ]


def _row() -> dict[str, object]:
    return {"symbol": "BTCUSDT", "side": "Buy", "size": "0.040", "positionIdx": 0}


fills_strategy = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=5000),
        st.integers(min_value=1000, max_value=100000),
        st.integers(min_value=-5, max_value=50),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(fills_strategy)
def test_position_size_is_the_sum_of_fills_and_cash_balances_when_flat(
    raw: list[tuple[Side, int, int, int]],
) -> None:
    fills = [
        PositionFill(side, D(q) / 1000, D(p) / 10, D(f) / 100, exec_id=str(i))
        for i, (side, q, p, f) in enumerate(raw)
    ]
    pos = position_from_fills(Category.LINEAR, "BTCUSDT", fills)
    assert pos.size == sum((f.qty * f.side.sign for f in fills), D(0))
    assert pos.fees == sum((f.fee for f in fills), D(0))
    # realised + unrealised at any mark == cash flow + mark value of what is held (no drift)
    mark = D("5000.5")
    cash = sum((-f.side.sign * f.qty * f.price for f in fills), D(0))
    total = pos.realized_pnl + pos.fees + pos.unrealized_pnl(mark)
    assert abs(total - (cash + pos.size * mark)) < D("1e-12")
    if pos.size != 0:
        assert pos.avg_entry_price is not None and pos.avg_entry_price > 0
        assert (pos.side is Side.BUY) == (pos.size > 0)


@settings(max_examples=200)
@given(fills_strategy, st.randoms(use_true_random=False))
def test_fill_arrival_order_and_duplicates_do_not_change_the_position(
    raw: list[tuple[Side, int, int, int]], rnd: Random
) -> None:
    fills = [
        PositionFill(
            side, D(q) / 1000, D(p) / 10, D(f) / 100, f"e{i}", exec_time=NOW + timedelta(seconds=i)
        )
        for i, (side, q, p, f) in enumerate(raw)
    ]
    expected = position_from_fills(Category.LINEAR, "BTCUSDT", fills)
    delivered = fills + rnd.sample(fills, k=min(3, len(fills)))
    rnd.shuffle(delivered)
    assert position_from_fills(Category.LINEAR, "BTCUSDT", delivered) == expected
