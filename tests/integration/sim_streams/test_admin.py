"""Admin API `/sim/`: state, reset, prices, fills, outside orders, balance, faults, loopback."""

from __future__ import annotations

import socket
import uuid
from decimal import Decimal

import aiohttp

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer
from tests.integration.sim_streams.helpers import SimRest


def _usdt(wallet: dict[str, object]) -> Decimal:
    account = wallet["result"]["list"][0]  # type: ignore[index]
    coin = next(c for c in account["coin"] if c["coin"] == "USDT")
    return Decimal(coin["walletBalance"])


async def test_state_dump_reset_and_error_reporting(
    rest: SimRest, http: aiohttp.ClientSession
) -> None:
    created = await rest.create_order(orderLinkId=uuid.uuid4().hex)
    assert created.ret_code == 0
    await rest.add_fault(target="rest", kind="delay", params={"ms": 1}, endpoint="/nothing")
    state = await rest.admin("GET", "/state")
    assert [f["endpoint"] for f in state["faults"]] == ["/nothing"]
    assert "ws" in state
    assert await rest.admin("POST", "/reset") == {"reset": True}
    assert await rest.open_orders() == []
    assert (await rest.admin("GET", "/faults")) == {"rules": []}

    async with http.post(rest.base_url + "/sim/price", json={"category": "linear"}) as resp:
        assert resp.status == 400
        assert "symbol" in (await resp.json())["error"]
    async with http.post(rest.base_url + "/sim/faults", json={"target": "x"}) as resp:
        assert resp.status == 400
        assert "target must be one of" in (await resp.json())["error"]
    async with http.delete(rest.base_url + "/sim/faults/f999") as resp:
        assert resp.status == 404
    unknown = {"category": "linear", "symbol": "NOPEUSDT", "price": "1"}
    async with http.post(rest.base_url + "/sim/price", json=unknown) as resp:
        assert resp.status == 400
        assert (await resp.json())["retCode"] == 10001
    async with http.post(rest.base_url + "/sim/fill", json={"orderId": "nope"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["retCode"] == 110001
    async with http.post(rest.base_url + "/sim/deposit", data="{not json") as resp:
        assert resp.status == 400
        assert "not valid JSON" in (await resp.json())["error"]


async def test_price_controls_and_force_fill(rest: SimRest) -> None:
    ticker = await rest.admin(
        "POST", "/price", {"category": "linear", "symbol": "BTCUSDT", "price": "64000.0"}
    )
    assert Decimal(ticker["lastPrice"]) == Decimal("64000.0")
    await rest.admin("POST", "/price/freeze", {"category": "linear", "symbol": "BTCUSDT"})
    stepped = await rest.admin(
        "POST", "/price/step", {"category": "linear", "symbol": "BTCUSDT", "steps": 1}
    )
    assert "lastPrice" in stepped

    link = uuid.uuid4().hex
    created = await rest.create_order(orderLinkId=link, price="50000", qty="0.002")
    order_id = created.body["result"]["orderId"]
    await rest.admin("POST", "/fill", {"orderId": order_id, "qty": "0.001"})
    [order] = await rest.open_orders(orderId=order_id)
    assert order["orderStatus"] == "PartiallyFilled" and order["cumExecQty"] == "0.001"
    await rest.admin("POST", "/fill", {"orderId": order_id})
    [order] = await rest.open_orders(orderId=order_id)  # realtime also lists recently closed
    assert order["orderStatus"] == "Filled" and order["cumExecQty"] == "0.002"


async def test_external_order_and_balance_moves(rest: SimRest) -> None:
    before = _usdt((await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})).body)
    await rest.admin("POST", "/deposit", {"coin": "USDT", "amount": "250.5"})
    await rest.admin("POST", "/withdraw", {"coin": "USDT", "amount": "50"})
    after = _usdt((await rest.get("/v5/account/wallet-balance", {"accountType": "UNIFIED"})).body)
    assert after - before == Decimal("200.5")

    placed = await rest.admin(
        "POST",
        "/external-order",
        {
            "category": "linear",
            "symbol": "ETHUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.01",
            "price": "3000",
        },
    )
    orders = await rest.open_orders(symbol="ETHUSDT")
    assert [o["orderId"] for o in orders] == [placed["orderId"]]


def _outward_ip() -> str:
    """This host's non-loopback address (UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))
        return str(s.getsockname()[0])


async def test_admin_refuses_non_loopback_peers(http: aiohttp.ClientSession) -> None:
    ip = _outward_ip()
    assert not ip.startswith("127.")
    server = SimServer(SimConfig(host="0.0.0.0"))
    await server.start()
    try:
        port = str(server.url).rsplit(":", 1)[1].rstrip("/")
        async with http.get(f"http://{ip}:{port}/sim/state") as resp:
            assert resp.status == 403
            assert "loopback" in (await resp.json())["error"]
        async with http.get(f"http://127.0.0.1:{port}/sim/state") as resp:
            assert resp.status == 200
    finally:
        await server.stop()
