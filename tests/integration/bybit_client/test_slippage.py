"""Market orders with a slippage tolerance, end to end: the live gateway turns a planned leg's
``slippage_tolerance_bps`` into Bybit's ``slippageToleranceType=Percent``; the real simulator
accepts it, records it on the order and stops the IOC walk at the band."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer
from order_manager.adapters.bybit.config import BybitClientConfig
from order_manager.adapters.bybit.gateway import BybitGateway
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.metrics import BybitMetrics
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.orders import BybitOrderStatus
from order_manager.domain.plans import LegIntent, Place
from tests.integration.sim.client import RawClient

D = Decimal
Factory = Callable[[SimConfig], Awaitable[SimServer]]


def market_leg(link: str, qty: Decimal, slippage_bps: Decimal | None) -> Place:
    return Place(
        leg=1,
        order_link_id=link,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=qty,
        price=None,
        time_in_force=TimeInForce.IOC,
        reduce_only=False,
        post_only=False,
        position_idx=PositionIdx.ONE_WAY,
        intent=LegIntent.OPEN,
        reference_price=D("65000.1"),
        notional=qty * D("65000.1"),
        slippage_tolerance_bps=slippage_bps,
    )


async def exchange_record(url: str, link: str) -> dict[str, Any]:
    """The order as the exchange itself reports it (raw JSON: every field, strings)."""
    async with aiohttp.ClientSession() as http:
        reply = await RawClient(http, url).get(
            "/v5/order/realtime", f"category=linear&symbol=BTCUSDT&orderLinkId={link}"
        )
    assert reply.code == 0, reply.body
    record: dict[str, Any] = reply.result["list"][0]
    return record


async def test_a_market_leg_with_slippage_is_accepted_and_carries_it(
    sim: SimServer, client: BybitRestClient
) -> None:
    gateway = BybitGateway(client, InstrumentCache(client, ["linear"]))
    report = await gateway.place(market_leg("om-slip-ok", D("0.010"), D(50)), trace_id="t-slip")
    assert report.ok, report.message
    # what the executor writes to the audit log is what went on the wire
    assert report.request["slippageToleranceType"] == "Percent"
    assert report.request["slippageTolerance"] == "0.5"
    record = await exchange_record(sim.url, "om-slip-ok")
    assert record["orderId"] == report.order_id
    assert record["slippageToleranceType"] == "Percent"
    assert record["slippageTolerance"] == "0.5"
    assert record["orderStatus"] == "Filled"
    # the IOC limit is ask1 65000.1 + 0.5 %, on the tick grid (not the 5 % price-limit band)
    assert record["price"] == "65325.10"


async def test_a_thin_book_stops_the_walk_at_the_tolerance_and_cancels_the_rest(
    sim_factory: Factory, bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> None:
    # BTCUSDT levels 100 ticks (10 USDT) apart: asks 65010, 65020, 65030, 65040, 65050, ...
    data = SimConfig().with_path("frozen").model_dump()
    for inst in data["instruments"]:
        if (inst["category"], inst["symbol"]) == ("linear", "BTCUSDT"):
            inst["level_spacing_ticks"] = 100
    server = await sim_factory(SimConfig.model_validate(data))
    config = BybitClientConfig.for_simulator(
        server.url, retry=bybit_config.retry, read_timeout=bybit_config.read_timeout
    )
    async with BybitRestClient(config, metrics=metrics) as rest:
        gateway = BybitGateway(rest, InstrumentCache(rest, ["linear"]))
        # 5 bps → 0.05 %: 65010 × 1.0005 = 65042.5, so four levels (0.5 + 0.625 + 0.75 + 0.875)
        report = await gateway.place(market_leg("om-slip-thin", D(4), D(5)), trace_id="t-thin")
        assert report.ok, report.message
        assert report.request["slippageTolerance"] == "0.05"
        found = await gateway.find_order(
            Category.LINEAR, "BTCUSDT", "om-slip-thin", trace_id="t-thin"
        )
    order = found.order
    assert order is not None
    assert order.cum_exec_qty == D("2.750")
    assert order.bybit_status is BybitOrderStatus.CANCELLED  # IOC: the remainder is cancelled
    assert order.reject_reason == "EC_NoEnoughQtyToFill"
    assert order.price == D("65042.5")
    assert order.cum_exec_value == (
        D("0.5") * 65010 + D("0.625") * 65020 + D("0.75") * 65030 + D("0.875") * 65040
    )
    record = await exchange_record(server.url, "om-slip-thin")
    assert record["slippageTolerance"] == "0.05"
