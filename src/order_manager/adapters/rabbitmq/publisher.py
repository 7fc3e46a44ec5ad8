"""RabbitMQ event publisher with publisher confirms (implements `services.ports.publisher`).

- One connection and one confirming channel, opened lazily and reopened after any failure (a
  plain connection, not aio-pika's "robust" one: the relay decides when to retry, and a failed
  publish is never replayed behind its back).
- The event queues (`order-manager.order_events`, `order-manager.position_events`) are declared
  durable on every (re)connect; messages go through the default exchange with routing key =
  queue name, `mandatory=True` (an unroutable message is an error, not a silent drop),
  persistent, `message_id` = event_id, `type` = event_type, `correlation_id` = trace_id.
- `publish` returns after the broker's ack; a nack, a return, a timeout or a lost connection
  raises `ConnectionError` and drops the connection so the next call starts clean. Several
  `publish` calls may be in flight at once (their confirms overlap); a caller that needs an
  order between two messages awaits the first before sending the second.

The connection carries the name `connection_name` (visible in the management UI/API). `routes`
maps an outbox topic to another queue name (configured queue names); unmapped topics are used
as they are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from order_manager.adapters.rabbitmq.connection import open_plain

log = structlog.get_logger(__name__)


class PublishFailed(ConnectionError):
    """The broker did not confirm the message (the event stays in the outbox)."""


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; payloads hold only JSON types (Decimals are already strings)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class RabbitEventPublisher:
    def __init__(
        self,
        url: str,
        *,
        queues: Sequence[str],
        routes: Mapping[str, str] | None = None,
        connection_name: str = "order-manager.outbox-relay",
        connect_timeout: float = 5.0,
        confirm_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._queues = tuple(queues)
        self._routes = dict(routes or {})
        self._connection_name = connection_name
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connect(self) -> None:
        """Open the connection and declare the queues now (otherwise done on first publish)."""
        async with self._lock:
            await self._ensure()

    async def _ensure(self) -> AbstractExchange:
        channel_open = self._channel is not None and not self._channel.is_closed
        if self._exchange is not None and self.connected and channel_open:
            return self._exchange
        await self._reset()
        try:
            connection = await open_plain(
                self._url,
                timeout=self._connect_timeout,
                client_properties={"connection_name": self._connection_name},
            )
        except Exception as exc:  # any failure to reach the broker
            raise PublishFailed(f"cannot connect to RabbitMQ: {exc!r}") from exc
        self._connection = connection
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            for queue in self._queues:
                await channel.declare_queue(queue, durable=True)
        except Exception as exc:
            await self._reset()
            raise PublishFailed(f"cannot open the publishing channel: {exc!r}") from exc
        self._channel = channel
        self._exchange = channel.default_exchange
        log.info("publisher connected", connection_name=self._connection_name)
        return self._exchange

    async def _reset(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchange = None
        if connection is not None and not connection.is_closed:
            try:
                await connection.close()
            except Exception as exc:  # closing a broken connection may itself fail
                log.debug("closing a broken publisher connection failed", error=repr(exc))

    async def publish(
        self,
        *,
        routing_key: str,
        body: Mapping[str, Any],
        message_id: str,
        event_type: str,
        timestamp: datetime,
        trace_id: str | None,
        headers: Mapping[str, str | int | bool | None],
    ) -> None:
        message = aio_pika.Message(
            encode(body),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            correlation_id=trace_id,
            type=event_type,
            timestamp=timestamp,
            app_id="order-manager",
            headers={k: v for k, v in headers.items() if v is not None},
        )
        async with self._lock:  # only (re)connecting is serialised; confirms overlap
            exchange = await self._ensure()
        try:
            await exchange.publish(
                message,
                routing_key=self._routes.get(routing_key, routing_key),
                mandatory=True,
                timeout=self._confirm_timeout,
            )
        except Exception as exc:  # nack, return, timeout, lost connection
            async with self._lock:
                if self._exchange is exchange:
                    await self._reset()
            raise PublishFailed(f"publish of {message_id} not confirmed: {exc!r}") from exc

    async def close(self) -> None:
        async with self._lock:
            await self._reset()
