"""Consumer of ``model-service.trading_signals`` with manual acknowledgement and prefetch.

Implements ``order_manager.services.ports.messaging.SignalSource``.

* Manual ack only: a delivery is settled by ``RabbitReceivedMessage.ack()``, which the intake
  calls after the signal's outcome is committed. Nothing is auto-acked.
* ``prefetch`` (``ORDERMANAGER_CONSUMER_PREFETCH``) caps unacknowledged deliveries on the
  channel: when the intake stops pulling (its lanes are full) the broker stops sending.
* ``stop()`` cancels the subscription (basic.cancel): nothing new arrives; deliveries that
  were buffered but not yet handed out are returned to the queue at once (nack + requeue).
  Deliveries already handed out stay unacked until the caller settles them.
* ``close()`` closes the channel: every delivery still unacked goes back to the queue and the
  broker redelivers it later (SIGTERM leaves unfinished work there).
* Robust: the channel belongs to a robust connection, so after a broker restart or a dropped
  connection the subscription is restored and consumption resumes by itself. If the iterator
  ends without ``stop()`` (its channel closed for good), a fresh channel and subscription are
  opened after ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueueIterator,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from order_manager.adapters.rabbitmq.connection import BROKER_ERRORS, ensure_queue, log


class RabbitReceivedMessage:
    """One delivery; implements ``ReceivedMessage``."""

    __slots__ = ("_message",)

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self._message = message

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def redelivered(self) -> bool:
        return bool(self._message.redelivered)

    @property
    def headers(self) -> Mapping[str, object]:
        return dict(self._message.headers or {})

    @property
    def delivery_tag(self) -> int | None:
        return self._message.delivery_tag

    async def ack(self) -> None:
        try:
            await self._message.ack()
        except BROKER_ERRORS as exc:
            # The channel died after the outcome was committed: the broker redelivers and the
            # signals table recognises the duplicate. Logged, not raised.
            log.warning(
                "ack failed; the message will be redelivered",
                delivery_tag=self._message.delivery_tag,
                error=f"{type(exc).__name__}: {exc}",
            )


class RabbitSignalSource:
    """Deliveries of one queue, ``prefetch`` at most unacknowledged at a time."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue: str,
        *,
        prefetch: int,
        retry_interval: float = 1.0,
    ) -> None:
        self._connection = connection
        self.queue = queue
        self.prefetch = prefetch
        self.retry_interval = retry_interval
        self._channel: AbstractRobustChannel | None = None
        self._iterator: AbstractQueueIterator | None = None
        self._stopping = asyncio.Event()

    async def _subscribe(self) -> AbstractQueueIterator:
        await ensure_queue(self._connection, self.queue)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(self.queue, passive=True)
        self._channel = channel
        iterator = queue.iterator()
        await iterator.consume()
        log.info("consuming", queue=self.queue, prefetch=self.prefetch)
        return iterator

    async def messages(self) -> AsyncIterator[RabbitReceivedMessage]:
        while not self._stopping.is_set():
            if self._connection.is_closed:
                log.warning("signal connection closed for good; consumer ends", queue=self.queue)
                return
            try:
                iterator = await self._subscribe()
                self._iterator = iterator
                if self._stopping.is_set():
                    # stop() ran while we were subscribing and found no iterator to close: close
                    # it here, or this loop would wait for deliveries forever.
                    self._iterator = None
                    await iterator.close()
                    break
                async for message in iterator:
                    yield RabbitReceivedMessage(message)
            except BROKER_ERRORS as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "signal consumer interrupted; resubscribing",
                    queue=self.queue,
                    error=f"{type(exc).__name__}: {exc}",
                )
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.retry_interval)

    async def stop(self) -> None:
        """Stop taking deliveries (buffered ones are requeued); handed-out ones stay unacked."""
        self._stopping.set()
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            try:
                await iterator.close()
            except BROKER_ERRORS as exc:
                log.warning("cancelling the signal consumer failed", error=str(exc))

    async def close(self) -> None:
        """Close the channel: every unacked delivery returns to the queue."""
        await self.stop()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except BROKER_ERRORS as exc:
                log.warning("closing the signal channel failed", error=str(exc))
