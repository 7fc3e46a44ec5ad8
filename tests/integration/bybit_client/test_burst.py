"""A burst of 1,000 order creates through the client earns zero 10006 from the simulator, whose
rate limits are Bybit's defaults (linear 10/s, spot 20/s for /v5/order/create): the client-side
limiter queues the burst instead."""

from __future__ import annotations

import asyncio
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from order_manager.adapters.bybit.instruments import InstrumentCache, InstrumentInfo
from order_manager.adapters.bybit.metrics import BybitMetrics
from order_manager.adapters.bybit.rest import BybitRestClient, CreateOutcome, OrderRequest

from .conftest import counter_value

BURST = 1000
# Split so both per-category buckets drain in about the same time: 1/3 linear, 2/3 spot.
SPOT_SHARE = Decimal(2) / 3


def resting_order(info: InstrumentInfo, bid: Decimal, link: str) -> OrderRequest:
    price = (bid * Decimal("0.97") / info.tick_size).to_integral_value(ROUND_FLOOR) * info.tick_size
    wanted = max(info.min_order_qty, info.min_notional * Decimal("1.5") / price)
    qty = (wanted / info.qty_step).to_integral_value(ROUND_CEILING) * info.qty_step
    return OrderRequest(info.category, info.symbol, "Buy", "Limit", qty, link, price=price)


async def test_a_burst_of_1000_creates_earns_no_10006(
    client: BybitRestClient, metrics: BybitMetrics
) -> None:
    cache = InstrumentCache(client, ["linear", "spot"])
    await cache.refresh()
    bids: dict[tuple[str, str], Decimal] = {}
    for info in cache.all():
        ticker = (await client.get_tickers(info.category, info.symbol))[0]
        assert ticker.bid1_price is not None
        bids[(info.category, info.symbol)] = ticker.bid1_price
    linear, spot = cache.all("linear"), cache.all("spot")
    n_spot = int(BURST * SPOT_SHARE)
    plan = [linear[i % len(linear)] for i in range(BURST - n_spot)]
    plan += [spot[i % len(spot)] for i in range(n_spot)]
    requests = [
        resting_order(info, bids[(info.category, info.symbol)], f"burst-{i}")
        for i, info in enumerate(plan)
    ]

    results = await asyncio.gather(*(client.create_order(r) for r in requests))

    assert (
        counter_value(metrics, "requests", endpoint="/v5/order/create", outcome="rate_limited") == 0
    )
    assert counter_value(metrics, "requests", endpoint="/v5/order/create") == BURST
    assert all(r.outcome is CreateOutcome.CREATED and r.attempts == 1 for r in results)
    assert len({r.order_id for r in results}) == BURST
    open_links = {
        o.order_link_id
        for category in ("linear", "spot")
        for o in await client.get_open_orders(
            category, settle_coin="USDT" if category == "linear" else None
        )
        if o.order_link_id.startswith("burst-")
    }
    assert open_links == {r.order_link_id for r in requests}
