"""Opening RabbitMQ connections: a failed attempt leaves no unclosed connection object.

aio-pika builds the connection object before connecting and drops it unclosed when the connect
fails; its finaliser then schedules ``close()`` on whatever loop is current (or warns). The
traceback of the error keeps that object alive, so the test can look at it."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from order_manager.adapters.rabbitmq.connection import open_plain, open_robust
from tests.helpers import free_port


def connections_to(port: int) -> list[AbstractConnection]:
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, aio_pika.Connection) and obj.url.port == port
    ]


@pytest.mark.parametrize("opener", [open_robust, open_plain])
async def test_a_failed_connect_closes_its_connection_object(
    opener: Callable[..., Awaitable[Any]],
) -> None:
    port = free_port()
    with pytest.raises((ConnectionError, OSError, aio_pika.exceptions.AMQPError)) as failure:
        await opener(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=2)
    made = connections_to(port)
    assert made, "the failed attempt's connection object should still be reachable"
    assert all(connection.is_closed for connection in made)
    del failure


async def test_a_successful_connect_is_open_and_closes(amqp_url: str) -> None:
    connection = await open_robust(amqp_url)
    try:
        assert not connection.is_closed
        channel = await connection.channel()
        await channel.close()
    finally:
        await connection.close()
    assert connection.is_closed
