"""GET /v5/execution/list."""

from __future__ import annotations

from typing import Any

from bybit_sim.engine import queries
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import Route


def execution_list(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.execution_list(exchange, params)


ROUTES: list[Route] = [("GET", "/v5/execution/list", execution_list, True)]
