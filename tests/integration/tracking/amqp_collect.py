"""Collect published messages from a queue, awaiting conditions (no polling, no sleeps)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    message_id: str | None
    event_type: str | None
    correlation_id: str | None
    delivery_mode: int | None
    headers: dict[str, Any]


class Collector:
    """Consume `queue` (declared durable like the publisher does) into `messages`."""

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.messages: list[Received] = []
        self._changed = asyncio.Condition()
        self._connection: AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            received = Received(
                body=json.loads(message.body),
                message_id=message.message_id,
                event_type=message.type,
                correlation_id=message.correlation_id,
                delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
                headers=dict(message.headers or {}),
            )
        async with self._changed:
            self.messages.append(received)
            self._changed.notify_all()

    async def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 30.0,  # noqa: ASYNC109 - a deadline that names what was awaited
        what: str = "",
    ) -> list[Received]:
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: predicate(self.messages))
        except TimeoutError:
            raise AssertionError(
                f"{what or 'messages'} not received within {timeout}s (got {len(self.messages)})"
            ) from None
        return list(self.messages)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def first_occurrences(messages: list[Received]) -> list[Received]:
    """Dedupe by event_id as a consumer does: keep the first delivery of each event."""
    seen: set[str] = set()
    out = []
    for m in messages:
        event_id = m.body["event_id"]
        if event_id not in seen:
            seen.add(event_id)
            out.append(m)
    return out
