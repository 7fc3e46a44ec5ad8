"""RabbitMQ connection helper: robust connections and queue declarations that never clash.

``connect`` opens an aio-pika *robust* connection: when the broker goes away it reconnects in the
background (every ``reconnect_interval`` seconds) and restores its channels, QoS, queues and
consumers, so a consumer keeps receiving after an outage without any code of ours. What a
robust connection cannot restore is the fate of deliveries received before the outage: their
delivery tags belong to the dead channel, so acking them fails locally (the consumer logs it)
and the broker redelivers them — harmless, because signals are deduplicated by ``signal_id``.

``open_robust`` / ``open_plain`` are aio-pika's ``connect_robust`` / ``connect`` with one fix:
aio-pika builds the connection object before connecting and drops it *unclosed* when the
connect fails (broker down, start-up retries, a publisher reconnecting through an outage); its
finaliser then schedules ``close()`` on whatever loop is current, or warns when none runs. Here
a failed attempt's object is closed before the error propagates.

``ensure_queue`` declares a queue *only when it does not exist yet*. Queues such as
``model-service.trading_signals`` are shared with other services; redeclaring them with other
arguments fails with PRECONDITION_FAILED and closes the channel, so an existing queue is only
checked passively and its arguments are left exactly as its owner declared them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractConnection, AbstractRobustConnection

from order_manager.logs import get_logger

log = get_logger("order_manager.adapters.rabbitmq")

#: errors that mean "the broker or the channel is not usable right now"
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)


C = TypeVar("C", bound=AbstractConnection)


async def _open(
    opener: Callable[..., Awaitable[C]], base: Callable[..., C], url: str, **kwargs: Any
) -> C:
    made: list[C] = []

    def build(*args: Any, **kw: Any) -> C:
        connection = base(*args, **kw)
        made.append(connection)
        return connection

    try:
        return await opener(url, connection_class=cast(Any, build), **kwargs)
    except BaseException:
        for connection in made:  # never connected: closing only releases it
            with contextlib.suppress(Exception):
                await connection.close()
        raise


async def open_robust(url: str, **kwargs: Any) -> AbstractRobustConnection:
    """``aio_pika.connect_robust`` that closes the connection object of a failed attempt."""
    return await _open(aio_pika.connect_robust, aio_pika.RobustConnection, url, **kwargs)


async def open_plain(url: str, **kwargs: Any) -> AbstractConnection:
    """``aio_pika.connect`` that closes the connection object of a failed attempt."""
    return await _open(aio_pika.connect, aio_pika.Connection, url, **kwargs)


async def connect(
    url: str, *, name: str = "order-manager", reconnect_interval: float = 1.0
) -> AbstractRobustConnection:
    """Open a robust connection (raises when the broker cannot be reached right now)."""
    return await open_robust(
        url,
        client_properties={"connection_name": name},
        reconnect_interval=reconnect_interval,
    )


async def ensure_queue(
    connection: AbstractRobustConnection,
    name: str,
    *,
    arguments: Mapping[str, Any] | None = None,
) -> bool:
    """Declare durable queue ``name`` with ``arguments`` unless it exists; True when created.

    An existing queue is left untouched (whatever arguments its owner gave it).
    """
    probe = await connection.channel()
    try:
        await probe.declare_queue(name, passive=True)
        return False
    except aio_pika.exceptions.ChannelNotFoundEntity:
        pass  # the broker closed the probe channel; declare on a fresh one
    finally:
        if not probe.is_closed:
            await probe.close()
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=dict(arguments or {}))
    finally:
        await channel.close()
    log.info("queue declared", queue=name, arguments=dict(arguments or {}))
    return True
