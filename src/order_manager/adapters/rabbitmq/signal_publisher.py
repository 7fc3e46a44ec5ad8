"""Publishes trading signals to ``model-service.trading_signals`` (``send-signal``, tests, bench).

Messages go to the default exchange with the queue name as routing key, persistent, exactly like
the model service publishes them (messages.md §1), on a publisher-confirm channel: ``publish``
returns once the broker has the message.

``build_signal`` makes a contract-shaped signal body; numbers are written as JSON numbers from
their exact decimal text (never through float).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from order_manager.adapters.rabbitmq.connection import ensure_queue, open_robust

_MARK = "\u2063decimal\u2063"  # invisible separator: never in real signal text


def _marked(value: object) -> object:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return f"{_MARK}{format(value, 'f')}{_MARK}"
    if isinstance(value, Mapping):
        return {k: _marked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_marked(v) for v in value]
    return value


_MARKED_NUMBER = re.compile(rf'"{_MARK}(-?[0-9.]+){_MARK}"')


def encode_signal(signal: Mapping[str, Any]) -> bytes:
    """JSON bytes of a signal mapping; Decimal values become exact JSON numbers.

    (``json`` has no hook for raw number text, so Decimals pass through a marked string that is
    swapped for the digits afterwards.)"""
    text = json.dumps(_marked(signal), separators=(",", ":"), ensure_ascii=False)
    return _MARKED_NUMBER.sub(lambda m: m.group(1), text).encode()


def build_signal(
    *,
    asset: str,
    side: str,
    amount: Decimal,
    confidence: Decimal = Decimal("0.8"),
    strategy_id: str = "cli",
    signal_id: str | None = None,
    timestamp: datetime | None = None,
    is_warmup: bool = False,
    amount_unit: str | None = None,
    trace_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    market_data_snapshot: Mapping[str, Any] | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """A signal in the model service's shape (messages.md §1)."""
    signal: dict[str, Any] = {
        "signal_id": signal_id or str(uuid.uuid4()),
        "signal_type": side,
        "asset": asset,
        "amount": amount,
        "confidence": confidence,
        "timestamp": (timestamp or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "strategy_id": strategy_id,
        "model_version": model_version,
        "is_warmup": is_warmup,
        "market_data_snapshot": dict(market_data_snapshot) if market_data_snapshot else None,
        "metadata": dict(metadata or {}),
        "trace_id": trace_id or uuid.uuid4().hex,
    }
    if amount_unit is not None:
        signal["amount_unit"] = amount_unit
    return signal


class RabbitSignalPublisher:
    def __init__(self, connection: AbstractRobustConnection, queue: str) -> None:
        self._connection = connection
        self.queue = queue
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        await ensure_queue(self._connection, self.queue)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    async def publish(self, body: bytes, *, message_id: str | None = None) -> None:
        """Publish one message body (bytes as given) and wait for the broker's confirm."""
        if self._channel is None or self._channel.is_closed:
            await self.start()
        assert self._channel is not None
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        await self._channel.default_exchange.publish(
            message, routing_key=self.queue, mandatory=True
        )

    async def publish_signal(self, signal: Mapping[str, Any]) -> None:
        signal_id = signal.get("signal_id")
        await self.publish(
            encode_signal(signal), message_id=signal_id if isinstance(signal_id, str) else None
        )

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()


async def publish_signals(url: str, queue: str, signals: Sequence[Mapping[str, Any]]) -> None:
    """Connect, publish every signal with a confirm, disconnect (the ``send-signal`` command)."""
    connection = await open_robust(
        url, client_properties={"connection_name": "order-manager send-signal"}
    )
    try:
        publisher = RabbitSignalPublisher(connection, queue)
        await publisher.start()
        for signal in signals:
            await publisher.publish_signal(signal)
        await publisher.close()
    finally:
        await connection.close()
