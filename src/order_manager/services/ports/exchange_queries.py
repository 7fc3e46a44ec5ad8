"""Port: the exchange reads (and the operator's cancel-all) that reconciliation needs.

A superset of the tracker's `ExchangeQueries` (`ports.exchange_events`): one adapter
(`adapters.bybit.queries.BybitReconcileQueries`) serves both. Every item is a RAW Bybit V5
object (numbers as strings) so the reconciler can hand it to the tracker unchanged — a REST
snapshot takes the same code path as a WebSocket push.

Failures raise: the adapter's errors for exchange refusals, `ConnectionError`/`TimeoutError`
(or the adapter's transport errors) when the exchange cannot be reached. The reconciler
records them in its report and never concludes anything from a failed query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from order_manager.services.ports.exchange_events import ExchangeQueries


class ReconcileExchange(ExchangeQueries, Protocol):
    async def fetch_order(
        self,
        category: str,
        *,
        order_id: str | None,
        order_link_id: str | None,
        symbol: str | None = None,
    ) -> Mapping[str, Any] | None:
        """One order object (open or history), None when the exchange does not know it."""
        ...

    async def fetch_open_orders(
        self, category: str, symbol: str | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """Every open order of the category, or of one symbol."""
        ...

    async def fetch_positions(
        self, category: str, symbol: str | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """Position rows of the category or symbol (empty for spot)."""
        ...

    async def fetch_order_history(
        self, category: str, *, symbol: str | None, since: datetime, until: datetime | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """Closed orders created in [since, until) (split into Bybit's 7-day windows)."""
        ...

    async def fetch_executions(
        self, category: str, *, symbol: str | None, since: datetime, until: datetime | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """Fills executed in [since, until)."""
        ...

    async def cancel_all(self, category: str, *, symbol: str | None) -> Sequence[Mapping[str, Any]]:
        """Cancel every open order of the category (or symbol); the acknowledgements
        (`orderId`, `orderLinkId`)."""
        ...
