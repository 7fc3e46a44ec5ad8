from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.domain.enums import Category, OrderType, PositionIdx, TimeInForce
from order_manager.domain.instruments import InstrumentStatus
from order_manager.domain.rejections import RejectCode
from order_manager.domain.signals import (
    MAX_TEXT_LENGTH,
    AmountUnit,
    SignalRejection,
    SignalType,
    TradingSignal,
    Urgency,
    intake_signal,
    parse_signal,
    validate_signal,
)
from tests.unit.domain.conftest import NOW, btc

SIGNAL_ID = "6f2c8a1e-0b5e-4f1f-9c3e-2a7b9e1d4c55"
INSTRUMENTS = {(Category.LINEAR, "BTCUSDT"): btc()}


def message(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "signal_id": SIGNAL_ID,
        "signal_type": "buy",
        "asset": "BTCUSDT",
        "amount": 1000.0,
        "confidence": 0.82,
        "timestamp": "2026-11-23T10:15:30.123456Z",
        "strategy_id": "momentum_v1",
        "model_version": "v12",
        "is_warmup": False,
        "market_data_snapshot": {
            "price": 64250.5,
            "spread": 0.5,
            "volume_24h": 1250000000.0,
            "volatility": 0.021,
            "orderbook_depth": {"bid_depth": 152.3, "ask_depth": 140.9},
            "technical_indicators": None,
        },
        "metadata": {"reasoning": "...", "risk_score": 0.3, "urgency": "normal"},
        "trace_id": "a1b2c3d4",
    }
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def parse(**changes: Any) -> TradingSignal | SignalRejection:
    return parse_signal(json.dumps(message(**changes)).encode())


def parsed(**changes: Any) -> TradingSignal:
    result = parse(**changes)
    assert isinstance(result, TradingSignal), result
    return result


def rejected(**changes: Any) -> SignalRejection:
    result = parse(**changes)
    assert isinstance(result, SignalRejection), result
    return result


def test_the_contract_example_parses_exactly() -> None:
    signal = parsed()
    assert signal.signal_id == SIGNAL_ID
    assert signal.signal_type is SignalType.BUY
    assert signal.amount == Decimal("1000.0") and isinstance(signal.amount, Decimal)
    assert signal.confidence == Decimal("0.82")
    assert signal.timestamp == datetime(2026, 11, 23, 10, 15, 30, 123456, tzinfo=UTC)
    snap = signal.market_data_snapshot
    assert snap is not None and snap.price == Decimal("64250.5") and snap.spread == Decimal("0.5")
    assert snap.ask_depth == Decimal("140.9")
    assert snap.spread_bps == Decimal("0.5") / Decimal("64250.5") * 10000
    assert signal.metadata.urgency is Urgency.NORMAL
    assert signal.metadata.raw["reasoning"] == "..."
    assert signal.trace_id == "a1b2c3d4"
    assert signal.category is Category.LINEAR


def test_numbers_are_exact_from_the_raw_text() -> None:
    raw = message()
    text = json.dumps(raw).replace('"amount": 1000.0', '"amount": 0.1000000000000000055511')
    signal = parse_signal(text)
    assert isinstance(signal, TradingSignal)
    assert signal.amount == Decimal("0.1000000000000000055511")


def test_amount_as_decimal_string_and_case_folding() -> None:
    signal = parsed(amount="1234.5678", signal_type="SELL", asset="btcusdt", amount_unit="BASE")
    assert signal.amount == Decimal("1234.5678")
    assert signal.signal_type is SignalType.SELL
    assert signal.asset == "BTCUSDT"
    assert signal.amount_unit is AmountUnit.BASE


def test_timestamps_without_offset_are_utc_and_offsets_are_converted() -> None:
    assert parsed(timestamp="2026-11-23T10:15:30").timestamp == datetime(
        2026, 11, 23, 10, 15, 30, tzinfo=UTC
    )
    assert parsed(timestamp="2026-11-23T12:15:30+02:00").timestamp == datetime(
        2026, 11, 23, 10, 15, 30, tzinfo=UTC
    )


def test_unknown_fields_are_kept() -> None:
    signal = parsed(new_field={"x": 1})
    assert signal.extra == {"new_field": {"x": Decimal(1)}}
    assert signal.raw["new_field"] == {"x": Decimal(1)}


def test_optional_fields_may_be_absent() -> None:
    signal = parsed(
        model_version=..., is_warmup=..., market_data_snapshot=..., metadata=..., trace_id=...
    )
    assert signal.model_version is None and signal.trace_id is None
    assert signal.market_data_snapshot is None and signal.is_warmup is False


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_an_empty_trace_id_counts_as_absent(blank: str) -> None:
    """The contract says trace_id is generated if absent: an empty one must not dead-letter
    an otherwise valid signal; it parses as None and the intake generates one."""
    signal = parsed(trace_id=blank)
    assert signal.trace_id is None
    assert signal.signal_id == SIGNAL_ID
    # a malformed signal with a blank trace_id is recorded without one
    rejection = rejected(trace_id=blank, amount=0)
    assert rejection.code is RejectCode.AMOUNT_NOT_POSITIVE and rejection.trace_id is None


def test_trace_id_rules_other_than_blank_are_unchanged() -> None:
    assert parsed(trace_id=" t-1 ").trace_id == " t-1 "  # kept verbatim, not rewritten
    wrong_type = rejected(trace_id=12)
    assert wrong_type.code is RejectCode.BAD_TYPE and wrong_type.details["field"] == "trace_id"
    too_long = rejected(trace_id="x" * (MAX_TEXT_LENGTH + 1))
    assert too_long.code is RejectCode.INVALID_VALUE and too_long.details["field"] == "trace_id"


def test_recognised_metadata() -> None:
    signal = parsed(
        metadata={
            "order_type": "LIMIT",
            "limit_price": "64000.5",
            "time_in_force": "post_only",
            "reduce_only": True,
            "post_only": True,
            "stop_loss": 60000,
            "take_profit": "70000",
            "category": "Linear",
            "position_idx": 1,
            "max_slippage_bps": 25,
            "expires_at": "2026-11-23T10:16:30Z",
            "urgency": "URGENT",
        }
    )
    meta = signal.metadata
    assert meta.order_type is OrderType.LIMIT
    assert meta.limit_price == Decimal("64000.5")
    assert meta.time_in_force is TimeInForce.POST_ONLY
    assert meta.reduce_only is True and meta.post_only is True
    assert meta.stop_loss == 60000 and meta.take_profit == 70000
    assert meta.position_idx is PositionIdx.HEDGE_LONG
    assert meta.max_slippage_bps == 25
    assert meta.expires_at == datetime(2026, 11, 23, 10, 16, 30, tzinfo=UTC)
    assert meta.urgency is Urgency.HIGH


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"signal_id": ...}, RejectCode.MISSING_FIELD, "signal_id"),
        ({"signal_type": ...}, RejectCode.MISSING_FIELD, "signal_type"),
        ({"asset": None}, RejectCode.MISSING_FIELD, "asset"),
        ({"amount": ...}, RejectCode.MISSING_FIELD, "amount"),
        ({"confidence": ...}, RejectCode.MISSING_FIELD, "confidence"),
        ({"timestamp": ...}, RejectCode.MISSING_FIELD, "timestamp"),
        ({"strategy_id": ...}, RejectCode.MISSING_FIELD, "strategy_id"),
        ({"signal_id": 42}, RejectCode.BAD_TYPE, "signal_id"),
        ({"signal_id": "not-a-uuid"}, RejectCode.INVALID_VALUE, "signal_id"),
        ({"signal_type": "hold"}, RejectCode.INVALID_VALUE, "signal_type"),
        ({"asset": "BTC/USDT"}, RejectCode.INVALID_VALUE, "asset"),
        ({"amount": True}, RejectCode.BAD_TYPE, "amount"),
        ({"amount": [1]}, RejectCode.BAD_TYPE, "amount"),
        ({"amount": "abc"}, RejectCode.INVALID_VALUE, "amount"),
        ({"amount": 0}, RejectCode.AMOUNT_NOT_POSITIVE, "amount"),
        ({"amount": "-5"}, RejectCode.AMOUNT_NOT_POSITIVE, "amount"),
        ({"amount_unit": "lots"}, RejectCode.INVALID_VALUE, "amount_unit"),
        ({"confidence": 1.01}, RejectCode.CONFIDENCE_OUT_OF_RANGE, "confidence"),
        ({"confidence": -0.1}, RejectCode.CONFIDENCE_OUT_OF_RANGE, "confidence"),
        ({"confidence": "0.5"}, RejectCode.BAD_TYPE, "confidence"),
        ({"timestamp": "yesterday"}, RejectCode.INVALID_VALUE, "timestamp"),
        ({"timestamp": 1700000000}, RejectCode.BAD_TYPE, "timestamp"),
        ({"strategy_id": ""}, RejectCode.INVALID_VALUE, "strategy_id"),
        ({"is_warmup": "no"}, RejectCode.BAD_TYPE, "is_warmup"),
        ({"model_version": 12}, RejectCode.BAD_TYPE, "model_version"),
        ({"metadata": []}, RejectCode.BAD_TYPE, "metadata"),
        ({"metadata": {"order_type": "stop"}}, RejectCode.INVALID_VALUE, "metadata.order_type"),
        ({"metadata": {"limit_price": 0}}, RejectCode.INVALID_VALUE, "metadata.limit_price"),
        ({"metadata": {"reduce_only": "yes"}}, RejectCode.BAD_TYPE, "metadata.reduce_only"),
        ({"metadata": {"position_idx": 3}}, RejectCode.INVALID_VALUE, "metadata.position_idx"),
        ({"metadata": {"category": "option"}}, RejectCode.INVALID_VALUE, "metadata.category"),
        ({"metadata": {"expires_at": "soon"}}, RejectCode.INVALID_VALUE, "metadata.expires_at"),
    ],
)
def test_each_invalid_field_has_a_precise_code(
    changes: dict[str, Any], code: RejectCode, field: str
) -> None:
    rejection = rejected(**changes)
    assert rejection.code is code
    assert rejection.details["field"] == field
    assert rejection.dead_letter
    if "signal_id" not in changes:
        assert rejection.signal_id == SIGNAL_ID  # recorded under its id
        assert rejection.trace_id == "a1b2c3d4"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", RejectCode.INVALID_JSON),
        (b"\xff\xfe", RejectCode.INVALID_JSON),
        (b'{"amount": NaN}', RejectCode.INVALID_JSON),
        (b"[1, 2]", RejectCode.NOT_AN_OBJECT),
        (b"[" * 100_000, RejectCode.INVALID_JSON),
    ],
)
def test_malformed_bodies_are_dead_lettered(body: bytes, code: RejectCode) -> None:
    result = parse_signal(body)
    assert isinstance(result, SignalRejection)
    assert result.code is code and result.dead_letter and result.signal_id is None


def test_validation_against_instruments_and_clock() -> None:
    signal = parsed()
    assert (
        validate_signal(signal, instruments=INSTRUMENTS, now=NOW, max_age=timedelta(seconds=60))
        is signal
    )

    unknown = validate_signal(
        parsed(asset="DOGEUSDT"), instruments=INSTRUMENTS, now=NOW, max_age=timedelta(seconds=60)
    )
    assert isinstance(unknown, SignalRejection) and unknown.code is RejectCode.UNKNOWN_ASSET
    assert unknown.dead_letter and unknown.signal_id == SIGNAL_ID

    closed = validate_signal(
        signal,
        instruments={(Category.LINEAR, "BTCUSDT"): btc(status=InstrumentStatus.CLOSED)},
        now=NOW,
        max_age=timedelta(seconds=60),
    )
    assert isinstance(closed, SignalRejection) and closed.code is RejectCode.ASSET_NOT_TRADING
    assert not closed.dead_letter

    stale = validate_signal(
        signal,
        instruments=INSTRUMENTS,
        now=NOW + timedelta(seconds=61),
        max_age=timedelta(seconds=60),
    )
    assert isinstance(stale, SignalRejection) and stale.code is RejectCode.STALE_SIGNAL
    assert not stale.dead_letter and stale.signal_id == SIGNAL_ID

    future = validate_signal(
        signal,
        instruments=INSTRUMENTS,
        now=NOW - timedelta(seconds=10),
        max_age=timedelta(seconds=60),
    )
    assert isinstance(future, SignalRejection) and future.code is RejectCode.TIMESTAMP_IN_FUTURE


def test_spot_category_looks_up_the_spot_instrument() -> None:
    signal = parsed(metadata={"category": "spot"})
    result = validate_signal(
        signal, instruments=INSTRUMENTS, now=NOW, max_age=timedelta(seconds=60)
    )
    assert isinstance(result, SignalRejection) and result.code is RejectCode.UNKNOWN_ASSET


def test_expired_signal() -> None:
    signal = parsed(metadata={"expires_at": "2026-11-23T10:15:31Z"})
    ok = intake_signal(
        json.dumps(message(metadata={"expires_at": "2026-11-23T10:15:31Z"})),
        instruments=INSTRUMENTS,
        now=NOW,
        max_age=timedelta(seconds=60),
    )
    assert isinstance(ok, TradingSignal)
    late = validate_signal(
        signal,
        instruments=INSTRUMENTS,
        now=NOW + timedelta(seconds=2),
        max_age=timedelta(seconds=60),
    )
    assert isinstance(late, SignalRejection) and late.code is RejectCode.SIGNAL_EXPIRED


@settings(max_examples=300)
@given(st.binary())
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    result = parse_signal(body)
    assert isinstance(result, TradingSignal | SignalRejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=6,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(sorted(message().keys())), json_values, max_size=4))
def test_arbitrary_field_values_never_raise(overrides: dict[str, Any]) -> None:
    body = message(**overrides)
    result = parse_signal(json.dumps(body))
    assert isinstance(result, TradingSignal | SignalRejection)
    if isinstance(result, SignalRejection):
        assert result.code in set(RejectCode)
        assert result.message


def test_default_category_is_configurable() -> None:
    spot_instruments = {(Category.SPOT, "BTCUSDT"): btc(category=Category.SPOT)}
    signal = parsed()
    assert signal.metadata.category is None and signal.category is Category.LINEAR
    ok = validate_signal(
        signal,
        instruments=spot_instruments,
        now=NOW,
        max_age=timedelta(seconds=60),
        default_category=Category.SPOT,
    )
    assert ok is signal
    explicit = parsed(metadata={"category": "linear"})
    refused = validate_signal(
        explicit,
        instruments=spot_instruments,
        now=NOW,
        max_age=timedelta(seconds=60),
        default_category=Category.SPOT,
    )
    assert isinstance(refused, SignalRejection) and refused.code is RejectCode.UNKNOWN_ASSET


@pytest.mark.parametrize(
    "snapshot",
    [{"price": -1}, {"spread": "wide"}, [1, 2], {"orderbook_depth": {"bid_depth": -5}}],
)
def test_an_invalid_advisory_snapshot_is_set_aside_not_refused(snapshot: Any) -> None:
    """market_data_snapshot is advisory (prices come from the exchange's book): a bad one is
    dropped with a note the intake logs; the signal itself stands."""
    signal = parsed(market_data_snapshot=snapshot)
    assert signal.market_data_snapshot is None
    assert len(signal.notes) == 1 and signal.notes[0].startswith("market_data_snapshot")
