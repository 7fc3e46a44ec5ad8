"""StreamConnection on a real socket: batching, ordering, and the slow-client cut-off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from bybit_sim.faults import FaultInjector
from bybit_sim.ws_stream import StreamConnection

Publisher = Callable[[StreamConnection], None]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Publisher, int], str]]:
    """Start a one-route server whose handler runs `publish(conn)` on a fresh connection."""
    runners: list[web.AppRunner] = []
    publishers: list[tuple[Publisher, int]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        publish, limit = publishers[-1]
        conn = StreamConnection(ws, FaultInjector(), "ws_private", request.transport, limit)
        publish(conn)
        async for _ in ws:
            pass
        await conn.aclose()
        return ws

    urls: list[str] = []

    def start(publish: Publisher, queue_limit: int) -> str:
        publishers.append((publish, queue_limit))
        return urls[0]

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    runners.append(runner)
    port = runner.addresses[0][1]
    urls.append(f"ws://127.0.0.1:{port}/ws")
    yield start
    await runner.cleanup()


async def test_burst_arrives_complete_and_in_order(
    serve: Callable[[Publisher, int], str],
) -> None:
    def publish(conn: StreamConnection) -> None:
        for n in range(500):
            conn.publish("order", json.dumps({"topic": "order", "n": n, "pad": "x" * n * 300}))

    url = serve(publish, 1_000)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        got = [json.loads((await ws.receive(timeout=5)).data)["n"] for _ in range(500)]
    assert got == list(range(500))


async def test_client_whose_queue_overflows_is_disconnected(
    serve: Callable[[Publisher, int], str],
) -> None:
    def publish(conn: StreamConnection) -> None:
        for n in range(50):  # the writer has not run yet: the 11th message overflows
            conn.publish("order", json.dumps({"n": n}))

    url = serve(publish, 10)
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
