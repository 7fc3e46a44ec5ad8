"""RabbitMQ connection helper: robust connections and queue declarations that never clash.

``connect`` opens an aio-pika *robust* connection: when the broker goes away it reconnects in the
background (every ``reconnect_interval`` seconds) and restores its channels, QoS, queues and
consumers, so a consumer keeps receiving after an outage without any code of ours. What a
robust connection cannot restore is the fate of deliveries received before the outage: their
delivery tags belong to the dead channel, so acking them fails locally (the consumer logs it)
and the broker redelivers them — harmless, because signals are deduplicated by ``signal_id``.

``ensure_queue`` declares a queue *only when it does not exist yet*. Queues such as
``model-service.trading_signals`` are shared with other services; redeclaring them with other
arguments fails with PRECONDITION_FAILED and closes the channel, so an existing queue is only
checked passively and its arguments are left exactly as its owner declared them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aio_pika
import aiormq.exceptions
from aio_pika.abc import AbstractRobustConnection

from order_manager.logs import get_logger

log = get_logger("order_manager.adapters.rabbitmq")

#: errors that mean "the broker or the channel is not usable right now"
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)


async def connect(
    url: str, *, name: str = "order-manager", reconnect_interval: float = 1.0
) -> AbstractRobustConnection:
    """Open a robust connection (raises when the broker cannot be reached right now)."""
    connection = await aio_pika.connect_robust(
        url,
        client_properties={"connection_name": name},
        reconnect_interval=reconnect_interval,
    )
    return connection


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
