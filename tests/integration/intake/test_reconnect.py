"""The consumer survives a dropped broker connection (robust reconnect) and keeps consuming."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from order_manager.adapters.rabbitmq.connection import connect
from tests.integration.intake.conftest import Harness, signal_body, until


def _api(rabbitmq_api: str) -> tuple[str, tuple[str, str]]:
    parts = urlsplit(rabbitmq_api)
    base = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port}", parts.path, "", ""))
    return base, (parts.username or "guest", parts.password or "guest")


async def _connections_named(rabbitmq_api: str, name: str) -> list[dict[str, Any]]:
    base, auth = _api(rabbitmq_api)
    async with httpx.AsyncClient(auth=auth, timeout=10) as http:
        response = await http.get(f"{base}/connections")
        response.raise_for_status()
        return [
            c
            for c in response.json()
            if (c.get("client_properties") or {}).get("connection_name") == name
        ]


async def _close_connections(rabbitmq_api: str, name: str) -> int:
    base, auth = _api(rabbitmq_api)
    found = await _connections_named(rabbitmq_api, name)
    async with httpx.AsyncClient(auth=auth, timeout=10) as http:
        for conn in found:
            response = await http.delete(
                f"{base}/connections/{quote(conn['name'], safe='')}",
                headers={"X-Reason": "test: simulated network failure"},
            )
            assert response.status_code in (200, 204), response.text
    return len(found)


async def test_consumer_resumes_after_the_connection_is_dropped(
    harness: Harness, rabbitmq_api: str
) -> None:
    name = f"intake-reconnect-{uuid.uuid4().hex[:8]}"
    connection = await connect(harness.amqp_url, name=name, reconnect_interval=0.2)
    try:
        harness.intake(connection=connection).start()
        before = await harness.send("BTCUSDT")
        await harness.wait_status(before, "executed")

        async def listed() -> bool:
            return bool(await _connections_named(rabbitmq_api, name))

        await until(listed, what="connection visible in the management API", within=30)
        assert await _close_connections(rabbitmq_api, name) == 1

        async def reconnected() -> bool:
            found = await _connections_named(rabbitmq_api, name)
            return bool(found) and not connection.is_closed

        await until(reconnected, what="robust reconnect", within=30)
        after_id, body = signal_body("BTCUSDT")
        await harness.publish(body)
        await harness.wait_status(after_id, "executed", within=30)
        # A malformed message after the reconnect still reaches the DLQ (its channel recovered).
        await harness.publish(b"not json")
        (letter,) = await harness.dead_letters(1, within=30)
        assert letter.headers["x-om-reason"] == "invalid_json"
        assert harness.processor.ids() == [before, after_id]
    finally:
        for intake in harness.intakes:
            await intake.stop()
        harness.intakes.clear()
        await connection.close()
