"""Trade endpoints: create, amend, cancel, cancel-all, realtime (open orders), history."""

from __future__ import annotations

from typing import Any

from bybit_sim.engine import queries
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import Route


def create(exchange: Exchange, params: Params) -> dict[str, Any]:
    return exchange.create_order(params)


def amend(exchange: Exchange, params: Params) -> dict[str, Any]:
    return exchange.amend_order(params)


def cancel(exchange: Exchange, params: Params) -> dict[str, Any]:
    return exchange.cancel_order(params)


def cancel_all(exchange: Exchange, params: Params) -> dict[str, Any]:
    return exchange.cancel_all(params)


def realtime(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.open_orders(exchange, params)


def history(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.order_history(exchange, params)


ROUTES: list[Route] = [
    ("POST", "/v5/order/create", create, True),
    ("POST", "/v5/order/amend", amend, True),
    ("POST", "/v5/order/cancel", cancel, True),
    ("POST", "/v5/order/cancel-all", cancel_all, True),
    ("GET", "/v5/order/realtime", realtime, True),
    ("GET", "/v5/order/history", history, True),
]
