"""stop() while the consumer is still subscribing ends the delivery loop (no hang)."""

from __future__ import annotations

import asyncio

from order_manager.adapters.rabbitmq.connection import connect
from order_manager.adapters.rabbitmq.signal_consumer import RabbitSignalSource


async def test_stop_during_subscribe_ends_the_message_loop(amqp_url: str) -> None:
    connection = await connect(amqp_url, name="consumer-stop-race")
    try:
        source = RabbitSignalSource(connection, "model-service.trading_signals", prefetch=4)
        received: list[object] = []

        async def consume() -> None:
            async for message in source.messages():
                received.append(message)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)  # let the loop enter _subscribe (a scheduling step, not a wait)
        await source.stop()  # no iterator exists yet: the race that used to hang shutdown
        async with asyncio.timeout(10):
            await task
        assert received == []
        await source.close()
    finally:
        await connection.close()
