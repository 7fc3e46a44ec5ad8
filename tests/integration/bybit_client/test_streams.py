"""Private and public WebSockets against the simulator: events, drops, reconnects, staleness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from order_manager.adapters.bybit.config import BybitClientConfig, WebSocketConfig
from order_manager.adapters.bybit.errors import AuthError, StaleMarketDataError
from order_manager.adapters.bybit.market_data import MarketData
from order_manager.adapters.bybit.metrics import BybitMetrics
from order_manager.adapters.bybit.models import PrivateMessage
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.bybit.rest import BybitRestClient, OrderRequest
from order_manager.adapters.bybit.ws_base import ConnectionEvent, Subscription
from tests.helpers import eventually

from .conftest import SimAdmin, with_changes

# The spec's service objective: subscriptions back and events flowing within 5 s of a drop.
RECOVERY_DEADLINE = 5.0


@pytest.fixture
async def private_stream(
    bybit_config: BybitClientConfig, client: BybitRestClient, metrics: BybitMetrics
) -> AsyncIterator[PrivateStream]:
    stream = PrivateStream(bybit_config, client.clock, metrics=metrics)
    await stream.start()
    yield stream
    await stream.stop()


async def place(client: BybitRestClient, link: str) -> str:
    ticker = (await client.get_tickers("linear", "BTCUSDT"))[0]
    assert ticker.bid1_price is not None
    price = (ticker.bid1_price * Decimal("0.98")).quantize(Decimal("0.1"))
    result = await client.create_order(
        OrderRequest("linear", "BTCUSDT", "Buy", "Limit", Decimal("0.001"), link, price=price)
    )
    return result.order_id


async def order_event(messages: Subscription[PrivateMessage], order_id: str) -> PrivateMessage:
    async for message in messages:
        if message.base_topic == "order" and any(o.order_id == order_id for o in message.orders()):
            return message
    raise AssertionError("subscription ended")


async def next_kind(events: Subscription[ConnectionEvent], kind: str) -> ConnectionEvent:
    async for event in events:
        if event.kind == kind:
            return event
    raise AssertionError("subscription ended")


async def test_private_stream_delivers_order_events(
    private_stream: PrivateStream, client: BybitRestClient
) -> None:
    assert private_stream.is_ready and private_stream.generation == 1
    messages = private_stream.messages()
    order_id = await place(client, "ws-events-1")
    async with asyncio.timeout(RECOVERY_DEADLINE):
        message = await order_event(messages, order_id)
    order = next(o for o in message.orders() if o.order_id == order_id)
    assert order.order_link_id == "ws-events-1" and order.qty == Decimal("0.001")


@pytest.mark.parametrize("how", ["admin_drop", "fault_rule"])
async def test_after_a_drop_subscriptions_are_back_and_events_flow_within_5s(
    private_stream: PrivateStream, client: BybitRestClient, sim_admin: SimAdmin, how: str
) -> None:
    events = private_stream.connection_events()
    messages = private_stream.messages()
    if how == "admin_drop":
        assert await sim_admin.drop_ws("private") >= 1
    else:
        # the simulator closes the connection when it is about to send the next order event
        await sim_admin.fault(target="ws_private", topic="order", kind="drop", count=1)
        await place(client, f"ws-trigger-{how}")
    async with asyncio.timeout(RECOVERY_DEADLINE):
        reconnected = await next_kind(events, "reconnected")
        assert reconnected.generation >= 2 and private_stream.is_ready
        order_id = await place(client, f"ws-after-drop-{how}")
        message = await order_event(messages, order_id)
    assert message.orders()[0].order_link_id.startswith("ws-")
    state = await sim_admin.state()
    topics = [set(conn["topics"]) for conn in state["ws"]["private"]]
    assert {"order", "execution", "position", "wallet"} in topics


async def test_wait_ready_returns_the_new_generation(
    private_stream: PrivateStream, sim_admin: SimAdmin
) -> None:
    before = private_stream.generation
    await sim_admin.drop_ws("private")
    async with asyncio.timeout(RECOVERY_DEADLINE):
        assert await private_stream.wait_ready(after_generation=before) > before


async def test_private_stream_with_a_wrong_secret_fails_to_start(
    bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> None:
    stream = PrivateStream(with_changes(bybit_config, api_secret="wrong"), metrics=metrics)
    with pytest.raises(AuthError):
        await stream.start()
    assert not stream.started and not stream.is_ready


async def test_market_data_from_the_stream_then_rest_fallback_then_stale(
    bybit_config: BybitClientConfig, client: BybitRestClient, sim_admin: SimAdmin
) -> None:
    market = MarketData(bybit_config, client, staleness=0.5)
    try:
        await market.track("linear", "BTCUSDT")
        await eventually(
            lambda: market.streams["linear"].quote("BTCUSDT") is not None, what="stream quote"
        )
        quote = await market.quote("linear", "BTCUSDT")
        assert quote.source == "ws" and quote.bid is not None and quote.ask is not None
        assert quote.bid < quote.ask

        # A dropped public stream comes back by itself.
        events = market.streams["linear"].connection_events()
        assert await sim_admin.drop_ws("public") >= 1
        async with asyncio.timeout(RECOVERY_DEADLINE):
            assert (await next_kind(events, "reconnected")).generation >= 2
        await eventually(
            lambda: market.streams["linear"].quote("BTCUSDT") is not None,
            what="stream quote after reconnect",
        )

        # Pause the public topics: the stream goes stale and REST takes over.
        await sim_admin.fault(target="ws_public", topic="*BTCUSDT", kind="pause")
        await eventually(lambda: _is_stale(market), timeout=5.0, what="stale stream")
        fallback = await market.quote("linear", "BTCUSDT")
        assert fallback.source == "rest" and fallback.bid is not None

        # With REST failing too, nothing fresh exists: refuse to price.
        await sim_admin.fault(
            target="rest", endpoint="/v5/market/tickers", kind="http_status", params={"status": 503}
        )
        await eventually(lambda: _is_stale(market), timeout=5.0, what="stale REST quote")
        with pytest.raises(StaleMarketDataError):
            await market.quote("linear", "BTCUSDT")
    finally:
        await market.stop()


def _is_stale(market: MarketData) -> bool:
    try:
        market.cached("linear", "BTCUSDT")
    except StaleMarketDataError:
        return True
    return False


async def test_heartbeats_keep_a_healthy_connection(
    bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> None:
    config = with_changes(
        bybit_config, websocket=WebSocketConfig(ping_interval=0.05, pong_timeout=0.5)
    )
    stream = PrivateStream(config, metrics=metrics)
    await stream.start()
    try:
        await eventually(lambda: stream.pongs_received >= 5, what="five pongs")
        assert stream.generation == 1 and stream.is_ready
    finally:
        await stream.stop()
