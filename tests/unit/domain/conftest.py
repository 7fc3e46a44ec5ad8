"""Shared builders for domain tests: real domain objects, no mocks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument

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
