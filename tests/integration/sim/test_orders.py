"""Order entry over HTTP: create / cancel / realtime and the main retCode paths."""

from __future__ import annotations

from decimal import Decimal

from bybit_sim.server import SimServer
from tests.integration.sim.client import RawClient


async def test_limit_order_rests_and_is_listed_then_cancelled(client: RawClient) -> None:
    created = await client.create(
        side="Buy", orderType="Limit", qty="0.010", price="64000", orderLinkId="rest-1"
    )
    assert created.code == 0
    order_id = created.result["orderId"]
    listed = await client.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT")
    assert [o["orderId"] for o in listed.result["list"]] == [order_id]
    order = listed.result["list"][0]
    assert order["orderStatus"] == "New"
    assert order["orderLinkId"] == "rest-1"
    assert order["qty"] == "0.010"
    assert order["price"] == "64000.00"
    cancel = await client.post(
        "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "rest-1"}
    )
    assert cancel.code == 0
    assert cancel.result == {"orderId": order_id, "orderLinkId": "rest-1"}
    again = await client.post(
        "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderId": order_id}
    )
    assert again.code == 110001
    # closed orders stay queryable by id
    by_id = await client.get("/v5/order/realtime", f"category=linear&orderId={order_id}")
    assert by_id.result["list"][0]["orderStatus"] == "Cancelled"
    assert by_id.result["list"][0]["cancelType"] == "CancelByUser"


async def test_market_order_walks_the_book(client: RawClient) -> None:
    created = await client.create(side="Buy", orderType="Market", qty="2")
    assert created.code == 0
    order_id = created.result["orderId"]
    execs = await client.get("/v5/execution/list", f"category=linear&orderId={order_id}")
    fills = execs.result["list"]
    assert len(fills) >= 3
    assert sum(Decimal(f["execQty"]) for f in fills) == Decimal("2")
    prices = {Decimal(f["execPrice"]) for f in fills}
    assert len(prices) == len(fills)
    order = (await client.get("/v5/order/realtime", f"category=linear&orderId={order_id}")).result[
        "list"
    ][0]
    assert order["orderStatus"] == "Filled"
    assert order["timeInForce"] == "IOC"
    value = sum(Decimal(f["execValue"]) for f in fills)
    assert Decimal(order["cumExecValue"]) == value
    assert Decimal(order["avgPrice"]) == value / 2


async def test_open_orders_paginate_beyond_one_page(client: RawClient) -> None:
    ids = []
    for n in range(7):
        reply = await client.create(
            category="linear",
            symbol="ETHUSDT",
            side="Sell",
            orderType="Limit",
            qty="0.10",
            price=str(3600 + n),
        )
        assert reply.code == 0, reply.body
        ids.append(reply.result["orderId"])
    seen: list[str] = []
    cursor = ""
    while True:
        query = "category=linear&symbol=ETHUSDT&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await client.get("/v5/order/realtime", query)
        assert page.code == 0
        assert len(page.result["list"]) <= 3
        seen += [o["orderId"] for o in page.result["list"]]
        cursor = page.result["nextPageCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


async def test_validation_ret_codes(client: RawClient) -> None:
    limit = {"side": "Buy", "orderType": "Limit"}
    assert (await client.create(**limit, qty="0.0001", price="60000")).code == 10001
    assert (await client.create(**limit, qty="0.0015", price="60000")).code == 10001
    assert (await client.create(**limit, qty="0.001", price="60000.05")).code == 10001
    assert (await client.create(**limit, qty="0.001", price="99000")).code == 110003
    assert (await client.create(**limit, qty="0.001", price="4000")).code == 110094
    assert (await client.create(**limit, qty="1000", price="60000")).code == 110007
    assert (await client.create(**limit, qty="0.001", price="60000", positionIdx=1)).code == 10001
    reduce = await client.create(side="Sell", orderType="Market", qty="0.001", reduceOnly=True)
    assert reduce.code == 110017
    spot = await client.create(
        category="spot", symbol="BTCUSDT", side="Sell", orderType="Limit", qty="1", price="65000"
    )
    assert spot.code == 170131
    small = await client.create(
        category="spot",
        symbol="BTCUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.00001",
        price="65000",
    )
    assert small.code == 170140
    unknown = await client.post(
        "/v5/order/amend",
        {"category": "linear", "symbol": "BTCUSDT", "orderId": "nope", "qty": "0.002"},
    )
    assert unknown.code == 110001


async def test_duplicate_order_link_id_is_110072(client: RawClient) -> None:
    first = await client.create(
        side="Buy", orderType="Limit", qty="0.001", price="60000", orderLinkId="dup"
    )
    assert first.code == 0
    second = await client.create(
        side="Buy", orderType="Limit", qty="0.001", price="60000", orderLinkId="dup"
    )
    assert second.code == 110072
    assert second.body["retMsg"] == "OrderLinkedID is duplicate"


async def test_post_only_crossing_is_accepted_then_cancelled(client: RawClient) -> None:
    reply = await client.create(
        side="Buy", orderType="Limit", qty="0.001", price="65010", timeInForce="PostOnly"
    )
    assert reply.code == 0
    order = (
        await client.get("/v5/order/realtime", f"category=linear&orderId={reply.result['orderId']}")
    ).result["list"][0]
    assert order["orderStatus"] == "Cancelled"
    assert order["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    assert order["cumExecQty"] == "0.000"


async def test_resting_order_fills_when_price_crosses(sim: SimServer, client: RawClient) -> None:
    reply = await client.create(side="Buy", orderType="Limit", qty="0.100", price="64900")
    order_id = reply.result["orderId"]
    sim.state.exchange.set_price("linear", "BTCUSDT", Decimal("64800"))
    order = (await client.get("/v5/order/realtime", f"category=linear&orderId={order_id}")).result[
        "list"
    ][0]
    assert order["orderStatus"] == "Filled"
    assert order["avgPrice"] == "64900"
    fills = (await client.get("/v5/execution/list", f"category=linear&orderId={order_id}")).result[
        "list"
    ]
    assert all(f["isMaker"] for f in fills)
    assert {f["feeRate"] for f in fills} == {"0.0002"}
    position = (await client.get("/v5/position/list", "category=linear&symbol=BTCUSDT")).result[
        "list"
    ][0]
    assert position["side"] == "Buy"
    assert position["size"] == "0.100"
    assert position["avgPrice"] == "64900.00"
