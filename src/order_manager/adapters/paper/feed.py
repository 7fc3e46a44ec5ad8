"""The paper exchange's update feed as an exchange event source (dry-run's private stream).

`PaperExchange.updates` carries Bybit-shaped `order` / `execution` items for every paper order
change, including fills of resting paper limit orders that happen long after the create call
returned. `PaperFeedSource` hands them to the tracker exactly as the private WebSocket source
hands live events: in arrival order, whatever is already waiting applied as one batch. It
implements `services.ports.exchange_events.ExchangeEventSource` structurally.

The feed has no gaps, and it must not make one: a batch the tracker could not apply (the
database down longer than the tracker's own retries) is kept and handed over again, backing
off from ``retry_base`` to ``retry_max`` seconds, until it is applied — there is no exchange to
reconcile paper orders against. Until the eighth session the exception ended the feed's task:
the paper tracker stopped for good and every later paper fill stayed out of the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

log = structlog.get_logger(__name__)

RawBatch = tuple[str, Sequence[Mapping[str, Any]], datetime | None]


class PaperFeedSource:
    def __init__(
        self,
        updates: asyncio.Queue[dict[str, Any]],
        *,
        max_batch: int = 200,
        retry_base: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        self._updates = updates
        self._max_batch = max_batch
        self._retry_base = retry_base
        self._retry_max = retry_max
        #: batches handed over again after the tracker failed to apply them
        self.retried = 0

    async def run(
        self,
        handle: Callable[[Sequence[RawBatch]], Awaitable[None]],
        on_gap: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """Deliver paper updates until cancelled. The feed is in-process: it has no gaps."""
        del on_gap
        while True:
            item = await self._updates.get()
            batch: list[RawBatch] = [(item["topic"], [item["data"]], None)]
            while len(batch) < self._max_batch and not self._updates.empty():
                more = self._updates.get_nowait()
                batch.append((more["topic"], [more["data"]], None))
            await self._hand_over(handle, batch)

    async def _hand_over(
        self, handle: Callable[[Sequence[RawBatch]], Awaitable[None]], batch: list[RawBatch]
    ) -> None:
        delay = self._retry_base
        while True:
            try:
                await handle(batch)
                return
            except Exception as exc:  # the database: keep the batch, try again
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                self.retried += 1
                log.warning(
                    "paper batch not applied; retrying",
                    items=len(batch),
                    error=repr(exc),
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
