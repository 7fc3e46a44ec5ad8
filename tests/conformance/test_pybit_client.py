"""Conformance: pybit's own `HTTP` and `WebSocket` clients, unmodified, against the simulator.

If pybit can trade, query and stream against `bybit_sim`, so can any client written for Bybit.
"""

from __future__ import annotations

import asyncio
import queue
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP, WebSocket

from bybit_sim.server import SimServer
from tests.conformance.threads import in_thread

DEADLINE_S = 30.0  # a safety net, not a timing claim: generous for loaded CI machines

Message = dict[str, Any]


class Inbox:
    """Bridges pybit's callback thread to the test: a thread-safe queue read with a deadline."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()

    def __call__(self, message: Message) -> None:
        self.messages.put(message)

    async def wait_for(self, predicate: Callable[[Message], bool]) -> Message:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("expected pybit callback message did not arrive")
            try:
                message = await in_thread(self.messages.get, True, min(left, 0.5))
            except queue.Empty:
                continue
            if predicate(message):
                return message


def _has_order(order_id: str, status: str | None = None) -> Callable[[Message], bool]:
    def check(message: Message) -> bool:
        return any(
            o.get("orderId") == order_id and (status is None or o.get("orderStatus") == status)
            for o in message.get("data", [])
        )

    return check


async def _subscribed(sim: SimServer, topics: set[str], not_conn: str | None = None) -> str:
    """Poll the admin state (with a deadline) until a private connection has ``topics``.

    Returns that connection's id; ``not_conn`` excludes a known (old) connection.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{sim.url}/sim/state") as resp:
                state = await resp.json()
            for conn in state["ws"]["private"]:
                if topics <= set(conn["topics"]) and conn["connId"] != not_conn:
                    return str(conn["connId"])
            assert loop.time() < deadline, "pybit's subscription never reached the server"
            await asyncio.sleep(0.02)


async def _private_ws(credentials: tuple[str, str]) -> WebSocket:
    return await in_thread(
        WebSocket,
        testnet=False,
        channel_type="private",
        api_key=credentials[0],
        api_secret=credentials[1],
    )


@pytest.mark.usefixtures("patch_ws_urls")
async def test_pybit_places_amends_cancels_and_streams(
    pybit_http: HTTP, credentials: tuple[str, str], sim: SimServer
) -> None:
    ws = await _private_ws(credentials)
    orders, executions = Inbox(), Inbox()
    try:
        await in_thread(ws.order_stream, orders)
        await in_thread(ws.execution_stream, executions)
        # pybit sends the subscriptions and returns at once: wait until the server has them
        await _subscribed(sim, {"order", "execution"})
        link = uuid.uuid4().hex
        placed = await in_thread(
            pybit_http.place_order,
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Limit",
            qty="0.001",
            price="60000",
            orderLinkId=link,
        )
        assert placed["retCode"] == 0
        order_id = placed["result"]["orderId"]
        assert placed["result"]["orderLinkId"] == link
        new = await orders.wait_for(_has_order(order_id, "New"))
        assert new["topic"] == "order"

        amended = await in_thread(
            pybit_http.amend_order,
            category="linear",
            symbol="BTCUSDT",
            orderId=order_id,
            price="60100",
            qty="0.002",
        )
        assert amended["retCode"] == 0
        open_orders = await in_thread(
            pybit_http.get_open_orders, category="linear", symbol="BTCUSDT", orderId=order_id
        )
        [order] = open_orders["result"]["list"]
        assert Decimal(order["price"]) == Decimal("60100") and order["qty"] == "0.002"
        await orders.wait_for(
            lambda m: any(
                o["orderId"] == order_id and Decimal(o["price"]) == Decimal("60100")
                for o in m["data"]
            )
        )

        cancelled = await in_thread(
            pybit_http.cancel_order, category="linear", symbol="BTCUSDT", orderId=order_id
        )
        assert cancelled["result"]["orderId"] == order_id
        await orders.wait_for(_has_order(order_id, "Cancelled"))
        history = await in_thread(pybit_http.get_order_history, category="linear", orderId=order_id)
        assert history["result"]["list"][0]["orderStatus"] == "Cancelled"

        market = await in_thread(
            pybit_http.place_order,
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Market",
            qty="0.003",
        )
        market_id = market["result"]["orderId"]
        await orders.wait_for(_has_order(market_id, "Filled"))
        fill = await executions.wait_for(_has_order(market_id))
        assert fill["topic"] == "execution"
        fills = await in_thread(pybit_http.get_executions, category="linear", orderId=market_id)
        assert sum(Decimal(e["execQty"]) for e in fills["result"]["list"]) == Decimal("0.003")

        positions = await in_thread(pybit_http.get_positions, category="linear", symbol="BTCUSDT")
        [position] = positions["result"]["list"]
        assert position["side"] == "Buy" and position["size"] == "0.003"
        wallet = await in_thread(pybit_http.get_wallet_balance, accountType="UNIFIED")
        assert wallet["result"]["list"][0]["accountType"] == "UNIFIED"
    finally:
        await in_thread(ws.exit)


async def test_pybit_sees_business_errors(pybit_http: HTTP) -> None:
    with pytest.raises(InvalidRequestError) as err:
        await in_thread(
            pybit_http.cancel_order, category="linear", symbol="BTCUSDT", orderId="missing"
        )
    assert err.value.status_code == 110001


@pytest.mark.usefixtures("patch_ws_urls")
async def test_pybit_public_orderbook_and_ticker(pybit_http: HTTP, sim: SimServer) -> None:
    ws = await in_thread(WebSocket, testnet=False, channel_type="linear")
    books, tickers = Inbox(), Inbox()
    try:
        await in_thread(ws.orderbook_stream, 50, "BTCUSDT", books)
        await in_thread(ws.ticker_stream, "BTCUSDT", tickers)
        book = await books.wait_for(lambda m: m["topic"] == "orderbook.50.BTCUSDT")
        assert len(book["data"]["b"]) == 50 and len(book["data"]["a"]) == 50
        ticker = await tickers.wait_for(lambda m: m["topic"] == "tickers.BTCUSDT")
        assert ticker["data"]["symbol"] == "BTCUSDT"

        sim.state.exchange.set_price("linear", "BTCUSDT", Decimal("64000.0"))
        # pybit merges deltas into its local book; the merged book must equal REST's
        rest_book = await in_thread(
            pybit_http.get_orderbook, category="linear", symbol="BTCUSDT", limit=50
        )
        want_bid = rest_book["result"]["b"][0][0]
        merged = await books.wait_for(
            lambda m: max(m["data"]["b"], key=lambda lv: Decimal(lv[0]))[0] == want_bid
        )
        assert {tuple(lv) for lv in merged["data"]["b"]} == {
            tuple(lv) for lv in rest_book["result"]["b"]
        }
        moved = await tickers.wait_for(
            lambda m: Decimal(m["data"]["lastPrice"]) == Decimal("64000.0")
        )
        assert moved["data"]["symbol"] == "BTCUSDT"
    finally:
        await in_thread(ws.exit)


async def test_pybit_waits_out_a_10006_using_the_reset_header(
    pybit_http: HTTP, sim: SimServer
) -> None:
    rule = sim.state.faults.add(
        {
            "target": "rest",
            "endpoint": "/v5/order/create",
            "kind": "rate_limit",
            "count": 1,
            "params": {"reset_ms": 200},
        }
    )
    placed = await in_thread(
        pybit_http.place_order,
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
        qty="0.001", price="60000",
    )  # fmt: skip
    assert placed["retCode"] == 0  # pybit slept until the reset timestamp and retried
    assert rule.applied == 1


async def test_pybit_sees_gateway_errors_and_lost_answers(pybit_http: HTTP, sim: SimServer) -> None:
    sim.state.faults.add(
        {"target": "rest", "endpoint": "/v5/order/create", "kind": "http_status", "count": 1,
         "params": {"status": 503}}
    )  # fmt: skip
    with pytest.raises(FailedRequestError) as failed:
        await in_thread(
            pybit_http.place_order,
            category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
            qty="0.001", price="60000",
        )  # fmt: skip
    assert failed.value.status_code == 503

    sim.state.faults.add(
        {"target": "rest", "endpoint": "/v5/order/create", "kind": "timeout_after_execute",
         "count": 1}
    )  # fmt: skip
    pybit_http.timeout = 1
    link = uuid.uuid4().hex
    with pytest.raises(requests.exceptions.ReadTimeout):
        await in_thread(
            pybit_http.place_order,
            category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
            qty="0.001", price="60000", orderLinkId=link,
        )  # fmt: skip
    found = await in_thread(
        pybit_http.get_open_orders, category="linear", symbol="BTCUSDT", orderLinkId=link
    )
    assert [o["orderLinkId"] for o in found["result"]["list"]] == [link]


@pytest.mark.usefixtures("patch_ws_urls")
async def test_pybit_reconnects_after_a_network_drop(
    pybit_http: HTTP, credentials: tuple[str, str], sim: SimServer
) -> None:
    """An aborted connection (no close frame) makes pybit reconnect, re-auth and resubscribe."""
    ws = await _private_ws(credentials)
    orders = Inbox()
    try:
        await in_thread(ws.order_stream, orders)
        first = await _subscribed(sim, {"order"})
        drop = {"mode": "abort"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sim.url}/sim/ws/drop", json=drop) as resp,
        ):
            assert (await resp.json()) == {"dropped": 1}
        await _subscribed(sim, {"order"}, not_conn=first)
        placed = await in_thread(
            pybit_http.place_order,
            category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
            qty="0.001", price="60000",
        )  # fmt: skip
        await orders.wait_for(_has_order(placed["result"]["orderId"], "New"))
    finally:
        await in_thread(ws.exit)
