"""A cancel written ahead, rebuilt from the order's row for the signal's resumed run."""

from __future__ import annotations

from decimal import Decimal

from order_manager.domain.enums import Side
from order_manager.domain.orders import BybitOrderStatus, apply_update
from order_manager.domain.plans import CancelReason, resumed_cancel
from tests.unit.domain.test_orders import intent, update


def test_an_order_on_the_other_side_was_an_opposite_order() -> None:
    partly = update(BybitOrderStatus.PARTIALLY_FILLED, 1, "0.250")
    order = apply_update(intent(qty="1.000"), partly).state
    cancel = resumed_cancel(order, Side.SELL)  # the order buys, the signal sells
    assert cancel.reason is CancelReason.OPPOSITE_SIGNAL
    assert (cancel.order_link_id, cancel.order_id) == (order.order_link_id, "ord-1")
    assert (cancel.category, cancel.symbol, cancel.side) == (order.category, "BTCUSDT", Side.BUY)
    assert cancel.remaining_qty == Decimal("0.750")  # what has not traded


def test_an_order_on_the_signals_side_was_a_limit_the_market_signal_replaces() -> None:
    cancel = resumed_cancel(intent(), Side.BUY)
    assert cancel.reason is CancelReason.REPLACED_BY_MARKET
    assert cancel.remaining_qty == Decimal("1.000")
