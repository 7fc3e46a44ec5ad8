"""Ports: where exchange events come from, and the REST queries the tracker needs.

`ExchangeEventSource` has two implementations that feed one tracker code path:

- the Bybit private WebSocket (`order`, `execution`, `position`, `wallet`), default;
- the ws-gateway service (`ORDERMANAGER_EVENT_SOURCE=ws_gateway`): envelopes from the queue
  `ws-gateway.order`, each carrying one raw Bybit object.

Items are raw Bybit V5 objects exactly as received (numbers as strings); the tracker parses them
with the domain's `from_bybit` constructors. A source may hand over several batches at once
(the messages that were already waiting: one transaction for all of them, fewer commits under
load). `handle` returns only after the items' effects are committed, so a queue-based source
acks after `handle` and a crash redelivers (harmless: every effect is idempotent). `on_gap` is
called when events may have been lost (a WebSocket reconnect): the tracker then reconciles
through `ExchangeQueries`.

`ExchangeQueries` returns raw Bybit objects too (REST `list` items), or raises `ConnectionError`
/ `TimeoutError` (or the adapter's errors) when the exchange cannot answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

#: (topic: order | execution | position | wallet, raw items, exchange creation time)
RawBatch = tuple[str, Sequence[Mapping[str, Any]], datetime | None]
#: applies the batches in order, in one transaction; returns once committed
EventHandler = Callable[[Sequence[RawBatch]], Awaitable[None]]
GapHandler = Callable[[], Awaitable[None]]


class ExchangeEventSource(Protocol):
    async def run(self, handle: EventHandler, on_gap: GapHandler | None) -> None:
        """Deliver events until cancelled (or the source is closed)."""
        ...


class ExchangeQueries(Protocol):
    async def fetch_order(
        self, category: str, *, order_id: str | None, order_link_id: str | None
    ) -> Mapping[str, Any] | None:
        """One order object (open or history), None when the exchange does not know it."""
        ...

    async def fetch_order_executions(
        self, category: str, order_id: str
    ) -> Sequence[Mapping[str, Any]]:
        """The fills of one order (`/v5/execution/list`)."""
        ...

    async def fetch_positions(self, category: str) -> Sequence[Mapping[str, Any]]:
        """Every position row of the category (flat rows may be included)."""
        ...

    async def fetch_open_orders(self, category: str) -> Sequence[Mapping[str, Any]]:
        """Every open order of the category."""
        ...
