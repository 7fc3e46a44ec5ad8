"""Dead-letter publisher: ``order-manager.signals.dlq`` (messages.md §2).

Implements ``order_manager.services.ports.messaging.DeadLetterSink``. A malformed signal is
republished persistent, body byte-for-byte unchanged, with headers

    x-om-reason     machine code (e.g. ``missing_field``)
    x-om-error      human message
    x-om-failed-at  ISO 8601 UTC
    x-om-trace-id   the message's trace id, when it had one (or the one generated for it)

The channel runs in publisher-confirm mode and the publish is mandatory: ``dead_letter``
returns only after the broker confirmed that the message is stored in the queue, and raises
otherwise (nack, unroutable, connection lost), so the caller acks the input message only once
the dead letter is safe.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from order_manager.adapters.rabbitmq.connection import ensure_queue

MAX_HEADER_TEXT = 1024


class RabbitDeadLetterPublisher:
    def __init__(self, connection: AbstractRobustConnection, queue: str) -> None:
        self._connection = connection
        self.queue = queue
        self._channel: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    async def _ready_channel(self) -> AbstractChannel:
        async with self._lock:
            if self._channel is None or self._channel.is_closed:
                await ensure_queue(self._connection, self.queue)
                self._channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
            return self._channel

    async def dead_letter(
        self,
        body: bytes,
        *,
        reason: str,
        error: str,
        failed_at: datetime,
        trace_id: str | None,
    ) -> None:
        if failed_at.tzinfo is None:
            raise ValueError("failed_at must be timezone-aware")
        headers: dict[str, str] = {
            "x-om-reason": reason,
            "x-om-error": error[:MAX_HEADER_TEXT],
            "x-om-failed-at": failed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        if trace_id:
            headers["x-om-trace-id"] = trace_id[:MAX_HEADER_TEXT]
        message = aio_pika.Message(
            body,
            headers=headers,  # type: ignore[arg-type]
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            timestamp=failed_at,
        )
        channel = await self._ready_channel()
        await channel.default_exchange.publish(message, routing_key=self.queue, mandatory=True)

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()
