"""Bybit's slippage tolerance for market orders (``slippageToleranceType``/``slippageTolerance``).

Bybit turns every market order into an IOC limit order. With a tolerance the limit price is the
touch (ask1 for a buy, bid1 for a sell) moved against the taker by the tolerance: a number of
ticks (``TickSize``, an integer 1-10000) or a percentage (``Percent``, 0.01-10 with at most two
decimals); what the book cannot fill inside that price is cancelled.

The planner expresses the tolerance in basis points (``Place.slippage_tolerance_bps``,
docs/decisions.md §1). :func:`percent_from_bps` is the one conversion, used by the live gateway
and mirrored by the paper exchange so both apply the same band:

* ``bps / 100`` gives percent (50 bps → ``0.5``);
* rounded **down** to Bybit's two decimals, so the band is never wider than the one asked for
  (12.5 bps → ``0.12``);
* clamped into ``[0.01, 10]``: Bybit refuses anything outside (10001), and an order refused for
  a too-tight tolerance would lose the signal instead of protecting it. A tolerance under 1 bp
  (``0`` included, ``metadata.max_slippage_bps`` may be 0) is therefore sent as the tightest
  band Bybit accepts, 0.01 % (1 bp); one over 1000 bps as the widest, 10 %.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Final

from order_manager.domain.enums import OrderType
from order_manager.domain.plans import Place

#: the two values of ``slippageToleranceType``
PERCENT: Final = "Percent"
TICK_SIZE: Final = "TickSize"
TOLERANCE_TYPES: Final = frozenset({PERCENT, TICK_SIZE})

MIN_PERCENT: Final = Decimal("0.01")
MAX_PERCENT: Final = Decimal("10")
PERCENT_STEP: Final = Decimal("0.01")
MIN_TICKS: Final = 1
MAX_TICKS: Final = 10_000

_BPS_PER_PERCENT: Final = Decimal(100)


def percent_from_bps(bps: Decimal) -> Decimal:
    """``Percent`` tolerance Bybit accepts for a tolerance of ``bps`` basis points (see module
    docstring: bps/100, rounded down to 0.01, clamped into [0.01, 10]).

    A negative tolerance is a programming error (signal validation refuses it): ValueError."""
    if not bps.is_finite() or bps < 0:
        raise ValueError(f"slippage tolerance must be a finite number of bps >= 0, got {bps}")
    percent = (bps / _BPS_PER_PERCENT).quantize(PERCENT_STEP, rounding=ROUND_DOWN)
    # normalize: the wire text is the plain number ("0.5", not "0.50"; "10", not "1E+1")
    return min(max(percent, MIN_PERCENT), MAX_PERCENT).normalize()


def leg_tolerance_percent(action: Place) -> Decimal | None:
    """The ``Percent`` tolerance a planned leg is sent with: market legs that carry
    ``slippage_tolerance_bps`` only (a limit leg's price is its protection)."""
    if action.order_type is not OrderType.MARKET or action.slippage_tolerance_bps is None:
        return None
    return percent_from_bps(action.slippage_tolerance_bps)


def bps_from_percent(percent: Decimal) -> Decimal:
    """The band in basis points that a ``Percent`` tolerance stands for (0.5 → 50)."""
    return percent * _BPS_PER_PERCENT


def check_tolerance(tolerance_type: str, value: Decimal) -> None:
    """ValueError unless ``value`` is a valid ``tolerance_type`` tolerance for Bybit."""
    if tolerance_type == PERCENT:
        if not MIN_PERCENT <= value <= MAX_PERCENT or value % PERCENT_STEP != 0:
            raise ValueError(
                f"slippageTolerance Percent must be {MIN_PERCENT}-{MAX_PERCENT} in steps of "
                f"{PERCENT_STEP}, got {value}"
            )
    elif tolerance_type == TICK_SIZE:
        if value != value.to_integral_value() or not MIN_TICKS <= value <= MAX_TICKS:
            raise ValueError(
                f"slippageTolerance TickSize must be an integer {MIN_TICKS}-{MAX_TICKS}, "
                f"got {value}"
            )
    else:
        raise ValueError(
            f"slippageToleranceType must be one of {sorted(TOLERANCE_TYPES)}, "
            f"got {tolerance_type!r}"
        )
