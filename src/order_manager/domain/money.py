"""Exact money arithmetic helpers. Decimal only; a float never enters.

Public API:

- ``parse_decimal(value) -> Decimal``: strict parse of a JSON number already parsed as Decimal,
  or of a decimal string (``"0.001"``, ``"1e3"``); raises ``ValueError`` for anything else
  (floats, bools, NaN, infinities, whitespace, more digits than the Decimal context can hold).
- ``floor_to_step(value, step)`` / ``ceil_to_step(value, step)``: the nearest multiple of
  ``step`` at or below / at or above ``value``; the result carries ``step``'s exponent, so it
  prints the way Bybit expects (``0.010`` for step ``0.001``).
- ``is_multiple(value, step) -> bool``.
- ``bps(part, whole) -> Decimal``: ``part / whole`` in basis points (1 bp = 0.01 %).
- ``ZERO``, ``ONE``, ``BPS`` (10 000) constants.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)

#: Largest number of significant digits we accept: the default Decimal context precision, so
#: every later multiplication/division of accepted values stays exact enough to be trusted.
MAX_DIGITS = 28
#: Accepted magnitude of parsed values (10^-18 .. 10^18): far beyond any real price or size,
#: small enough that arithmetic never reaches the Decimal context's overflow limits.
MAX_ADJUSTED_EXPONENT = 18

_DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_decimal(value: object) -> Decimal:
    """Strictly convert ``value`` (Decimal or decimal string) to a finite Decimal.

    ``bool`` and ``float`` are refused on purpose: a float has already lost exactness and a
    bool is a JSON ``true``/``false``, never a number.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value) is None:
            raise ValueError(f"not a decimal number: {value[:40]!r}")
        result = Decimal(value)
    else:
        raise ValueError(f"expected a number or a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("number must be finite")
    if result != 0:
        if len(result.as_tuple().digits) > MAX_DIGITS:
            raise ValueError(f"more than {MAX_DIGITS} significant digits")
        if abs(result.adjusted()) > MAX_ADJUSTED_EXPONENT:
            raise ValueError("number out of the supported range (1e-18 .. 1e18)")
    return result


def _check_step(step: Decimal) -> None:
    if not step.is_finite() or step <= 0:
        raise ValueError(f"step must be a positive finite Decimal, got {step}")


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` that is ``<= value``."""
    _check_step(step)
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Smallest multiple of ``step`` that is ``>= value``."""
    _check_step(step)
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when ``value`` is an exact integer multiple of ``step``."""
    _check_step(step)
    return value % step == 0


def bps(part: Decimal, whole: Decimal) -> Decimal:
    """``part / whole`` expressed in basis points. ``whole`` must be positive."""
    if whole <= 0:
        raise ValueError("bps of a non-positive whole")
    return part / whole * BPS
