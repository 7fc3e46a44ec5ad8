"""Position endpoints: list, switch-mode, set-leverage, trading-stop."""

from __future__ import annotations

from typing import Any

from bybit_sim.engine import position_ops, queries
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import Route


def position_list(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.position_list(exchange, params)


def switch_mode(exchange: Exchange, params: Params) -> dict[str, Any]:
    return position_ops.switch_mode(exchange, params)


def set_leverage(exchange: Exchange, params: Params) -> dict[str, Any]:
    return position_ops.set_leverage(exchange, params)


def trading_stop(exchange: Exchange, params: Params) -> dict[str, Any]:
    return position_ops.trading_stop(exchange, params)


ROUTES: list[Route] = [
    ("GET", "/v5/position/list", position_list, True),
    ("POST", "/v5/position/switch-mode", switch_mode, True),
    ("POST", "/v5/position/set-leverage", set_leverage, True),
    ("POST", "/v5/position/trading-stop", trading_stop, True),
]
