"""Reading request parameters (JSON body values or query strings) with Bybit's errors."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bybit_sim.engine.errors import params_error
from bybit_sim.engine.numbers import parse_decimal, parse_optional_decimal

Params = Mapping[str, Any]


def get_str(p: Params, name: str, required: bool = False, default: str = "") -> str:
    raw = p.get(name)
    if raw is None or raw == "":
        if required:
            raise params_error(f"params error: {name} is required")
        return default
    if not isinstance(raw, str):
        if isinstance(raw, bool | dict | list):
            raise params_error(f"params error: {name} invalid")
        return str(raw)
    return raw


def get_int(p: Params, name: str, default: int | None = None) -> int | None:
    raw = p.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise params_error(f"params error: {name} invalid")
    try:
        return int(str(raw))
    except ValueError:
        raise params_error(f"params error: {name} invalid") from None


def get_bool(p: Params, name: str) -> bool:
    raw = p.get(name)
    if raw is None or raw == "":
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw in (0, 1):
        return bool(raw)
    raise params_error(f"params error: {name} invalid")


def get_decimal(p: Params, name: str) -> Decimal:
    raw = p.get(name)
    if raw is None or raw == "":
        raise params_error(f"params error: {name} is required")
    return parse_decimal(raw, name)


def get_opt_decimal(p: Params, name: str) -> Decimal | None:
    return parse_optional_decimal(p.get(name), name)


def get_limit(p: Params, default: int, maximum: int) -> int:
    value = get_int(p, "limit", default)
    assert value is not None
    if value < 1 or value > maximum:
        raise params_error(f"params error: limit must be in [1, {maximum}]")
    return value
