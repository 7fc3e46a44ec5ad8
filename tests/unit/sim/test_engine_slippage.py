"""The simulator's slippage tolerance on market orders (`slippageToleranceType` /
`slippageTolerance`): Bybit's validation (10001) and the IOC walk it bounds.

Default BTCUSDT book (frozen at 65000.0, tick 0.1): asks 65000.1, 65000.2, ... and bids 64999.9,
64999.8, ... one tick apart, level k holding 0.5 × (1 + 0.25 (k − 1)) BTC."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_sim.engine.errors import ApiError
from tests.unit.sim.helpers import linear, make_exchange

D = Decimal


def test_a_tick_tolerance_stops_the_walk_and_cancels_the_rest() -> None:
    ex, rec = make_exchange()
    oid = ex.create_order(
        linear(
            side="Buy",
            orderType="Market",
            qty="3",
            slippageToleranceType="TickSize",
            slippageTolerance="2",
        )
    )["orderId"]
    order = ex.orders[oid]
    # ask1 65000.1 + 2 ticks = 65000.3: three levels, 0.5 + 0.625 + 0.75
    assert order.price == D("65000.3")
    assert order.cum_exec_qty == D("1.875")
    assert order.status == "Cancelled"
    assert order.reject_reason == "EC_NoEnoughQtyToFill"
    prices = {D(e["execPrice"]) for e in rec.topic("execution")}
    assert prices == {D("65000.1"), D("65000.2"), D("65000.3")}
    item = order.render(ws=False)
    assert item["slippageToleranceType"] == "TickSize"
    assert item["slippageTolerance"] == "2"
    assert item["price"] == "65000.30"


def test_a_percent_tolerance_bounds_a_sell_below_the_bid() -> None:
    ex, _ = make_exchange(initial_wallet={"USDT": D(10) ** 8})
    oid = ex.create_order(
        linear(
            side="Sell",
            orderType="Market",
            qty="300",
            slippageToleranceType="Percent",
            slippageTolerance="0.01",
        )
    )["orderId"]
    order = ex.orders[oid]
    # bid1 64999.9 × 0.9999 = 64993.40001, rounded up to the tick: 65 levels hold 292.5
    assert order.price == D("64993.5")
    assert order.cum_exec_qty == D("292.5")
    assert order.status == "Cancelled"
    assert order.render(ws=True)["slippageTolerance"] == "0.01"


def test_a_tolerance_wide_enough_fills_like_a_plain_market_order() -> None:
    ex, _ = make_exchange()
    oid = ex.create_order(
        linear(
            side="Buy",
            orderType="Market",
            qty="1",
            slippageToleranceType="Percent",
            slippageTolerance="0.5",
        )
    )["orderId"]
    order = ex.orders[oid]
    assert order.status == "Filled"
    assert order.cum_exec_qty == D("1")
    assert order.price == D("65325.1")  # floor(65000.1 × 1.005), inside the 5 % price limit


def test_an_order_without_a_tolerance_renders_bybits_defaults() -> None:
    ex, _ = make_exchange()
    oid = ex.create_order(linear(side="Buy", orderType="Market", qty="0.1"))["orderId"]
    item = ex.orders[oid].render(ws=False)
    assert item["slippageToleranceType"] == "UNKNOWN"
    assert item["slippageTolerance"] == "0"
    assert ex.orders[oid].price == D("68250.0")  # the 5 % price-limit band of last 65000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"orderType": "Limit", "price": "64000", "slippageToleranceType": "Percent"},
            "only supports market order",
        ),
        ({"slippageToleranceType": "Percent"}, "slippageTolerance is required"),
        ({"slippageTolerance": "1"}, "slippageToleranceType is required"),
        ({"slippageToleranceType": "Bps", "slippageTolerance": "1"}, "TickSize or Percent"),
        ({"slippageToleranceType": "Percent", "slippageTolerance": "0.005"}, "[0.01, 10]"),
        ({"slippageToleranceType": "Percent", "slippageTolerance": "10.5"}, "[0.01, 10]"),
        ({"slippageToleranceType": "Percent", "slippageTolerance": "0.125"}, "2 decimals"),
        ({"slippageToleranceType": "TickSize", "slippageTolerance": "0"}, "[1, 10000]"),
        ({"slippageToleranceType": "TickSize", "slippageTolerance": "10001"}, "[1, 10000]"),
        ({"slippageToleranceType": "TickSize", "slippageTolerance": "1.5"}, "integer"),
        ({"slippageToleranceType": "Percent", "slippageTolerance": "abc"}, "invalid"),
    ],
)
def test_invalid_tolerances_are_10001_and_place_nothing(
    params: dict[str, str], message: str
) -> None:
    ex, rec = make_exchange()
    request = linear(side="Buy", qty="0.1", **{"orderType": "Market", **params})
    with pytest.raises(ApiError) as caught:
        ex.create_order(request)
    assert caught.value.ret_code == 10001
    assert message in caught.value.ret_msg
    assert ex.orders == {}
    assert rec.topic("execution") == []
