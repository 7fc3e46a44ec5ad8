"""Port: publishing stored events to the message broker.

The outbox relay hands over one event at a time, in the order it must arrive. `publish` returns
only after the broker has confirmed the message (publisher confirms, persistent delivery); any
failure (broker unreachable, connection lost, negative or missing confirmation, unroutable
message) raises `ConnectionError` (or `TimeoutError`), and the relay keeps the event to retry
it. A failure after the broker stored the message means the retry publishes it again: delivery
is at least once, consumers dedupe by `event_id` (= the AMQP `message_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class EventPublisher(Protocol):
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
        """Publish one persistent JSON message and wait for the broker's confirmation."""
        ...

    async def close(self) -> None: ...
