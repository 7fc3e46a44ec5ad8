"""Raw-protocol checks of Bybit's authentication and per-UID rate limits."""

from __future__ import annotations

import time

from bybit_sim.server import SimServer
from tests.integration.sim.client import RawClient

QUERY = "accountType=UNIFIED"


async def test_valid_signature_is_accepted(client: RawClient) -> None:
    reply = await client.get("/v5/account/wallet-balance", QUERY)
    assert reply.status == 200
    assert reply.code == 0
    assert reply.result["list"][0]["accountType"] == "UNIFIED"


async def test_bad_signature_is_10004_with_origin_string(client: RawClient) -> None:
    reply = await client.get("/v5/account/wallet-balance", QUERY, signature="0" * 64)
    assert reply.status == 200
    assert reply.code == 10004
    assert reply.body["retMsg"].startswith("error sign! origin_string[")
    assert "sim-key5000accountType=UNIFIED" in reply.body["retMsg"]


async def test_post_body_is_signed_as_sent(client: RawClient) -> None:
    body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy"}
    raw = (
        '{"category":"linear","symbol":"BTCUSDT","side":"Buy",'
        '"orderType":"Limit","qty":"0.001","price":"60000"}'
    )
    headers = client.headers(raw)
    async with client.http.post(client.base + "/v5/order/create", data=raw, headers=headers) as r:
        good = await r.json()
    assert good["retCode"] == 0, good
    # the same signature over a re-serialised body no longer matches
    reply = await client.post("/v5/order/create", body, signature=headers["X-BAPI-SIGN"])
    assert reply.code == 10004


async def test_unknown_key_is_10003(sim: SimServer, client: RawClient) -> None:
    stranger = RawClient(client.http, sim.url, key="nobody", secret="x")
    reply = await stranger.get("/v5/account/wallet-balance", QUERY)
    assert reply.code == 10003
    assert reply.body["retMsg"] == "API key is invalid."


async def test_stale_and_future_timestamps_are_10002(client: RawClient) -> None:
    now = time.time_ns() // 1_000_000
    stale = await client.get("/v5/account/wallet-balance", QUERY, ts=now - 6000)
    assert stale.code == 10002
    assert "recv_window" in stale.body["retMsg"]
    future = await client.get("/v5/account/wallet-balance", QUERY, ts=now + 5000)
    assert future.code == 10002
    wide = await client.get("/v5/account/wallet-balance", QUERY, ts=now - 6000, recv="20000")
    assert wide.code == 0


async def test_rate_limit_headers_and_10006(client: RawClient) -> None:
    # fee-rate allows 5 requests per rolling second
    replies = [await client.get("/v5/account/fee-rate", "category=linear") for _ in range(7)]
    first = replies[0]
    assert first.headers["X-Bapi-Limit"] == "5"
    assert first.headers["X-Bapi-Limit-Status"] == "4"
    assert int(first.headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    codes = [r.code for r in replies]
    assert codes[:5] == [0] * 5
    assert 10006 in codes[5:]
    limited = next(r for r in replies if r.code == 10006)
    assert limited.body["retMsg"] == "Too many visits!"
    assert limited.headers["X-Bapi-Limit-Status"] == "0"
    assert int(limited.headers["X-Bapi-Limit-Reset-Timestamp"]) >= int(
        first.headers["X-Bapi-Limit-Reset-Timestamp"]
    )


async def test_trade_limits_are_per_category(client: RawClient) -> None:
    async def cancel(category: str, symbol: str) -> int:
        reply = await client.post(
            "/v5/order/cancel", {"category": category, "symbol": symbol, "orderId": "missing"}
        )
        return reply.code

    linear = [await cancel("linear", "BTCUSDT") for _ in range(11)]
    assert linear[:10] == [110001] * 10
    assert linear[10] == 10006
    # spot has its own bucket (20/s) that linear traffic did not consume
    assert await cancel("spot", "BTCUSDT") == 110001


async def test_public_market_endpoints_need_no_auth(client: RawClient) -> None:
    reply = await client.public("/v5/market/time", "")
    assert reply.code == 0
    assert int(reply.result["timeSecond"]) > 1_600_000_000
    assert "X-Bapi-Limit" not in reply.headers


async def test_malformed_bodies_are_10001_after_auth(client: RawClient) -> None:
    for raw in ("{not json", "[1, 2]"):
        headers = client.headers(raw)
        async with client.http.post(
            client.base + "/v5/order/create", data=raw, headers=headers
        ) as r:
            body = await r.json()
        assert r.status == 200
        assert body["retCode"] == 10001
        assert body["result"] == {} and body["retExtInfo"] == {}
        assert isinstance(body["time"], int)
