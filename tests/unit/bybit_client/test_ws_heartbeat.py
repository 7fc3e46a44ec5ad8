"""Dead-connection detection of the reconnecting WebSocket, against a real (tiny) WebSocket
server that acknowledges auth and subscribe and then never says anything again - not even a pong.
The simulator always answers pings, so it cannot play this part."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry

from order_manager.adapters.bybit.config import BybitClientConfig, WebSocketConfig
from order_manager.adapters.bybit.metrics import metrics_for
from order_manager.adapters.bybit.private_ws import PrivateStream


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A WebSocket server at ``/v5/private`` that acks auth and subscribe, then goes silent.
    Yields its HTTP URL and the list of ops it received."""
    received: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op = message.get("op")
            received.append(op)
            if op in ("auth", "subscribe"):
                await ws.send_str(
                    json.dumps(
                        {"success": True, "ret_msg": "", "op": op, "req_id": message.get("req_id")}
                    )
                )
        return ws

    app = web.Application()
    app.router.add_get("/v5/private", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_a_silent_connection_is_declared_dead_and_replaced(
    silent_server: tuple[str, list[str]],
) -> None:
    url, received = silent_server
    config = BybitClientConfig.for_simulator(
        url, websocket=WebSocketConfig(ping_interval=0.1, pong_timeout=0.1)
    )
    stream = PrivateStream(config, metrics=metrics_for(CollectorRegistry()))
    events = stream.connection_events()
    await stream.start()
    try:
        assert (await events.get()).kind == "connected"
        async with asyncio.timeout(5):
            assert (await events.get()).kind == "disconnected"
            reconnected = await events.get()
        assert reconnected.kind == "reconnected" and reconnected.generation == 2
        assert received.count("auth") >= 2 and received.count("subscribe") >= 2
        assert "ping" in received  # the client did ask before giving up
    finally:
        await stream.stop()
