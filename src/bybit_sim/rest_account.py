"""Account endpoints: wallet-balance (UNIFIED) and fee-rate."""

from __future__ import annotations

from typing import Any

from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import Route


def wallet_balance(exchange: Exchange, params: Params) -> dict[str, Any]:
    return exchange.wallet_balance(params)


def fee_rate(exchange: Exchange, params: Params) -> dict[str, Any]:
    return exchange.fee_rate(params)


ROUTES: list[Route] = [
    ("GET", "/v5/account/wallet-balance", wallet_balance, True),
    ("GET", "/v5/account/fee-rate", fee_rate, True),
]
