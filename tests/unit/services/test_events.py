"""Event payload builders: messages.md §4 shapes, exact Decimal strings, enrichment."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.orders import (
    BybitOrderStatus,
    ExchangeOrderUpdate,
    Execution,
    OrderEventType,
    OrderState,
    acknowledge,
    apply_execution,
    apply_update,
    mark_rejected,
)
from order_manager.domain.positions import Position, PositionFill, apply_fill
from order_manager.domain.rejections import RejectCode, Rejection
from order_manager.domain.signals import SignalMarketData, SignalType, TradingSignal
from order_manager.services.events import (
    MarketConditions,
    OrderContext,
    SignalSummary,
    dec,
    iso,
    order_event_payload,
    payload_decimal,
    position_updated_payload,
    signal_rejected_payload,
)
from order_manager.services.tracker import signal_enrichment

NOW = datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)
ORDER_UUID = uuid.UUID("11111111-2222-3333-4444-555555555555")
SIGNAL_ID = "6f2c8a1e-0b5e-4f1f-9c3e-2a7b9e1d4c55"
CTX = OrderContext(order_uuid=ORDER_UUID, signal_id=SIGNAL_ID, submitted_at=NOW)


def intent() -> OrderState:
    return OrderState.submitting(
        order_link_id="om-x-1",
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.015"),
        price=Decimal("64240.0"),
        time_in_force=TimeInForce.GTC,
        created_at=NOW,
    )


def fill(exec_id: str, qty: str, ms: int, fee: str = "0.3532") -> Execution:
    return Execution(
        exec_id=exec_id,
        order_id="bybit-1",
        order_link_id="om-x-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        exec_price=Decimal("64240.0"),
        exec_qty=Decimal(qty),
        exec_fee=Decimal(fee),
        exec_time=NOW + timedelta(milliseconds=ms),
        is_maker=True,
        fee_currency="USDT",
    )


def test_decimal_strings_are_exact_and_plain() -> None:
    assert dec(Decimal("0.010")) == "0.010"
    assert dec(Decimal("1E+3")) == "1000"
    assert dec(Decimal("1E-8")) == "0.00000001"
    assert dec(Decimal("-0.00")) == "0.00"
    assert dec(None) is None
    with pytest.raises(ValueError, match="non-finite"):
        dec(Decimal("NaN"))


def test_iso_is_utc_z_and_refuses_naive() -> None:
    assert iso(NOW) == "2026-11-23T10:15:30Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        iso(datetime(2026, 1, 1))  # noqa: DTZ001 - the naive value under test


def test_partial_fill_payload_has_the_messages_md_shape() -> None:
    state = acknowledge(intent(), "bybit-1", NOW).state
    result = apply_execution(state, fill("e1", "0.010", 840))
    (event,) = result.events
    assert event.event_type is OrderEventType.PARTIALLY_FILLED
    market = MarketConditions(Decimal("64250.05"), Decimal("0.1"), "orderbook")
    signal = SignalSummary(SIGNAL_ID, "momentum_v1", Decimal("0.82"), Decimal("1000"))
    payload = order_event_payload(event, CTX, market=market, signal=signal)

    # round-trips through JSON unchanged (no float, no Decimal objects left)
    assert json.loads(json.dumps(payload)) == payload
    order = payload["order"]
    assert order["id"] == str(ORDER_UUID)
    assert order["order_id"] == "bybit-1"
    assert order["signal_id"] == SIGNAL_ID
    assert order["asset"] == "BTCUSDT"
    assert order["status"] == "partially_filled"
    assert order["quantity"] == "0.015"
    assert order["filled_quantity"] == "0.010"
    assert Decimal(order["average_price"]) == Decimal("64240.0")
    assert order["fees"] == "0.3532"
    assert order["fee_currency"] == "USDT"
    assert order["executed_at"] == "2026-11-23T10:15:30.840000Z"
    details = payload["execution_details"]
    assert details["last_fill_qty"] == "0.010"
    assert details["last_fill_price"] == "64240.0"
    assert details["exec_id"] == "e1"
    assert details["is_maker"] is True
    assert details["fill_percentage"] == "66.67"
    assert details["remaining_quantity"] == "0.005"
    assert details["execution_latency_seconds"] == pytest.approx(0.84)
    assert payload["market_conditions"] == {
        "mid_price": "64250.05",
        "spread": "0.1",
        "source": "orderbook",
    }
    assert payload["signal"] == {
        "signal_id": SIGNAL_ID,
        "strategy_id": "momentum_v1",
        "confidence": 0.82,
        "amount": "1000",
        "is_warmup": False,
    }
    assert payload["is_dry_run"] is False  # top level, mirrors order.is_dry_run
    assert order["is_dry_run"] is False
    assert payload["rejection_reason"] is None
    assert payload["modification"] is None
    assert payload["schema_version"] == 1
    assert payload_decimal(payload, "order", "fees") == Decimal("0.3532")


def test_filled_after_two_fills_sums_fees_and_qty() -> None:
    state = acknowledge(intent(), "bybit-1", NOW).state
    state = apply_execution(state, fill("e1", "0.010", 100, "0.1")).state
    result = apply_execution(state, fill("e2", "0.005", 200, "0.05"))
    (event,) = result.events
    payload = order_event_payload(event, CTX)
    assert payload["event_type"] == "filled"
    assert payload["order"]["filled_quantity"] == "0.015"
    assert payload["order"]["fees"] == "0.15"
    assert payload["execution_details"]["fill_percentage"] == "100.00"
    assert payload["execution_details"]["remaining_quantity"] == "0"
    assert payload["execution_details"]["last_fill_qty"] == "0.005"


def test_modified_payload_carries_before_and_after() -> None:
    base = ExchangeOrderUpdate(
        order_id="bybit-1",
        order_link_id="om-x-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        bybit_status=BybitOrderStatus.NEW,
        qty=Decimal("0.015"),
        price=Decimal("64240.0"),
        cum_exec_qty=Decimal(0),
        cum_exec_value=Decimal(0),
        cum_exec_fee=Decimal(0),
        updated_time=NOW,
    )
    state = apply_update(acknowledge(intent(), "bybit-1", NOW).state, base).state
    amended = ExchangeOrderUpdate(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "price": Decimal("64200.0"),
            "updated_time": NOW + timedelta(seconds=1),
        }
    )
    (event,) = apply_update(state, amended).events
    payload = order_event_payload(event, CTX)
    assert payload["event_type"] == "modified"
    assert payload["modification"] == {
        "before": {"price": "64240.0"},
        "after": {"price": "64200.0"},
    }
    assert payload["execution_details"]["last_fill_qty"] is None
    assert payload["execution_details"]["execution_latency_seconds"] is None


def test_rejected_payload_has_a_reason() -> None:
    result = mark_rejected(intent(), "110007", "insufficient balance", NOW)
    (event,) = result.events
    payload = order_event_payload(event, CTX)
    assert payload["event_type"] == "rejected"
    assert payload["rejection_reason"]["code"] == "110007"
    assert payload["rejection_reason"]["message"] == "insufficient balance"
    assert payload["order"]["status"] == "rejected"


def test_signal_rejected_payload() -> None:
    rejection = Rejection(RejectCode.STALE_SIGNAL, "too old", {"age_seconds": "75"})
    signal = TradingSignal(
        signal_id=SIGNAL_ID,
        signal_type=SignalType.BUY,
        asset="BTCUSDT",
        amount=Decimal("1000"),
        confidence=Decimal("0.5"),
        timestamp=NOW,
        strategy_id="s1",
        market_data_snapshot=SignalMarketData(price=Decimal("64250.5"), spread=Decimal("0.5")),
    )
    assert signal.market_data_snapshot is not None
    payload = signal_rejected_payload(
        rejection,
        signal=SignalSummary.from_signal(signal),
        market=MarketConditions.from_signal(signal.market_data_snapshot),
    )
    assert payload["order"] is None
    assert payload["event_type"] == "signal_rejected"
    assert payload["rejection_reason"] == {
        "code": "stale_signal",
        "message": "too old",
        "details": {"age_seconds": "75"},
    }
    assert payload["signal"]["amount"] == "1000"
    assert payload["market_conditions"]["source"] == "signal"
    assert payload["market_conditions"]["mid_price"] == "64250.5"
    assert payload["is_dry_run"] is False
    assert payload["signal"]["is_warmup"] is False


def test_signal_rejected_payload_carries_dry_run_and_warmup_in_the_body() -> None:
    """`order` is null on signal_rejected, so the paper/warm-up flags live at the top level and
    in `signal` (not only in the AMQP header x-om-dry-run)."""
    rejection = Rejection(RejectCode.STALE_SIGNAL, "too old", {})
    warm = TradingSignal(
        signal_id=SIGNAL_ID,
        signal_type=SignalType.SELL,
        asset="BTCUSDT",
        amount=Decimal("250.5"),
        confidence=Decimal("0.4"),
        timestamp=NOW,
        strategy_id="warm_v1",
        is_warmup=True,
    )
    payload = signal_rejected_payload(
        rejection, signal=SignalSummary.from_signal(warm), is_dry_run=True
    )
    assert json.loads(json.dumps(payload)) == payload
    assert payload["is_dry_run"] is True
    assert payload["order"] is None
    assert payload["signal"] == {
        "signal_id": SIGNAL_ID,
        "strategy_id": "warm_v1",
        "confidence": 0.4,
        "amount": "250.5",
        "is_warmup": True,
    }


def test_order_event_payload_top_level_dry_run_follows_the_order_context() -> None:
    (event,) = mark_rejected(intent(), "110007", "insufficient balance", NOW).events
    paper = OrderContext(order_uuid=ORDER_UUID, signal_id=SIGNAL_ID, is_dry_run=True)
    payload = order_event_payload(
        event, paper, signal=SignalSummary(SIGNAL_ID, "s1", is_warmup=True)
    )
    assert payload["is_dry_run"] is True
    assert payload["order"]["is_dry_run"] is True
    assert payload["signal"]["is_warmup"] is True


def test_signal_enrichment_reads_is_warmup_from_the_stored_signal() -> None:
    info = {
        "strategy_id": "warm_v1",
        "confidence": Decimal("0.4"),
        "amount": Decimal("250.5"),
        "is_warmup": True,
        "market_data_snapshot": None,
    }
    summary, market = signal_enrichment(SIGNAL_ID, info)
    assert summary == SignalSummary(
        SIGNAL_ID, "warm_v1", Decimal("0.4"), Decimal("250.5"), is_warmup=True
    )
    assert market is None
    unknown, _ = signal_enrichment(SIGNAL_ID, None)
    assert unknown is not None and unknown.as_dict()["is_warmup"] is False


def test_market_conditions_from_snapshot() -> None:
    snap = MarketSnapshot("BTCUSDT", Decimal("100.0"), Decimal("100.2"), NOW, source="ticker")
    assert MarketConditions.from_snapshot(snap).as_dict() == {
        "mid_price": "100.1",
        "spread": "0.2",
        "source": "ticker",
    }


def test_position_updated_payload() -> None:
    position = Position.flat(Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY)
    position = apply_fill(
        position, PositionFill(Side.SELL, Decimal("0.3"), Decimal("100"), Decimal("0.1"))
    )
    position = position.with_mark(Decimal("90"))
    payload = position_updated_payload(position, is_dry_run=True)
    assert payload["event_type"] == "position_updated"
    assert payload["position"] == {
        "asset": "BTCUSDT",
        "category": "linear",
        "side": "Sell",
        "size": "0.3",
        "average_entry_price": "100",
        "realized_pnl": "-0.1",
        "unrealized_pnl": "3.0",
        "fees": "0.1",
        "mark_price": "90",
        "position_idx": 0,
        "is_dry_run": True,
    }
    flat = position_updated_payload(Position.flat(Category.LINEAR, "ETHUSDT"), is_dry_run=False)
    assert flat["position"]["side"] == "None"
    assert flat["position"]["average_entry_price"] is None
