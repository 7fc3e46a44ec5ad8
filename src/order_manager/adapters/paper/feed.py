"""The paper exchange's update feed as an exchange event source (dry-run's private stream).

`PaperExchange.updates` carries Bybit-shaped `order` / `execution` items for every paper order
change, including fills of resting paper limit orders that happen long after the create call
returned. `PaperFeedSource` hands them to the tracker exactly as the private WebSocket source
hands live events: in arrival order, whatever is already waiting applied as one batch. It
implements `services.ports.exchange_events.ExchangeEventSource` structurally.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

RawBatch = tuple[str, Sequence[Mapping[str, Any]], datetime | None]


class PaperFeedSource:
    def __init__(self, updates: asyncio.Queue[dict[str, Any]], *, max_batch: int = 200) -> None:
        self._updates = updates
        self._max_batch = max_batch

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
            await handle(batch)
