"""`slippageToleranceType`/`slippageTolerance` on `/v5/order/create` over HTTP: accepted on
market orders, shown on the order record, refused with 10001 otherwise."""

from __future__ import annotations

from decimal import Decimal

from tests.integration.sim.client import RawClient


async def test_a_market_order_with_a_tick_tolerance_is_accepted_and_bounded(
    client: RawClient,
) -> None:
    created = await client.create(
        side="Sell",
        orderType="Market",
        qty="2",
        orderLinkId="slip-ticks",
        slippageToleranceType="TickSize",
        slippageTolerance="1",
    )
    assert created.code == 0, created.body
    order = (
        await client.get("/v5/order/realtime", "category=linear&orderLinkId=slip-ticks")
    ).result["list"][0]
    assert order["slippageToleranceType"] == "TickSize"
    assert order["slippageTolerance"] == "1"
    # bid1 64999.9 − 1 tick: two levels (0.5 + 0.625), the rest cancelled
    assert order["price"] == "64999.80"
    assert order["cumExecQty"] == "1.125"
    assert order["orderStatus"] == "Cancelled"
    execs = await client.get("/v5/execution/list", f"category=linear&orderId={order['orderId']}")
    assert {Decimal(e["execPrice"]) for e in execs.result["list"]} == {
        Decimal("64999.9"),
        Decimal("64999.8"),
    }


async def test_bad_tolerances_are_10001(client: RawClient) -> None:
    limit = await client.create(
        side="Buy",
        orderType="Limit",
        qty="0.01",
        price="64000",
        slippageToleranceType="Percent",
        slippageTolerance="0.5",
    )
    assert limit.code == 10001
    assert "only supports market order" in limit.body["retMsg"]
    too_tight = await client.create(
        side="Buy",
        orderType="Market",
        qty="0.01",
        slippageToleranceType="Percent",
        slippageTolerance="0.005",
    )
    assert too_tight.code == 10001
    assert "[0.01, 10]" in too_tight.body["retMsg"]
    listed = await client.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT&openOnly=1")
    assert listed.result["list"] == []  # nothing was placed
