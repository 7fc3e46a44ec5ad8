"""Conditional orders, TP/SL on orders and positions, hedge mode, leverage (no HTTP)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_sim.engine import position_ops, queries
from bybit_sim.engine.errors import ApiError
from tests.unit.sim.helpers import linear, make_exchange

D = Decimal


def test_conditional_order_untriggered_triggered_new_filled() -> None:
    ex, rec = make_exchange()
    oid = ex.create_order(
        linear(side="Buy", orderType="Market", qty="0.1", triggerPrice="65500", triggerDirection=1)
    )["orderId"]
    assert ex.orders[oid].status == "Untriggered"
    assert (
        queries.open_orders(ex, linear(orderFilter="StopOrder"))["list"][0]["stopOrderType"]
        == "Stop"
    )
    ex.set_price("linear", "BTCUSDT", D("65400"))
    assert ex.orders[oid].status == "Untriggered"
    ex.set_price("linear", "BTCUSDT", D("65500"))
    assert rec.statuses(oid) == ["Untriggered", "Triggered", "New", "Filled"]
    assert queries.position_list(ex, linear())["list"][0]["size"] == "0.100"


def test_trigger_direction_must_match_current_price() -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        ex.create_order(
            linear(
                side="Buy", orderType="Market", qty="0.1", triggerPrice="64000", triggerDirection=1
            )
        )
    assert err.value.ret_code == 110092
    with pytest.raises(ApiError) as err:
        ex.create_order(
            linear(
                side="Buy", orderType="Market", qty="0.1", triggerPrice="66000", triggerDirection=2
            )
        )
    assert err.value.ret_code == 110093


def test_cancelled_conditional_is_deactivated() -> None:
    ex, rec = make_exchange()
    oid = ex.create_order(
        linear(
            side="Sell",
            orderType="Limit",
            qty="0.1",
            price="64000",
            triggerPrice="64100",
            triggerDirection=2,
        )
    )["orderId"]
    ex.cancel_order(linear(orderId=oid))
    assert rec.statuses(oid) == ["Untriggered", "Deactivated"]


def test_position_take_profit_closes_the_position() -> None:
    ex, rec = make_exchange()
    ex.create_order(linear(side="Buy", orderType="Market", qty="0.2"))
    position_ops.trading_stop(ex, linear(positionIdx=0, takeProfit="66000", stopLoss="64000"))
    pos = queries.position_list(ex, linear())["list"][0]
    assert pos["takeProfit"] == "66000.00" and pos["stopLoss"] == "64000.00"
    tpsl = queries.open_orders(ex, linear(orderFilter="StopOrder"))["list"]
    assert {o["stopOrderType"] for o in tpsl} == {"TakeProfit", "StopLoss"}
    ex.set_price("linear", "BTCUSDT", D("66000"))
    pos = queries.position_list(ex, linear())["list"][0]
    assert pos["size"] == "0.000"
    tp = next(o for o in tpsl if o["stopOrderType"] == "TakeProfit")["orderId"]
    sl = next(o for o in tpsl if o["stopOrderType"] == "StopLoss")["orderId"]
    assert rec.statuses(tp) == ["Untriggered", "Triggered", "New", "Filled"]
    assert ex.orders[tp].create_type == "CreateByTakeProfit"
    assert rec.statuses(sl)[-1] == "Deactivated"
    assert ex.orders[sl].cancel_type == "CancelByTpSlTsClear"


def test_trading_stop_validation() -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        position_ops.trading_stop(ex, linear(positionIdx=0, takeProfit="66000"))
    assert err.value.ret_code == 10001
    ex.create_order(linear(side="Buy", orderType="Market", qty="0.2"))
    with pytest.raises(ApiError) as err:
        position_ops.trading_stop(ex, linear(positionIdx=0, stopLoss="66000"))
    assert "should lower than base_price" in err.value.ret_msg
    position_ops.trading_stop(ex, linear(positionIdx=0, takeProfit="66000"))
    with pytest.raises(ApiError) as err:
        position_ops.trading_stop(ex, linear(positionIdx=0, takeProfit="66000"))
    assert err.value.ret_code == 34040


def test_order_with_take_profit_sets_it_on_the_position() -> None:
    ex, _ = make_exchange()
    ex.create_order(linear(side="Sell", orderType="Market", qty="0.1", stopLoss="66000"))
    pos = queries.position_list(ex, linear())["list"][0]
    assert pos["side"] == "Sell" and pos["stopLoss"] == "66000.00"
    ex.set_price("linear", "BTCUSDT", D("66100"))
    assert queries.position_list(ex, linear())["list"][0]["size"] == "0.000"


def test_order_tpsl_must_sit_on_the_right_side_of_the_price() -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        ex.create_order(linear(side="Buy", orderType="Market", qty="0.1", takeProfit="64000"))
    assert err.value.ret_code == 10001
    assert err.value.ret_msg.startswith("TakeProfit:64000.00 set for Buy position should higher")
    with pytest.raises(ApiError) as err:
        ex.create_order(
            linear(side="Sell", orderType="Limit", qty="0.1", price="65100", stopLoss="65000")
        )
    assert err.value.ret_msg.startswith("StopLoss:65000.00 set for Sell position should higher")
    assert ex.orders == {}


def test_hedge_mode_positions_and_idx_rules() -> None:
    ex, _ = make_exchange()
    position_ops.switch_mode(ex, linear(mode=3))
    with pytest.raises(ApiError) as err:
        ex.create_order(linear(side="Buy", orderType="Market", qty="0.1"))
    assert err.value.ret_msg == "position idx not match position mode"
    ex.create_order(linear(side="Buy", orderType="Market", qty="0.1", positionIdx=1))
    ex.create_order(linear(side="Sell", orderType="Market", qty="0.3", positionIdx=2))
    rows = queries.position_list(ex, linear())["list"]
    assert [(r["positionIdx"], r["side"], r["size"]) for r in rows] == [
        (1, "Buy", "0.100"),
        (2, "Sell", "0.300"),
    ]
    # closing the long with idx 1 cannot exceed it and never touches the short
    ex.create_order(linear(side="Sell", orderType="Market", qty="0.5", positionIdx=1))
    rows = queries.position_list(ex, linear())["list"]
    assert [(r["positionIdx"], r["size"]) for r in rows] == [(1, "0.000"), (2, "0.300")]
    with pytest.raises(ApiError) as err:
        position_ops.switch_mode(ex, linear(mode=0))
    assert err.value.ret_code == 110024


def test_switch_mode_refusals() -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        position_ops.switch_mode(ex, linear(mode=0))
    assert err.value.ret_code == 110025
    ex.create_order(linear(side="Buy", orderType="Limit", qty="0.01", price="60000"))
    with pytest.raises(ApiError) as err:
        position_ops.switch_mode(ex, linear(mode=3))
    assert err.value.ret_code == 110028
    with pytest.raises(ApiError) as err:
        position_ops.switch_mode(ex, linear(mode=1))
    assert err.value.ret_code == 10001
    position_ops.switch_mode(ex, {"category": "linear", "coin": "USDT", "mode": 3})
    assert ex.position_mode["ETHUSDT"] == "hedge"
    assert ex.position_mode["BTCUSDT"] == "one_way"


def test_leverage_changes_margin() -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        position_ops.set_leverage(ex, linear(buyLeverage="10", sellLeverage="10"))
    assert err.value.ret_code == 110043
    with pytest.raises(ApiError) as err:
        position_ops.set_leverage(ex, linear(buyLeverage="101", sellLeverage="101"))
    assert err.value.ret_code == 10001
    position_ops.set_leverage(ex, linear(buyLeverage="2", sellLeverage="2"))
    ex.create_order(linear(side="Buy", orderType="Limit", qty="1", price="60000"))
    assert ex.order_im == D("30000")
    with pytest.raises(ApiError) as err:
        ex.create_order(linear(side="Buy", orderType="Limit", qty="3", price="60000"))
    assert err.value.ret_code == 110007


def test_external_order_and_force_fill() -> None:
    ex, rec = make_exchange()
    placed = ex.place_external_order(
        category="linear",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.5",
        price="64000",
        orderLinkId="ignored",
    )
    assert placed["orderLinkId"] == "" and placed["createType"] == "CreateByUser"
    oid = placed["orderId"]
    ex.force_fill(oid, D("0.2"))
    assert ex.orders[oid].status == "PartiallyFilled"
    ex.force_fill(oid)
    assert rec.statuses(oid) == ["New", "PartiallyFilled", "Filled"]
    with pytest.raises(ApiError):
        ex.force_fill(oid)


def test_partial_tpsl_on_an_order_follows_its_fills_and_closes_that_much() -> None:
    ex, rec = make_exchange()
    parent = ex.create_order(
        linear(
            side="Buy",
            orderType="Limit",
            qty="1",
            price="64900",
            orderLinkId="with-tp",
            takeProfit="66000",
            tpslMode="Partial",
            tpOrderType="Limit",
            tpLimitPrice="65990",
        )
    )["orderId"]
    ex.force_fill(parent, D("0.4"))
    children = [o for o in ex.orders.values() if o.stop_order_type == "PartialTakeProfit"]
    assert len(children) == 1
    child = children[0]
    assert (child.qty, child.parent_order_link_id) == (D("0.4"), "with-tp")
    assert child.create_type == "CreateByPartialTakeProfit"
    ex.force_fill(parent)
    assert child.qty == D("1")
    ex.set_price("linear", "BTCUSDT", D("66000"))
    # triggered into a Limit sell at 65990 below the new bid: it takes liquidity at once
    assert rec.statuses(child.order_id)[:3] == ["Untriggered", "Untriggered", "Triggered"]
    assert child.order_type == "Limit" and child.price == D("65990")
    assert child.status == "Filled"
    assert ex.positions[("BTCUSDT", 0)].size == 0


def test_partial_trading_stop_sizes_and_cleanup() -> None:
    ex, rec = make_exchange()
    ex.create_order(linear(side="Buy", orderType="Market", qty="1"))
    with pytest.raises(ApiError) as err:
        position_ops.trading_stop(
            ex,
            linear(
                positionIdx=0,
                tpslMode="Partial",
                takeProfit="66000",
                stopLoss="64000",
                tpSize="0.3",
                slSize="0.2",
            ),
        )
    assert err.value.ret_code == 10001
    with pytest.raises(ApiError) as err:
        position_ops.trading_stop(
            ex, linear(positionIdx=0, tpslMode="Partial", stopLoss="64000", slSize="2")
        )
    assert err.value.ret_code == 110058
    position_ops.trading_stop(
        ex,
        linear(
            positionIdx=0,
            tpslMode="Partial",
            takeProfit="66000",
            stopLoss="64000",
            tpSize="0.3",
            slSize="0.3",
        ),
    )
    partial = {o.stop_order_type: o for o in ex.orders.values() if o.tpsl_mode == "Partial"}
    assert set(partial) == {"PartialTakeProfit", "PartialStopLoss"}
    ex.set_price("linear", "BTCUSDT", D("64000"))
    pos = ex.positions[("BTCUSDT", 0)]
    assert pos.size == D("0.7")
    assert partial["PartialStopLoss"].status == "Filled"
    assert partial["PartialTakeProfit"].status == "Untriggered"
    ex.create_order(linear(side="Sell", orderType="Market", qty="0.7", reduceOnly=True))
    assert rec.statuses(partial["PartialTakeProfit"].order_id)[-1] == "Deactivated"
    assert partial["PartialTakeProfit"].cancel_type == "CancelByTpSlTsClear"


def test_full_mode_rejects_limit_tpsl_and_spot_rejects_tpsl() -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        ex.create_order(
            linear(
                side="Buy",
                orderType="Market",
                qty="0.1",
                takeProfit="66000",
                tpOrderType="Limit",
                tpLimitPrice="66000",
            )
        )
    assert "Full" in err.value.ret_msg
    with pytest.raises(ApiError) as err:
        ex.create_order(
            {
                "category": "spot",
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": "0.01",
                "price": "60000",
                "takeProfit": "70000",
            }
        )
    assert err.value.ret_code == 10001
