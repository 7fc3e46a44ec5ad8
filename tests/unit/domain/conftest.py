"""Shared builders for domain tests: real domain objects, no mocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.signals import SignalMetadata, SignalType, TradingSignal

NOW = datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)


def btc(**overrides: object) -> Instrument:
    """Bybit's BTCUSDT linear rules (tick 0.10, step 0.001, min notional 5)."""
    fields: dict[str, object] = {
        "category": Category.LINEAR,
        "symbol": "BTCUSDT",
        "base_coin": "BTC",
        "quote_coin": "USDT",
        "tick_size": Decimal("0.10"),
        "qty_step": Decimal("0.001"),
        "min_order_qty": Decimal("0.001"),
        "max_order_qty": Decimal("1190.000"),
        "max_market_qty": Decimal("500.000"),
        "min_notional": Decimal("5"),
    }
    fields.update(overrides)
    return Instrument(**fields)  # type: ignore[arg-type]


@pytest.fixture
def instrument() -> Instrument:
    return btc()


SIGNAL_ID = "6f2c8a1e-0b5e-4f1f-9c3e-2a7b9e1d4c55"


def make_signal(**overrides: object) -> TradingSignal:
    """A valid BTCUSDT signal; ``metadata`` may be passed as a dict of SignalMetadata fields."""
    meta = overrides.pop("metadata", None)
    fields: dict[str, object] = {
        "signal_id": SIGNAL_ID,
        "signal_type": SignalType.BUY,
        "asset": "BTCUSDT",
        "amount": Decimal("1000"),
        "confidence": Decimal("0.5"),
        "timestamp": NOW,
        "strategy_id": "momentum_v1",
    }
    fields.update(overrides)
    if isinstance(meta, dict):
        fields["metadata"] = SignalMetadata(**meta)
    return TradingSignal(**fields)  # type: ignore[arg-type]


def book(
    bid: str = "64250.0",
    ask: str = "64250.1",
    *,
    age_seconds: float = 0.0,
    bid_depth: str | None = None,
    ask_depth: str | None = None,
) -> MarketSnapshot:
    return MarketSnapshot(
        symbol="BTCUSDT",
        best_bid=Decimal(bid),
        best_ask=Decimal(ask),
        as_of=NOW - timedelta(seconds=age_seconds),
        bid_depth=Decimal(bid_depth) if bid_depth else None,
        ask_depth=Decimal(ask_depth) if ask_depth else None,
    )
