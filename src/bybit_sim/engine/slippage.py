"""Slippage tolerance of market orders (`slippageToleranceType` / `slippageTolerance`).

Bybit converts a market order into an IOC limit order at a protective price (the price-limit band
around the last price, `validation.protective_price`). With a tolerance the limit is tighter:
the touch moved against the taker by the tolerance, and what the book cannot fill inside it is
cancelled like any IOC remainder:

* `TickSize` n (integer 1-10000): buy at most ask1 + n × tickSize, sell at least
  bid1 − n × tickSize;
* `Percent` p (0.01-10, at most two decimals): buy at most ask1 × (1 + p/100) rounded down to the
  tick grid, sell at least bid1 × (1 − p/100) rounded up to it.

The price-limit band still applies (the tighter of the two wins). The two parameters go together
and are accepted on market orders only; anything else is retCode 10001 with a message naming the
rule. Orders without a tolerance render `slippageToleranceType: "UNKNOWN"`,
`slippageTolerance: "0"`, as Bybit does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from bybit_sim.engine.book import BUY, SELL, SyntheticBook
from bybit_sim.engine.errors import params_error
from bybit_sim.engine.instruments import Instrument
from bybit_sim.engine.numbers import is_multiple
from bybit_sim.engine.params import Params, get_opt_decimal, get_str

PERCENT = "Percent"
TICK_SIZE = "TickSize"
NO_TOLERANCE = "UNKNOWN"
MIN_PERCENT = Decimal("0.01")
MAX_PERCENT = Decimal("10")
MIN_TICKS = Decimal(1)
MAX_TICKS = Decimal(10000)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Tolerance:
    kind: str  # PERCENT or TICK_SIZE
    value: Decimal


def parse_tolerance(p: Params, order_type: str) -> Tolerance | None:
    """The request's tolerance (None without one), validated like Bybit (10001 otherwise)."""
    kind = get_str(p, "slippageToleranceType")
    value = get_opt_decimal(p, "slippageTolerance")
    if not kind and value is None:
        return None
    if order_type != "Market":
        raise params_error("params error: slippageTolerance only supports market order")
    if not kind:
        raise params_error("params error: slippageToleranceType is required with slippageTolerance")
    if value is None:
        raise params_error("params error: slippageTolerance is required with slippageToleranceType")
    if kind == TICK_SIZE:
        if not is_multiple(value, Decimal(1)) or not MIN_TICKS <= value <= MAX_TICKS:
            raise params_error(
                "params error: slippageTolerance for TickSize must be an integer in [1, 10000]"
            )
    elif kind == PERCENT:
        if not is_multiple(value, MIN_PERCENT) or not MIN_PERCENT <= value <= MAX_PERCENT:
            raise params_error(
                "params error: slippageTolerance for Percent must be in [0.01, 10] "
                "with at most 2 decimals"
            )
    else:
        raise params_error("params error: slippageToleranceType must be TickSize or Percent")
    return Tolerance(kind, value)


def tolerance_price(
    inst: Instrument, book: SyntheticBook, side: str, tolerance: Tolerance
) -> Decimal | None:
    """The worst price `tolerance` allows a `side` taker from the current touch (None when the
    opposite side of the book is empty: nothing could fill anyway)."""
    best = book.best(SELL if side == BUY else BUY)
    if best is None:
        return None
    touch, tick = best[0], inst.tick
    if tolerance.kind == TICK_SIZE:
        offset = tolerance.value * tick
        return touch + offset if side == BUY else max(touch - offset, tick)
    factor = tolerance.value / _HUNDRED
    if side == BUY:
        return (touch * (1 + factor) / tick).to_integral_value(ROUND_FLOOR) * tick
    return max((touch * (1 - factor) / tick).to_integral_value(ROUND_CEILING) * tick, tick)


def market_limit(
    inst: Instrument,
    book: SyntheticBook,
    side: str,
    protective: Decimal,
    tolerance: Tolerance | None,
) -> Decimal:
    """The IOC limit price of a market order: the protective price, tightened by the tolerance."""
    if tolerance is None:
        return protective
    allowed = tolerance_price(inst, book, side, tolerance)
    if allowed is None:
        return protective
    return min(protective, allowed) if side == BUY else max(protective, allowed)
