"""Account endpoints: wallet-balance (UNIFIED) and fee-rate."""

from __future__ import annotations

from typing import Any

from bybit_sim.engine import queries
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import Route


def wallet_balance(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.wallet_balance(exchange, params)


def fee_rate(exchange: Exchange, params: Params) -> dict[str, Any]:
    return queries.fee_rate(exchange, params)


def account_info(exchange: Exchange, params: Params) -> dict[str, Any]:
    """GET /v5/account/info: a UTA 2.0 account in regular (cross) margin mode."""
    del params
    return {
        "unifiedMarginStatus": 5,
        "marginMode": "REGULAR_MARGIN",
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
        "updatedTime": str(exchange.now()),
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
    }


ROUTES: list[Route] = [
    ("GET", "/v5/account/wallet-balance", wallet_balance, True),
    ("GET", "/v5/account/fee-rate", fee_rate, True),
    ("GET", "/v5/account/info", account_info, True),
]
