"""Decimal helpers: parsing Bybit's string numbers and formatting them back as Bybit does."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from bybit_sim.engine.errors import params_error

ZERO = Decimal(0)
ONE = Decimal(1)
# internal precision of derived values (average prices, margins): 10 decimal places
FINE = Decimal("1e-10")


def fmt(value: Decimal) -> str:
    """Plain decimal string without exponent or trailing zeros ("0.00055", "100", "-1.5");
    derived values are shown with at most 10 decimals."""
    if not value:
        return "0"
    text = str(value)
    if "E" in text:
        text = format(value, "f")
    dot = text.find(".")
    if dot < 0:
        return text
    if len(text) - dot - 1 > 10:
        value = value.quantize(FINE)
        if not value:
            return "0"
        text = format(value, "f")
    return text.rstrip("0").rstrip(".")


def fmt_step(value: Decimal, step: Decimal) -> str:
    """`value` with exactly as many decimals as `step` ("65000.00" for step 0.10)."""
    exponent = step.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{value:.{places}f}"


def fine(value: Decimal) -> Decimal:
    """Round a derived (divided) value to the internal precision."""
    return value.quantize(FINE)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_half(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_HALF_UP) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def parse_decimal(raw: object, name: str) -> Decimal:
    """Parse a request number (Bybit sends strings; tolerate JSON numbers too)."""
    if isinstance(raw, bool) or raw is None:
        raise params_error(f"params error: {name} invalid")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise params_error(f"params error: {name} invalid") from None
    # beyond 10^18 no price or quantity is meaningful, and grid checks would overflow the
    # 28-digit decimal context
    if not value.is_finite() or (value and value.adjusted() > 18):
        raise params_error(f"params error: {name} invalid")
    return value


def parse_optional_decimal(raw: object, name: str) -> Decimal | None:
    """Absent or empty string means "not given"."""
    if raw is None or raw == "":
        return None
    return parse_decimal(raw, name)
