"""Every private endpoint over HTTP: parameters arrive as query strings / JSON, answers in
Bybit's shapes."""

from __future__ import annotations

import time
from decimal import Decimal

from bybit_sim.server import SimServer
from tests.integration.sim.client import RawClient


async def test_amend_and_cancel_all(client: RawClient) -> None:
    created = await client.create(side="Buy", orderType="Limit", qty="0.010", price="64000")
    oid = created.result["orderId"]
    amended = await client.post(
        "/v5/order/amend",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "orderId": oid,
            "qty": "0.020",
            "price": "63990",
        },
    )
    assert amended.code == 0
    assert amended.result == {"orderId": oid, "orderLinkId": ""}
    order = (await client.get("/v5/order/realtime", f"category=linear&orderId={oid}")).result[
        "list"
    ][0]
    assert (order["qty"], order["price"]) == ("0.020", "63990.00")
    same = await client.post(
        "/v5/order/amend",
        {"category": "linear", "symbol": "BTCUSDT", "orderId": oid, "qty": "0.02"},
    )
    assert same.code == 10001
    missing_scope = await client.post("/v5/order/cancel-all", {"category": "linear"})
    assert missing_scope.code == 10001
    cancelled = await client.post(
        "/v5/order/cancel-all", {"category": "linear", "settleCoin": "USDT"}
    )
    assert cancelled.code == 0
    assert cancelled.result == {"list": [{"orderId": oid, "orderLinkId": ""}], "success": "1"}
    history = await client.get("/v5/order/history", "category=linear&orderStatus=Cancelled")
    assert [o["orderId"] for o in history.result["list"]] == [oid]
    closed = await client.get("/v5/order/realtime", "category=linear&symbol=BTCUSDT&openOnly=1")
    assert [o["orderId"] for o in closed.result["list"]] == [oid]


async def test_execution_list_pagination_and_time_filter(client: RawClient) -> None:
    before = time.time_ns() // 1_000_000 - 1
    created = await client.create(side="Buy", orderType="Market", qty="3")
    assert created.code == 0
    all_fills: list[str] = []
    cursor = ""
    while True:
        query = "category=linear&symbol=BTCUSDT&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await client.get("/v5/execution/list", query)
        assert page.code == 0
        all_fills += [e["execId"] for e in page.result["list"]]
        cursor = page.result["nextPageCursor"]
        if not cursor:
            break
    assert len(all_fills) == len(set(all_fills)) >= 4
    later = time.time_ns() // 1_000_000 + 10_000
    none = await client.get("/v5/execution/list", f"category=linear&startTime={later}")
    assert none.result["list"] == []
    some = await client.get("/v5/execution/list", f"category=linear&startTime={before}&limit=100")
    assert len(some.result["list"]) == len(all_fills)
    too_wide = await client.get(
        "/v5/execution/list", f"category=linear&startTime={before}&endTime={before + 8 * 86400000}"
    )
    assert too_wide.code == 10001


async def test_position_endpoints(client: RawClient) -> None:
    lev = await client.post(
        "/v5/position/set-leverage",
        {"category": "linear", "symbol": "ETHUSDT", "buyLeverage": "5", "sellLeverage": "5"},
    )
    assert lev.code == 0 and lev.result == {}
    unchanged = await client.post(
        "/v5/position/set-leverage",
        {"category": "linear", "symbol": "ETHUSDT", "buyLeverage": "5", "sellLeverage": "5"},
    )
    assert unchanged.code == 110043
    mode = await client.post(
        "/v5/position/switch-mode", {"category": "linear", "symbol": "ETHUSDT", "mode": 3}
    )
    assert mode.code == 0
    rows = (await client.get("/v5/position/list", "category=linear&symbol=ETHUSDT")).result["list"]
    assert [(r["positionIdx"], r["leverage"]) for r in rows] == [(1, "5"), (2, "5")]
    opened = await client.create(
        symbol="ETHUSDT", side="Sell", orderType="Market", qty="1", positionIdx=2
    )
    assert opened.code == 0
    stop = await client.post(
        "/v5/position/trading-stop",
        {
            "category": "linear",
            "symbol": "ETHUSDT",
            "positionIdx": 2,
            "tpslMode": "Full",
            "takeProfit": "3400",
            "stopLoss": "3600",
        },
    )
    assert stop.code == 0, stop.body
    short = (await client.get("/v5/position/list", "category=linear&settleCoin=USDT")).result[
        "list"
    ]
    assert len(short) == 1
    assert (short[0]["side"], short[0]["takeProfit"], short[0]["stopLoss"]) == (
        "Sell",
        "3400.00",
        "3600.00",
    )
    assert Decimal(short[0]["positionIM"]) == Decimal(short[0]["positionValue"]) / 5
    bad_idx = await client.post(
        "/v5/position/trading-stop",
        {"category": "linear", "symbol": "ETHUSDT", "positionIdx": 0, "takeProfit": "3400"},
    )
    assert bad_idx.code == 10001
    spot = await client.get("/v5/position/list", "category=spot&symbol=BTCUSDT")
    assert spot.code == 10001


async def test_wallet_and_fee_rate(sim: SimServer, client: RawClient) -> None:
    wallet = await client.get("/v5/account/wallet-balance", "accountType=UNIFIED&coin=USDT")
    account = wallet.result["list"][0]
    assert account["totalWalletBalance"] == "100000"
    assert [c["coin"] for c in account["coin"]] == ["USDT"]
    assert account["coin"][0]["walletBalance"] == "100000"
    wrong = await client.get("/v5/account/wallet-balance", "accountType=CONTRACT")
    assert wrong.code == 10001
    fees = await client.get("/v5/account/fee-rate", "category=spot&symbol=ETHUSDT")
    assert fees.result["list"] == [
        {"symbol": "ETHUSDT", "takerFeeRate": "0.001", "makerFeeRate": "0.001"}
    ]
    sim.state.exchange.deposit("BTC", Decimal("0.5"))
    both = await client.get("/v5/account/wallet-balance", "accountType=UNIFIED")
    coins = {c["coin"]: c for c in both.result["list"][0]["coin"]}
    assert coins["BTC"]["walletBalance"] == "0.5"
    assert Decimal(coins["BTC"]["usdValue"]) == Decimal("32500")


async def test_spot_order_over_http(client: RawClient) -> None:
    bought = await client.create(
        category="spot", symbol="ETHUSDT", side="Buy", orderType="Market", qty="350"
    )
    assert bought.code == 0
    order = (
        await client.get("/v5/order/realtime", f"category=spot&orderId={bought.result['orderId']}")
    ).result["list"][0]
    assert order["orderStatus"] == "Filled"
    assert order["marketUnit"] == "quoteCoin"
    assert "createType" not in order
    assert Decimal(order["cumExecValue"]) <= Decimal("350")
    assert list(order["cumFeeDetail"]) == ["ETH"]


async def test_executions_of_one_order_paginate(client: RawClient) -> None:
    other = await client.create(side="Sell", orderType="Market", qty="1")
    mine = await client.create(side="Buy", orderType="Market", qty="3")
    order_id = mine.result["orderId"]
    collected: list[dict[str, str]] = []
    cursor = ""
    while True:
        query = f"category=linear&orderId={order_id}&limit=2" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = await client.get("/v5/execution/list", query)
        collected += page.result["list"]
        cursor = page.result["nextPageCursor"]
        if not cursor:
            break
    assert {e["orderId"] for e in collected} == {order_id}
    assert other.result["orderId"] != order_id
    assert sum(Decimal(e["execQty"]) for e in collected) == Decimal("3")
    times = [int(e["execTime"]) for e in collected]
    assert times == sorted(times, reverse=True)


async def test_batch_create_amend_cancel(client: RawClient) -> None:
    orders = [
        {
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.001",
            "price": "60000",
            "orderLinkId": "b-1",
        },
        {
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.0001",
            "price": "60000",
            "orderLinkId": "b-2",
        },
    ]
    created = await client.post("/v5/order/create-batch", {"category": "linear", "request": orders})
    assert created.code == 0
    assert [c["code"] for c in created.body["retExtInfo"]["list"]] == [0, 10001]
    first, second = created.result["list"]
    assert first["orderLinkId"] == "b-1" and first["orderId"] and int(first["createAt"]) > 0
    assert second["orderId"] == ""
    amended = await client.post(
        "/v5/order/amend-batch",
        {
            "category": "linear",
            "request": [{"symbol": "BTCUSDT", "orderLinkId": "b-1", "qty": "0.002"}],
        },
    )
    assert amended.body["retExtInfo"]["list"] == [{"code": 0, "msg": "OK"}]
    cancelled = await client.post(
        "/v5/order/cancel-batch",
        {
            "category": "linear",
            "request": [
                {"symbol": "BTCUSDT", "orderLinkId": "b-1"},
                {"symbol": "BTCUSDT", "orderId": "nope"},
            ],
        },
    )
    assert [c["code"] for c in cancelled.body["retExtInfo"]["list"]] == [0, 110001]
    assert cancelled.result["list"][0]["orderId"] == first["orderId"]


async def test_batch_overflowing_the_quota_fails_the_tail_with_10006(client: RawClient) -> None:
    orders = [
        {
            "symbol": "ETHUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.01",
            "price": str(3000 + n),
        }
        for n in range(8)
    ]
    first = await client.post("/v5/order/create-batch", {"category": "linear", "request": orders})
    assert [c["code"] for c in first.body["retExtInfo"]["list"]] == [0] * 8
    assert first.headers["X-Bapi-Limit-Status"] == "2"
    second = await client.post("/v5/order/create-batch", {"category": "linear", "request": orders})
    assert [c["code"] for c in second.body["retExtInfo"]["list"]] == [0, 0] + [10006] * 6
    third = await client.post("/v5/order/create-batch", {"category": "linear", "request": orders})
    assert third.code == 10006


async def test_account_info(client: RawClient) -> None:
    reply = await client.get("/v5/account/info")
    assert reply.code == 0
    assert reply.result["unifiedMarginStatus"] == 5
    assert reply.result["marginMode"] == "REGULAR_MARGIN"
