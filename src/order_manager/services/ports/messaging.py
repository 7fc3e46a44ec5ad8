"""Port: where signals come from and where undeliverable ones go.

* ``ReceivedMessage`` — one broker delivery. ``ack()`` is called only after the message's outcome
  is committed (at-least-once intake). A message that is never acked (shutdown, crash, lost
  connection) is redelivered by the broker; the signals table makes that harmless.
* ``SignalSource`` — an async stream of deliveries. The broker's prefetch bounds how many are in
  flight; a consumer that stops iterating stops taking (backpressure). ``stop()`` cancels the
  subscription so nothing new arrives; deliveries already received stay unacked until the
  caller acks them or the channel closes (then the broker redelivers them).
* ``DeadLetterSink`` — republishes a malformed message, body unchanged, with the reason. It
  returns only once the broker has confirmed the message, so the input message may be acked
  right after without any chance of losing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Protocol


class ReceivedMessage(Protocol):
    @property
    def body(self) -> bytes: ...

    @property
    def redelivered(self) -> bool: ...

    @property
    def headers(self) -> Mapping[str, object]: ...

    async def ack(self) -> None:
        """Settle the delivery. Errors (e.g. the channel closed meanwhile) are the adapter's to
        log; the broker then redelivers, which the signals table deduplicates."""
        ...


class SignalSource(Protocol):
    def messages(self) -> AsyncIterator[ReceivedMessage]:
        """Deliveries in broker order; ends after ``stop()``."""
        ...

    async def stop(self) -> None:
        """Stop taking deliveries; those already handed out stay unacked."""
        ...

    async def close(self) -> None:
        """Release the subscription: every delivery still unacked returns to the queue."""
        ...


class DeadLetterSink(Protocol):
    async def dead_letter(
        self,
        body: bytes,
        *,
        reason: str,
        error: str,
        failed_at: datetime,
        trace_id: str | None,
    ) -> None:
        """Publish ``body`` unchanged to the dead-letter queue; return after the broker's confirm.

        Raises when the broker refuses or cannot be reached (then the input is not acked)."""
        ...
