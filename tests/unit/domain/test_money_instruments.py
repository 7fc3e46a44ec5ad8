from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_manager.domain.enums import Category, OrderType, Side
from order_manager.domain.instruments import Instrument, InstrumentStatus
from order_manager.domain.money import (
    bps,
    ceil_to_step,
    floor_to_step,
    is_multiple,
    parse_decimal,
)
from tests.unit.domain.conftest import btc

steps = st.sampled_from([Decimal(s) for s in ("0.001", "0.01", "0.10", "0.5", "1", "5", "0.00001")])
values = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1000000"), places=6)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(Decimal("1000.0"), Decimal("1000.0")), ("0.001", Decimal("0.001")), ("1e3", Decimal("1e3"))],
)
def test_parse_decimal_accepts_numbers_and_decimal_strings(raw: object, expected: Decimal) -> None:
    assert parse_decimal(raw) == expected


@pytest.mark.parametrize(
    "raw", [1.5, True, "NaN", "inf", " 1", "1,5", "", "0x10", None, "1" * 40, "1e30", [1]]
)
def test_parse_decimal_refuses_everything_else(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal(raw)


@given(values, steps)
def test_floor_and_ceil_bracket_the_value_on_the_grid(value: Decimal, step: Decimal) -> None:
    low, high = floor_to_step(value, step), ceil_to_step(value, step)
    assert is_multiple(low, step) and is_multiple(high, step)
    assert low <= value <= high
    assert high - low in (0, step)
    assert value - low < step


def test_floor_keeps_the_steps_exponent_for_the_wire() -> None:
    assert str(floor_to_step(Decimal("0.0155"), Decimal("0.001"))) == "0.015"
    assert str(floor_to_step(Decimal("64250.57"), Decimal("0.10"))) == "64250.50"


def test_bps_and_bad_steps() -> None:
    assert bps(Decimal("0.5"), Decimal("64250")) == Decimal("0.5") / Decimal("64250") * 10000
    with pytest.raises(ValueError):
        floor_to_step(Decimal(1), Decimal(0))
    with pytest.raises(ValueError):
        bps(Decimal(1), Decimal(0))


def test_price_rounds_towards_the_passive_side() -> None:
    inst = btc()
    assert inst.round_price(Decimal("64250.57"), Side.BUY) == Decimal("64250.5")
    assert inst.round_price(Decimal("64250.51"), Side.SELL) == Decimal("64250.6")
    assert inst.round_price(Decimal("64250.50"), Side.SELL) == Decimal("64250.5")


def test_qty_rounds_down_and_minimums() -> None:
    inst = btc()
    assert inst.round_qty(Decimal("0.0159")) == Decimal("0.015")
    assert inst.round_qty(Decimal("0.0009")) == 0
    assert inst.meets_minimums(Decimal("0.001"), Decimal("6000"))
    assert not inst.meets_minimums(Decimal("0.001"), Decimal("4000"))  # 4 USDT < 5
    assert not inst.meets_minimums(Decimal("0"), Decimal("4000"))
    assert inst.max_qty_for(OrderType.MARKET) == Decimal("500")
    assert inst.max_qty_for(OrderType.LIMIT) == Decimal("1190")
    assert inst.is_valid_qty(Decimal("0.015")) and not inst.is_valid_qty(Decimal("0.0155"))
    assert inst.is_valid_price(Decimal("1.1")) and not inst.is_valid_price(Decimal("1.15"))


def test_inverse_quantities_are_quote_contracts() -> None:
    inst = btc(
        category=Category.INVERSE, symbol="BTCUSD", qty_step=Decimal(1), min_order_qty=Decimal(1)
    )
    assert inst.base_qty_for(Decimal(100), Decimal(50000)) == 100
    assert inst.notional(Decimal(100), Decimal(50000)) == 100
    assert inst.qty_from_base_amount(Decimal("0.01"), Decimal(50000)) == 500


def test_instrument_validates_its_rules() -> None:
    with pytest.raises(ValueError):
        btc(tick_size=Decimal(0))
    with pytest.raises(ValueError):
        btc(max_order_qty=Decimal("0.0001"))
    assert not btc(status=InstrumentStatus.CLOSED).is_trading
    assert isinstance(btc(), Instrument)
