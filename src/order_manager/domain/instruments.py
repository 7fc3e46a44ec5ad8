"""Instruments and the exchange's precision rules.

Public API:

- ``InstrumentStatus``: Bybit ``status`` of a symbol (``Trading`` is the only tradeable one).
- ``Instrument``: frozen description of one symbol (tick size, qty step, min/max quantities,
  minimum notional). Built by the shell from ``/v5/market/instruments-info``.
- ``Instrument.round_qty(qty)``: quantity rounded **down** to ``qty_step``. Down, never up or
  to nearest: a signal's amount is a budget, and rounding up would spend more than asked.
- ``Instrument.round_price(price, side)``: price to ``tick_size``, **buy down / sell up**, i.e.
  always towards the passive side: a limit order never pays more (buy) or accepts less (sell)
  than the computed price, and never crosses further into the book than intended.
- ``Instrument.notional(qty, price)``: quote value of ``qty`` at ``price`` (for inverse
  contracts the quantity is already in quote currency, USD contracts).
- ``Instrument.base_qty_for(quote_amount, price)``: the (unrounded) order quantity that spends
  ``quote_amount`` at ``price`` in this instrument's quantity unit.
- ``Instrument.max_qty_for(order_type)``: exchange cap for one order (``maxMktOrderQty`` for
  market orders, ``maxOrderQty`` for limit orders).

Spot instruments have no ``qtyStep`` on Bybit; the shell passes ``basePrecision`` as
``qty_step`` and ``minOrderAmt`` as ``min_notional`` (spot's ``minOrderQty`` is no longer checked
by Bybit, pass ``basePrecision`` or 0 there).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from order_manager.domain.enums import Category, OrderType, Side
from order_manager.domain.money import ZERO, ceil_to_step, floor_to_step, is_multiple


class InstrumentStatus(StrEnum):
    PRE_LAUNCH = "PreLaunch"
    TRADING = "Trading"
    DELIVERING = "Delivering"
    CLOSED = "Closed"


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradeable symbol and its precision/limit rules (all Decimal, exact)."""

    category: Category
    symbol: str
    base_coin: str
    quote_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_market_qty: Decimal
    min_notional: Decimal = ZERO
    status: InstrumentStatus = InstrumentStatus.TRADING

    def __post_init__(self) -> None:
        for name in ("tick_size", "qty_step"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ValueError(f"{self.symbol}: {name} must be a positive Decimal")
        for name in ("min_order_qty", "max_order_qty", "max_market_qty", "min_notional"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise ValueError(f"{self.symbol}: {name} must be a non-negative Decimal")
        if self.max_order_qty < self.min_order_qty or self.max_market_qty < self.min_order_qty:
            raise ValueError(f"{self.symbol}: max order qty below min order qty")

    @property
    def is_trading(self) -> bool:
        return self.status is InstrumentStatus.TRADING

    @property
    def qty_is_quote(self) -> bool:
        """Inverse contracts are sized in quote currency (USD contracts), others in base coin."""
        return self.category is Category.INVERSE

    def round_qty(self, qty: Decimal) -> Decimal:
        """``qty`` rounded down to ``qty_step`` (never negative)."""
        return max(ZERO * self.qty_step, floor_to_step(qty, self.qty_step))

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """``price`` on the tick grid: buy rounds down, sell rounds up (towards passive)."""
        if side is Side.BUY:
            return floor_to_step(price, self.tick_size)
        return ceil_to_step(price, self.tick_size)

    def is_valid_qty(self, qty: Decimal) -> bool:
        return qty > 0 and is_multiple(qty, self.qty_step)

    def is_valid_price(self, price: Decimal) -> bool:
        return price > 0 and is_multiple(price, self.tick_size)

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """Quote-currency value of ``qty`` at ``price``."""
        return qty if self.qty_is_quote else qty * price

    def base_qty_for(self, quote_amount: Decimal, price: Decimal) -> Decimal:
        """Unrounded order quantity (in this instrument's qty unit) worth ``quote_amount``."""
        if self.qty_is_quote:
            return quote_amount
        if price <= 0:
            raise ValueError("price must be positive")
        return quote_amount / price

    def qty_from_base_amount(self, base_amount: Decimal, price: Decimal) -> Decimal:
        """Unrounded order quantity for an amount given in base coin."""
        return base_amount * price if self.qty_is_quote else base_amount

    def max_qty_for(self, order_type: OrderType) -> Decimal:
        return self.max_market_qty if order_type is OrderType.MARKET else self.max_order_qty

    def meets_minimums(self, qty: Decimal, price: Decimal) -> bool:
        """True when ``qty`` satisfies both ``min_order_qty`` and ``min_notional`` at ``price``."""
        return (
            qty > 0 and qty >= self.min_order_qty and self.notional(qty, price) >= self.min_notional
        )
