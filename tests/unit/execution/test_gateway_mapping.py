"""Pure mappings of the Bybit gateway: planned legs → create parameters, error kinds, positions."""

from __future__ import annotations

from decimal import Decimal

from order_manager.adapters.bybit.errors import (
    InsufficientFundsError,
    NotFoundError,
    OrderOutcomeUnknownError,
    RateLimitedError,
    TransportError,
)
from order_manager.adapters.bybit.gateway import _kind, place_request, to_position
from order_manager.adapters.bybit.models import Position as WirePosition
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.plans import LegIntent, Place


def _place(**kw: object) -> Place:
    values: dict[str, object] = {
        "leg": 1,
        "order_link_id": "om-abc-1",
        "category": Category.LINEAR,
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "order_type": OrderType.MARKET,
        "qty": Decimal("0.015"),
        "price": None,
        "time_in_force": TimeInForce.IOC,
        "reduce_only": False,
        "post_only": False,
        "position_idx": PositionIdx.ONE_WAY,
        "intent": LegIntent.OPEN,
        "reference_price": Decimal("65000.1"),
        "notional": Decimal("975.0015"),
    }
    values.update(kw)
    return Place(**values)  # type: ignore[arg-type]


def test_a_linear_market_leg_maps_to_bybit_create_parameters() -> None:
    body = place_request(_place()).to_body()
    assert body == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Market",
        "qty": Decimal("0.015"),
        "timeInForce": "IOC",
        "orderLinkId": "om-abc-1",
        "positionIdx": 0,
    }


def test_a_reduce_only_limit_leg_sends_price_and_reduce_only() -> None:
    leg = _place(
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        price=Decimal("65010.0"),
        time_in_force=TimeInForce.GTC,
        reduce_only=True,
        intent=LegIntent.REDUCE,
        position_idx=PositionIdx.HEDGE_LONG,
    )
    body = place_request(leg).to_body()
    assert body["price"] == Decimal("65010.0")
    assert body["reduceOnly"] is True
    assert body["positionIdx"] == 1
    assert body["side"] == "Sell"


def test_a_spot_market_leg_is_in_base_coin_and_has_no_position_fields() -> None:
    leg = _place(category=Category.SPOT, position_idx=None, reduce_only=True)
    body = place_request(leg).to_body()
    assert body["marketUnit"] == "baseCoin"
    assert "positionIdx" not in body
    assert "reduceOnly" not in body


def test_error_kinds_follow_the_client_taxonomy() -> None:
    assert _kind(InsufficientFundsError("x", ret_code=110007)) == "insufficient_funds"
    assert _kind(NotFoundError("x", ret_code=110001)) == "not_found"
    assert _kind(RateLimitedError("x", ret_code=10006)) == "retryable"
    assert _kind(OrderOutcomeUnknownError("x", order_link_id="om-1")) == "unknown_outcome"
    # a create that may have left the machine is unknown; a query is merely retryable
    timeout = TransportError("read timeout", maybe_executed=True)
    assert _kind(timeout, create=True) == "unknown_outcome"
    assert _kind(timeout) == "retryable"
    refused = TransportError("connection refused", maybe_executed=False)
    assert _kind(refused, create=True) == "retryable"


def test_positions_are_signed_by_side_with_entry_value() -> None:
    short = WirePosition.model_validate(
        {
            "symbol": "BTCUSDT",
            "side": "Sell",
            "size": "0.020",
            "avgPrice": "64000",
            "leverage": "10",
        }
    )
    position = to_position(Category.LINEAR, short)
    assert position.size == Decimal("-0.020")
    assert position.entry_value == Decimal("1280.000")
    assert position.avg_entry_price == Decimal("64000")
    flat = WirePosition.model_validate({"symbol": "BTCUSDT", "side": "", "size": "0"})
    assert to_position(Category.LINEAR, flat).is_flat


def test_a_market_leg_sends_its_slippage_tolerance_as_percent() -> None:
    body = place_request(_place(slippage_tolerance_bps=Decimal(50))).to_body()
    assert body["slippageToleranceType"] == "Percent"
    assert body["slippageTolerance"] == "0.5"


def test_a_tolerance_outside_bybits_range_is_clamped_into_it() -> None:
    tight = place_request(_place(slippage_tolerance_bps=Decimal("0.5"))).to_body()
    assert tight["slippageTolerance"] == "0.01"  # 0.005 % would be refused (min 0.01)
    wide = place_request(_place(slippage_tolerance_bps=Decimal(2500))).to_body()
    assert wide["slippageTolerance"] == "10"  # 25 % would be refused (max 10)
    odd = place_request(_place(slippage_tolerance_bps=Decimal("12.5"))).to_body()
    assert odd["slippageTolerance"] == "0.12"  # two decimals, rounded down (tighter)


def test_a_limit_leg_never_carries_a_slippage_tolerance() -> None:
    leg = _place(
        order_type=OrderType.LIMIT,
        price=Decimal("65010.0"),
        time_in_force=TimeInForce.GTC,
        slippage_tolerance_bps=Decimal(50),
    )
    body = place_request(leg).to_body()
    assert "slippageToleranceType" not in body
    assert "slippageTolerance" not in body


def test_a_spot_market_leg_carries_the_tolerance_with_its_base_unit() -> None:
    leg = _place(category=Category.SPOT, position_idx=None, slippage_tolerance_bps=Decimal(30))
    body = place_request(leg).to_body()
    assert body["marketUnit"] == "baseCoin"
    assert body["slippageTolerance"] == "0.3"
