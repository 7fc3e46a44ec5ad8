"""Private stream `/v5/private` seen by a raw client: auth, subscriptions, heartbeat, events."""

from __future__ import annotations

import re
import uuid

import aiohttp

from tests.integration.sim_streams.helpers import (
    SimRest,
    WsClient,
    auth_args,
    now_ms,
    private_ws,
    sign,
)


async def _connect(http: aiohttp.ClientSession, ws_base: str) -> WsClient:
    return await WsClient.connect(http, ws_base + "/v5/private")


async def test_auth_success_reply_shape(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str]
) -> None:
    client = await _connect(http, ws_base)
    reply = await client.request({"op": "auth", "req_id": "a1", "args": auth_args(*credentials)})
    assert reply["success"] is True
    assert reply["ret_msg"] == ""
    assert reply["op"] == "auth"
    assert reply["req_id"] == "a1"
    assert isinstance(reply["conn_id"], str) and reply["conn_id"]
    again = await client.request({"op": "auth", "args": auth_args(*credentials)})
    assert again["success"] is False
    await client.close()


async def test_auth_failures(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str]
) -> None:
    key, secret = credentials
    expired = now_ms() - 1
    cases = [
        ([key, expired, sign(secret, f"GET/realtime{expired}")], "Params Error"),
        (auth_args(key, "not-the-secret"), "Invalid sign"),
        (auth_args("no-such-key", secret), "Invalid apikey"),
        ([key, "soon", "abc"], "Params Error"),
        ([key], "Params Error"),
    ]
    client = await _connect(http, ws_base)
    for args, message in cases:
        reply = await client.request({"op": "auth", "args": args})
        assert reply["success"] is False, args
        assert reply["ret_msg"] == message
        assert reply["op"] == "auth"
    # still unauthenticated: private topics are refused
    reply = await client.request({"op": "subscribe", "args": ["order"]})
    assert reply == {
        "success": False,
        "ret_msg": "Request not authorized",
        "op": "subscribe",
        "req_id": reply["req_id"],
        "conn_id": reply["conn_id"],
    }
    await client.close()


async def test_ping_pong_shape(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str]
) -> None:
    client = await private_ws(http, ws_base + "/v5/private", *credentials, topics=[])
    pong = await client.request({"op": "ping", "req_id": "p1"})
    assert list(pong) == ["req_id", "op", "args", "conn_id"]
    assert pong["op"] == "pong" and pong["req_id"] == "p1"
    assert re.fullmatch(r"\d{13}", pong["args"][0])
    await client.close()


async def test_subscription_validation(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str]
) -> None:
    client = await private_ws(http, ws_base + "/v5/private", *credentials, topics=[])
    bad = await client.request({"op": "subscribe", "args": ["orders"]})
    assert bad["success"] is False and "orders" in bad["ret_msg"]
    mixed = await client.request({"op": "subscribe", "args": ["order", "order.linear"]})
    assert mixed["success"] is False
    ok = await client.request({"op": "subscribe", "args": ["order.linear", "wallet"]})
    assert ok["success"] is True and ok["op"] == "subscribe"
    dup = await client.request({"op": "subscribe", "args": ["wallet"]})
    assert dup["success"] is False
    unsub = await client.request({"op": "unsubscribe", "args": ["wallet"]})
    assert unsub["success"] is True and unsub["op"] == "unsubscribe"
    await client.close()


async def test_order_execution_position_wallet_events(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str], rest: SimRest
) -> None:
    client = await private_ws(
        http,
        ws_base + "/v5/private",
        *credentials,
        topics=["order", "execution", "position", "wallet"],
    )
    link = uuid.uuid4().hex
    created = await rest.create_order(orderType="Market", orderLinkId=link, price=None)
    assert created.ret_code == 0, created.body
    order_id = created.body["result"]["orderId"]

    order_msg = await client.wait_for(
        lambda m: (
            m.get("topic") == "order"
            and any(o["orderId"] == order_id and o["orderStatus"] == "Filled" for o in m["data"])
        )
    )
    assert list(order_msg) == ["id", "topic", "creationTime", "data"]
    assert isinstance(order_msg["id"], str) and isinstance(order_msg["creationTime"], int)
    item = next(
        o for o in order_msg["data"] if o["orderId"] == order_id and o["orderStatus"] == "Filled"
    )
    assert item["orderLinkId"] == link and item["category"] == "linear"
    assert item["cumExecQty"] == "0.001" and isinstance(item["qty"], str)

    execution = await client.wait_for(
        lambda m: m.get("topic") == "execution" and any(e["orderId"] == order_id for e in m["data"])
    )
    fills = [e for e in execution["data"] if e["orderId"] == order_id]
    assert all(isinstance(e["execPrice"], str) and e["isMaker"] is False for e in fills)

    position = await client.wait_for(
        lambda m: (
            m.get("topic") == "position"
            and any(p["symbol"] == "BTCUSDT" and p["size"] != "0" for p in m["data"])
        )
    )
    assert any("entryPrice" in p for p in position["data"])
    wallet = await client.topic("wallet")
    assert wallet["data"][0]["accountType"] == "UNIFIED"
    await client.close()


async def test_categorised_topic_filters_by_category(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str], rest: SimRest
) -> None:
    client = await private_ws(http, ws_base + "/v5/private", *credentials, topics=["order.spot"])
    linear = await rest.create_order(orderLinkId=uuid.uuid4().hex)
    assert linear.ret_code == 0, linear.body
    spot = await rest.create_order(
        category="spot", qty="0.0001", price="60000", orderLinkId=uuid.uuid4().hex
    )
    assert spot.ret_code == 0, spot.body
    first = await client.wait_for(lambda m: "topic" in m)
    assert first["topic"] == "order.spot"
    assert [o["orderId"] for o in first["data"]] == [spot.body["result"]["orderId"]]
    assert all(o["category"] == "spot" for o in first["data"])
    await client.close()


async def test_slow_client_does_not_stall_others(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str], rest: SimRest
) -> None:
    """A client that never reads does not delay delivery to an attentive one."""
    idle = await private_ws(http, ws_base + "/v5/private", *credentials, topics=["order"])
    busy = await private_ws(http, ws_base + "/v5/private", *credentials, topics=["order"])
    ids = []
    for _ in range(20):
        reply = await rest.create_order(orderLinkId=uuid.uuid4().hex)
        assert reply.ret_code == 0, reply.body
        ids.append(reply.body["result"]["orderId"])
    seen: set[str] = set()
    while not set(ids) <= seen:
        msg = await busy.topic("order")
        seen.update(o["orderId"] for o in msg["data"])
    await idle.close()
    await busy.close()


async def test_large_batches_are_split_into_bounded_messages(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str], rest: SimRest
) -> None:
    """cancel-all of 120 orders arrives as several messages of at most 100 items."""
    for _ in range(120):
        reply = await rest.create_order()
        assert reply.ret_code == 0, reply.body
    client = await private_ws(http, ws_base + "/v5/private", *credentials, topics=["order"])
    cancelled = await rest.post("/v5/order/cancel-all", {"category": "linear", "symbol": "BTCUSDT"})
    assert cancelled.ret_code == 0, cancelled.body
    sizes: list[int] = []
    while sum(sizes) < 120:
        message = await client.topic("order")
        assert all(o["orderStatus"] == "Cancelled" for o in message["data"])
        sizes.append(len(message["data"]))
    assert sum(sizes) == 120 and max(sizes) <= 100 and len(sizes) >= 2
    await client.close()


async def test_execution_fast_carries_the_reduced_field_set(
    http: aiohttp.ClientSession, ws_base: str, credentials: tuple[str, str], rest: SimRest
) -> None:
    client = await private_ws(
        http, ws_base + "/v5/private", *credentials, topics=["execution.fast.linear"]
    )
    created = await rest.create_order(orderType="Market", price=None)
    assert created.ret_code == 0, created.body
    message = await client.topic("execution.fast.linear")
    assert {e["orderId"] for e in message["data"]} == {created.body["result"]["orderId"]}
    assert set(message["data"][0]) == {
        "category", "symbol", "orderId", "isMaker", "orderLinkId", "execId",
        "execPrice", "execQty", "side", "execTime", "seq",
    }  # fmt: skip
    await client.close()
