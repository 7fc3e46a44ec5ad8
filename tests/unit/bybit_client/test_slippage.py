"""Slippage tolerance on ``/v5/order/create``: the bps → Percent conversion and ``OrderRequest``'s
wire fields (v5-reference §3.1: ``slippageToleranceType``/``slippageTolerance``, market only,
``Percent`` 0.01-10, ``TickSize`` 1-10000)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_manager.adapters.bybit.rest import OrderRequest
from order_manager.adapters.bybit.signing import encode_body
from order_manager.adapters.bybit.slippage import check_tolerance, percent_from_bps

D = Decimal


def market(**kw: object) -> OrderRequest:
    values: dict[str, object] = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "order_type": "Market",
        "qty": D("0.010"),
        "order_link_id": "om-slip-1",
    }
    values.update(kw)
    return OrderRequest(**values)  # type: ignore[arg-type]


def test_a_market_order_with_a_tolerance_sends_both_fields_as_exact_strings() -> None:
    body = market(slippage_tolerance_type="Percent", slippage_tolerance=D("0.5")).to_body()
    assert body["slippageToleranceType"] == "Percent"
    assert body["slippageTolerance"] == "0.5"
    # and on the wire: JSON strings, never numbers
    wire = json.loads(encode_body(body))
    assert wire["slippageToleranceType"] == "Percent"
    assert wire["slippageTolerance"] == "0.5"
    ticks = market(slippage_tolerance_type="TickSize", slippage_tolerance=D(25)).to_body()
    assert ticks["slippageTolerance"] == "25"


def test_without_a_tolerance_neither_field_is_sent() -> None:
    body = market().to_body()
    assert "slippageToleranceType" not in body
    assert "slippageTolerance" not in body
    limit = market(order_type="Limit", price=D("65000.0"), time_in_force="GTC").to_body()
    assert "slippageToleranceType" not in limit
    assert "slippageTolerance" not in limit


def test_a_limit_order_with_a_tolerance_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="Market orders only"):
        market(
            order_type="Limit",
            price=D("65000.0"),
            slippage_tolerance_type="Percent",
            slippage_tolerance=D("0.5"),
        )


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("Percent", None, "go together"),
        (None, D("0.5"), "go together"),
        ("Percent", D("0.005"), "Percent must be"),
        ("Percent", D("10.01"), "Percent must be"),
        ("Percent", D("0.125"), "Percent must be"),
        ("TickSize", D("0"), "TickSize must be"),
        ("TickSize", D("10001"), "TickSize must be"),
        ("TickSize", D("1.5"), "TickSize must be"),
        ("Bps", D("1"), "slippageToleranceType must be"),
    ],
)
def test_an_invalid_tolerance_is_refused_before_anything_is_sent(
    kind: str | None, value: Decimal | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        market(slippage_tolerance_type=kind, slippage_tolerance=value)


@pytest.mark.parametrize(
    ("bps", "percent"),
    [
        ("50", "0.5"),  # the default ORDERMANAGER_MAX_SLIPPAGE_BPS
        ("25", "0.25"),
        ("100", "1"),
        ("12.5", "0.12"),  # rounded down: never a wider band than asked
        ("1", "0.01"),
        ("0.5", "0.01"),  # 0.005 % is below Bybit's minimum: clamped up to 0.01
        ("0", "0.01"),
        ("1000", "10"),
        ("5000", "10"),  # clamped down to Bybit's maximum
    ],
)
def test_bps_convert_to_a_percent_bybit_accepts(bps: str, percent: str) -> None:
    assert format(percent_from_bps(D(bps)), "f") == percent


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="bps >= 0"):
        percent_from_bps(D("-1"))


@given(st.decimals(min_value=0, max_value=100_000, places=4, allow_nan=False))
def test_every_conversion_is_valid_and_never_wider_than_asked_above_the_minimum(
    bps: Decimal,
) -> None:
    percent = percent_from_bps(bps)
    check_tolerance("Percent", percent)  # always a value Bybit accepts
    if bps >= 1:
        assert percent * 100 <= bps  # rounding and clamping only ever tighten the band
        assert bps / 100 - percent < D("0.01") or percent == D(10)
