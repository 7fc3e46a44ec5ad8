"""Public streams `/v5/public/{linear,spot}`: snapshot then deltas, tickers, ping, faults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tests.integration.sim_streams.helpers import SimRest, WsClient


def _apply(book: dict[str, dict[str, str]], delta: dict[str, Any]) -> None:
    for side in ("b", "a"):
        for price, size in delta[side]:
            if size == "0":
                del book[side][price]
            else:
                book[side][price] = size


@pytest.mark.parametrize("category", ["linear", "spot"])
async def test_orderbook_snapshot_then_consistent_deltas(
    http: aiohttp.ClientSession, ws_base: str, rest: SimRest, category: str
) -> None:
    client = await WsClient.connect(http, f"{ws_base}/v5/public/{category}")
    topic = "orderbook.50.BTCUSDT"
    ack = await client.request({"op": "subscribe", "args": [topic]})
    assert ack["success"] is True and ack["op"] == "subscribe"
    snap = await client.topic(topic)
    assert snap["type"] == "snapshot"
    assert isinstance(snap["ts"], int) and isinstance(snap["cts"], int)
    data = snap["data"]
    assert data["s"] == "BTCUSDT" and len(data["b"]) == 50 and len(data["a"]) == 50
    assert Decimal(data["b"][0][0]) < Decimal(data["a"][0][0])
    book = {"b": dict(map(tuple, data["b"])), "a": dict(map(tuple, data["a"]))}
    u, seq = data["u"], data["seq"]

    new_price = Decimal(data["a"][0][0]) + 1000
    await rest.admin(
        "POST", "/price", {"category": category, "symbol": "BTCUSDT", "price": str(new_price)}
    )
    delta = await client.topic(topic)
    assert delta["type"] == "delta"
    assert delta["data"]["u"] > u and delta["data"]["seq"] >= seq
    _apply(book, delta["data"])
    # the book rebuilt from snapshot + delta equals what REST reports now
    reply = await rest.get(
        "/v5/market/orderbook", {"category": category, "symbol": "BTCUSDT", "limit": "50"}
    )
    assert reply.ret_code == 0
    assert book["b"] == dict(map(tuple, reply.body["result"]["b"]))
    assert book["a"] == dict(map(tuple, reply.body["result"]["a"]))
    await client.close()


async def test_linear_ticker_snapshot_then_delta(
    http: aiohttp.ClientSession, ws_base: str, rest: SimRest
) -> None:
    client = await WsClient.connect(http, f"{ws_base}/v5/public/linear")
    await client.request({"op": "subscribe", "args": ["tickers.ETHUSDT"]})
    snap = await client.topic("tickers.ETHUSDT")
    assert snap["type"] == "snapshot" and snap["data"]["symbol"] == "ETHUSDT"
    assert isinstance(snap["cs"], int) and isinstance(snap["ts"], int)
    await rest.admin(
        "POST", "/price", {"category": "linear", "symbol": "ETHUSDT", "price": "3600.00"}
    )
    delta = await client.topic("tickers.ETHUSDT")
    assert delta["type"] == "delta"
    assert delta["data"]["symbol"] == "ETHUSDT"
    assert Decimal(delta["data"]["lastPrice"]) == Decimal("3600.00")
    await client.close()


async def test_spot_ticker_is_always_a_snapshot(
    http: aiohttp.ClientSession, ws_base: str, rest: SimRest
) -> None:
    client = await WsClient.connect(http, f"{ws_base}/v5/public/spot")
    await client.request({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    assert (await client.topic("tickers.BTCUSDT"))["type"] == "snapshot"
    await rest.admin(
        "POST", "/price", {"category": "spot", "symbol": "BTCUSDT", "price": "66000.00"}
    )
    update = await client.topic("tickers.BTCUSDT")
    assert update["type"] == "snapshot"
    assert Decimal(update["data"]["lastPrice"]) == Decimal("66000.00")
    await client.close()


async def test_public_ping_and_bad_topics(http: aiohttp.ClientSession, ws_base: str) -> None:
    client = await WsClient.connect(http, f"{ws_base}/v5/public/linear")
    pong = await client.request({"op": "ping", "req_id": "x"})
    assert pong == {
        "success": True,
        "ret_msg": "pong",
        "conn_id": pong["conn_id"],
        "req_id": "x",
        "op": "ping",
    }
    for topic in ("orderbook.7.BTCUSDT", "tickers.NOPEUSDT", "kline.1.BTCUSDT"):
        reply = await client.request({"op": "subscribe", "args": [topic]})
        assert reply["success"] is False and topic in reply["ret_msg"]
    await client.close()


async def test_public_pause_loses_updates(
    http: aiohttp.ClientSession, ws_base: str, rest: SimRest
) -> None:
    client = await WsClient.connect(http, f"{ws_base}/v5/public/linear")
    await client.request({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    await client.topic("tickers.BTCUSDT")
    rule = await rest.add_fault(target="ws_public", topic="tickers.*", kind="pause")
    await rest.admin(
        "POST", "/price", {"category": "linear", "symbol": "BTCUSDT", "price": "61000.0"}
    )
    await rest.admin("DELETE", f"/faults/{rule}")
    await rest.admin(
        "POST", "/price", {"category": "linear", "symbol": "BTCUSDT", "price": "62000.0"}
    )
    first = await client.topic("tickers.BTCUSDT")
    assert Decimal(first["data"]["lastPrice"]) == Decimal("62000.0")
    await client.close()


async def test_paused_orderbook_delta_leaves_a_gap_in_u(
    http: aiohttp.ClientSession, ws_base: str, rest: SimRest
) -> None:
    client = await WsClient.connect(http, f"{ws_base}/v5/public/linear")
    topic = "orderbook.1.BTCUSDT"
    await client.request({"op": "subscribe", "args": [topic]})
    u0 = (await client.topic(topic))["data"]["u"]
    await rest.add_fault(target="ws_public", topic=topic, kind="pause", count=1)
    for price in ("61000.0", "62000.0"):
        await rest.admin(
            "POST", "/price", {"category": "linear", "symbol": "BTCUSDT", "price": price}
        )
    delta = await client.topic(topic)
    assert delta["type"] == "delta" and delta["data"]["u"] == u0 + 2  # u0 + 1 was lost
    await client.close()
