"""Simulators started from other configurations through the shared `sim_factory` fixture."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

import aiohttp

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer
from tests.integration.sim.client import RawClient

Factory = Callable[[SimConfig], Awaitable[SimServer]]


async def test_hedge_mode_without_rate_limits(sim_factory: Factory) -> None:
    config = SimConfig(position_mode="hedge", rate_limits_enabled=False).with_path("frozen")
    server = await sim_factory(config)
    async with aiohttp.ClientSession() as http:
        client = RawClient(http, server.url)
        codes = [
            (await client.create(side="Buy", orderType="Market", qty="0.001", positionIdx=1)).code
            for _ in range(15)
        ]
        assert codes == [0] * 15  # 10/s would apply with limits on; headers still come back
        rows = (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")).result
        assert [(r["positionIdx"], r["size"]) for r in rows["list"]] == [(1, "0.015"), (2, "0.000")]


async def test_custom_keys_and_wallet(sim_factory: Factory) -> None:
    config = SimConfig(
        api_keys={"k1": "s1"}, initial_wallet={"USDT": Decimal("500"), "BTC": Decimal("2")}
    ).with_path("frozen")
    server = await sim_factory(config)
    async with aiohttp.ClientSession() as http:
        default = RawClient(http, server.url)
        assert (
            await default.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        ).code == 10003
        client = RawClient(http, server.url, key="k1", secret="s1")
        wallet = await client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
        coins = {c["coin"]: c["walletBalance"] for c in wallet.result["list"][0]["coin"]}
        assert coins == {"USDT": "500", "BTC": "2"}
