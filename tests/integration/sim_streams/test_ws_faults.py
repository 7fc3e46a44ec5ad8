"""Every WebSocket fault kind, seen by a real private-stream client."""

from __future__ import annotations

import uuid
from decimal import Decimal

import aiohttp

from tests.integration.sim_streams.helpers import SimRest, WsClient, private_ws

Creds = tuple[str, str]


async def _order(rest: SimRest) -> str:
    reply = await rest.create_order(orderLinkId=uuid.uuid4().hex)
    assert reply.ret_code == 0, reply.body
    return str(reply.body["result"]["orderId"])


def _order_ids(message: dict[str, object]) -> list[str]:
    data = message["data"]
    assert isinstance(data, list)
    return [str(item["orderId"]) for item in data]


async def _stream(http: aiohttp.ClientSession, ws_base: str, creds: Creds) -> WsClient:
    return await private_ws(http, ws_base + "/v5/private", *creds, topics=["order"])


async def test_pause_loses_events_but_rest_shows_them(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    rule = await rest.add_fault(target="ws_private", topic="order", kind="pause")
    lost = await _order(rest)
    assert [o["orderId"] for o in await rest.open_orders(orderId=lost)] == [lost]
    await rest.admin("DELETE", f"/faults/{rule}")  # resume
    seen = await _order(rest)
    first = await client.topic("order")
    assert _order_ids(first) == [seen]  # the paused event never arrives
    await client.close()


async def test_duplicate_sends_the_same_message_twice(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    await rest.add_fault(target="ws_private", topic="order", kind="duplicate", count=1)
    order_id = await _order(rest)
    first = await client.topic("order")
    second = await client.topic("order")
    assert first == second and _order_ids(first) == [order_id]
    await client.close()


async def test_reorder_swaps_consecutive_messages(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    await rest.add_fault(
        target="ws_private", topic="order", kind="reorder", count=1, params={"hold_ms": 5_000}
    )
    a = await _order(rest)
    b = await _order(rest)
    first, second = await client.topic("order"), await client.topic("order")
    assert _order_ids(first) == [b] and _order_ids(second) == [a]
    await client.close()


async def test_reorder_flushes_held_message_when_nothing_follows(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    await rest.add_fault(
        target="ws_private", topic="order", kind="reorder", count=1, params={"hold_ms": 50}
    )
    a = await _order(rest)
    assert _order_ids(await client.topic("order")) == [a]
    await client.close()


async def test_delay_delivers_later_in_order(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    rule = await rest.add_fault(
        target="ws_private", topic="order", kind="delay", count=1, params={"ms": 100}
    )
    a = await _order(rest)
    b = await _order(rest)
    assert _order_ids(await client.topic("order")) == [a]
    assert _order_ids(await client.topic("order")) == [b]
    rules = (await rest.admin("GET", "/faults"))["rules"]
    assert [(r["id"], r["applied"], r["exhausted"]) for r in rules] == [(rule, 1, True)]
    await client.close()


async def test_drop_after_n_messages_then_reconnect_works(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    await rest.add_fault(
        target="ws_private", topic="order", kind="drop", count=1, params={"after_messages": 1}
    )
    a = await _order(rest)
    assert _order_ids(await client.topic("order")) == [a]
    await _order(rest)  # this message triggers the drop and is lost
    assert await client.closed()
    assert client.close_type == aiohttp.WSMsgType.CLOSE
    again = await _stream(http, ws_base, credentials)
    c = await _order(rest)
    assert _order_ids(await again.topic("order")) == [c]
    await again.close()


async def test_admin_drop_closes_private_connections_now(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    one = await _stream(http, ws_base, credentials)
    two = await _stream(http, ws_base, credentials)
    reply = await rest.admin("POST", "/ws/drop")
    assert reply["dropped"] >= 2
    assert await one.closed() and await two.closed()
    again = await _stream(http, ws_base, credentials)
    pong = await again.request({"op": "ping"})
    assert pong["op"] == "pong"
    await again.close()


async def test_drop_abort_resets_without_close_frame(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    await rest.add_fault(
        target="ws_private", topic="order", kind="drop", count=1, params={"mode": "abort"}
    )
    await _order(rest)
    assert await client.closed()
    assert client.close_type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_admin_drop_abort(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await _stream(http, ws_base, credentials)
    reply = await rest.admin("POST", "/ws/drop", {"mode": "abort"})
    assert reply == {"dropped": 1}
    assert await client.closed()
    assert client.close_type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_reorder_items_reverses_the_items_of_one_message(
    http: aiohttp.ClientSession, ws_base: str, credentials: Creds, rest: SimRest
) -> None:
    client = await private_ws(http, ws_base + "/v5/private", *credentials, topics=["execution"])
    await rest.add_fault(
        target="ws_private", topic="execution", kind="reorder", count=1,
        params={"scope": "items"},
    )  # fmt: skip
    reply = await rest.create_order(orderType="Market", qty="1.2", price=None)  # walks 3 levels
    assert reply.ret_code == 0, reply.body
    message = await client.topic("execution")
    prices = [Decimal(e["execPrice"]) for e in message["data"]]
    assert len(prices) >= 2
    assert prices == sorted(prices, reverse=True)  # a buy fills upwards; the fault reversed it
    await client.close()
