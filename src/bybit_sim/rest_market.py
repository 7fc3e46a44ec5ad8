"""Public market-data endpoints: time, instruments-info, tickers, orderbook."""

from __future__ import annotations

import time
from typing import Any

from bybit_sim.engine import queries
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import Route


def server_time(exchange: Exchange, params: Params) -> dict[str, Any]:
    del exchange, params
    ns = time.time_ns()
    return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}


def instruments_info(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.instruments_info(exchange, params)


def tickers(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.tickers(exchange, params)


def orderbook(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.orderbook(exchange, params)


ROUTES: list[Route] = [
    ("GET", "/v5/market/time", server_time, False),
    ("GET", "/v5/market/instruments-info", instruments_info, False),
    ("GET", "/v5/market/tickers", tickers, False),
    ("GET", "/v5/market/orderbook", orderbook, False),
]
