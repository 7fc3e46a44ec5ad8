"""Reading, replaying and discarding ``order-manager.signals.dlq`` (``order-manager dlq``).

What lands in the dead-letter queue (messages.md §2; ``dead_letters.py`` writes it): malformed
messages (``x-om-reason`` a ``DEAD_LETTER_CODES`` code) and signals whose attempt ended
``failed`` with a retryable reason (``exchange_unavailable``, ``exchange_outcome_unknown``,
``processing_error``). A failed signal is retried by delivering it again (FR-019); this module
is how an operator does that without the broker's management UI.

* ``peek`` reads up to ``limit`` messages without removing any: they are taken unacknowledged
  and handed back when the channel closes, so the queue keeps them, in their order.
* ``replay`` takes up to ``limit`` messages; each one ``select`` accepts is republished to the
  signals queue — body byte for byte, persistent, mandatory, broker-confirmed, with
  ``x-om-replayed-from`` and ``x-om-replayed-reason`` headers — and only then acknowledged on the
  dead-letter queue; the others are handed back untouched. A crash in between leaves the
  message in both queues: the signal is delivered twice, which FR-019's deduplication absorbs
  (a signal is executed at most once per ``signal_id``); nothing is ever lost.
* ``discard`` takes up to ``limit`` messages; each one ``select`` accepts is handed to the
  caller's ``archive`` (the CLI appends it to a file and syncs it to disk) and only then
  acknowledged — removed from the broker; the others are handed back untouched. A crash in
  between leaves it archived *and* still queued; nothing is ever lost.

The signal fields shown (``signal_id``, ``asset``, ``timestamp``) are read best-effort from the
body: a malformed body simply has none.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from order_manager.adapters.rabbitmq.connection import open_plain

#: reasons of signals that failed (retryable) — the ones a replay can help
FAILED_REASONS = frozenset({"exchange_unavailable", "exchange_outcome_unknown", "processing_error"})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    position: int  # 1 = the head of the queue when read
    body: bytes
    reason: str | None
    error: str | None
    failed_at: str | None
    trace_id: str | None
    signal_id: str | None
    asset: str | None
    signal_time: datetime | None  # the signal's own ``timestamp``

    @property
    def is_failed_signal(self) -> bool:
        """A valid signal whose attempt failed (retryable), not a malformed message."""
        return self.reason in FAILED_REASONS

    def age_seconds(self, now: datetime) -> float | None:
        if self.signal_time is None:
            return None
        return (now - self.signal_time).total_seconds()

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = self.age_seconds(now)
        return {
            "position": self.position,
            "reason": self.reason,
            "error": self.error,
            "failed_at": self.failed_at,
            "trace_id": self.trace_id,
            "signal_id": self.signal_id,
            "asset": self.asset,
            "signal_timestamp": None if self.signal_time is None else self.signal_time.isoformat(),
            "age_seconds": None if age is None else round(age, 3),
            "body": self.body.decode("utf-8", errors="replace"),
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: list[DeadLetter]
    kept: list[DeadLetter]


def _header(message: AbstractIncomingMessage, name: str) -> str | None:
    value = (message.headers or {}).get(name)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _signal_time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _read(position: int, message: AbstractIncomingMessage) -> DeadLetter:
    try:
        parsed = json.loads(message.body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    fields: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    signal_id, asset = fields.get("signal_id"), fields.get("asset")
    return DeadLetter(
        position=position,
        body=message.body,
        reason=_header(message, "x-om-reason"),
        error=_header(message, "x-om-error"),
        failed_at=_header(message, "x-om-failed-at"),
        trace_id=_header(message, "x-om-trace-id"),
        signal_id=signal_id if isinstance(signal_id, str) else None,
        asset=asset if isinstance(asset, str) else None,
        signal_time=_signal_time(fields.get("timestamp")),
    )


async def peek(url: str, queue: str, *, limit: int) -> list[DeadLetter]:
    """Up to ``limit`` dead letters from the head of ``queue``; the queue keeps them all."""
    return (await replay(url, queue, target="", select=lambda _: False, limit=limit)).kept


async def replay(
    url: str,
    queue: str,
    *,
    target: str,
    select: Callable[[DeadLetter], bool],
    limit: int,
) -> ReplayReport:
    """Republish to ``target`` every one of the first ``limit`` dead letters ``select`` accepts
    (confirmed by the broker before its dead-letter copy is acknowledged); keep the rest."""

    async def forward(
        channel: AbstractChannel, message: AbstractIncomingMessage, letter: DeadLetter
    ) -> None:
        headers: dict[str, str] = {"x-om-replayed-from": queue}
        if letter.reason:
            headers["x-om-replayed-reason"] = letter.reason
        await channel.default_exchange.publish(
            aio_pika.Message(
                letter.body,
                headers=headers,  # type: ignore[arg-type]
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=target,
            mandatory=True,
        )

    return await _take(url, queue, select=select, limit=limit, before_ack=forward)


async def discard(
    url: str,
    queue: str,
    *,
    select: Callable[[DeadLetter], bool],
    archive: Callable[[DeadLetter], None],
    limit: int,
) -> ReplayReport:
    """Remove every one of the first ``limit`` dead letters ``select`` accepts, each handed to
    ``archive`` first (it must have kept the letter durably when it returns: the message is
    acknowledged — gone from the broker — right after); keep the rest. ``replayed`` in the
    report holds the discarded ones."""

    async def keep_copy(
        _channel: AbstractChannel, _message: AbstractIncomingMessage, letter: DeadLetter
    ) -> None:
        archive(letter)

    return await _take(url, queue, select=select, limit=limit, before_ack=keep_copy)


async def _take(
    url: str,
    queue: str,
    *,
    select: Callable[[DeadLetter], bool],
    limit: int,
    before_ack: Callable[[AbstractChannel, AbstractIncomingMessage, DeadLetter], Awaitable[None]],
) -> ReplayReport:
    """Read up to ``limit`` messages from the head of ``queue``; for each one ``select``
    accepts run ``before_ack`` and then acknowledge it (removed); the others are handed back
    when the channel closes, in their order. A failure leaves the message being handled, and
    every later one, in the queue."""
    # a plain connection: a one-shot command fails on a lost connection instead of reconnecting
    # (what it held unacknowledged goes back to the queue with the connection)
    connection = await open_plain(url, client_properties={"connection_name": "order-manager dlq"})
    taken: list[DeadLetter] = []
    kept: list[DeadLetter] = []
    try:
        try:
            probe = await connection.channel()
            await probe.declare_queue(queue, passive=True)
            await probe.close()
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return ReplayReport([], [])  # nothing was ever dead-lettered
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        source = await channel.declare_queue(queue, passive=True)
        for position in range(1, limit + 1):
            message = await source.get(no_ack=False, fail=False)
            if message is None:
                break
            letter = _read(position, message)
            if not select(letter):
                kept.append(letter)  # stays unacknowledged: back in the queue at close
                continue
            await before_ack(channel, message, letter)
            await message.ack()
            taken.append(letter)
        await channel.close()  # hands every kept message back, in its order
    finally:
        await connection.close()
    return ReplayReport(taken, kept)
