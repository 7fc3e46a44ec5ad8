"""Raw REST queries for the tracker and the reconciler.

Implements `services.ports.exchange_events.ExchangeQueries` (tracker) and its superset
`services.ports.exchange_queries.ReconcileExchange` (reconciler). Both hand exchange objects to
the domain's `from_bybit` constructors, which read Bybit's own camelCase strings, so every
method returns REST `list` items exactly as received (through `BybitRestClient.call`: signing,
rate limiting and retries included), never the client's typed models. Position items get their
`category` added (REST rows do not carry it; WS rows do).

History windows: Bybit serves order history and executions for at most 7 days per request, so
`[since, until)` is split into 7-day windows, each paginated by cursor.

(Reconstructed by the tracking engineer after an accidental overwrite of the first version;
see the wave-2 tracking report.)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import ProtocolError
from .rest import BybitRestClient

_SETTLE_COINS: Mapping[str, tuple[str | None, ...]] = {"linear": ("USDT", "USDC")}
_WINDOW = timedelta(days=7)


def _items(result: Any, endpoint: str) -> list[Mapping[str, Any]]:
    items = result.get("list") if isinstance(result, Mapping) else None
    if not isinstance(items, list):
        raise ProtocolError(f"{endpoint}: result has no list", endpoint=endpoint)
    return [item for item in items if isinstance(item, Mapping)]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class BybitReconcileQueries:
    def __init__(self, client: BybitRestClient, *, page_size: int = 50) -> None:
        self._client = client
        self._page_size = page_size

    async def _all(self, path: str, params: Mapping[str, object]) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        cursor = ""
        seen: set[str] = set()
        while True:
            query = {**params, "limit": self._page_size, "cursor": cursor or None}
            result = await self._client.call("GET", path, query)
            page = _items(result, path)
            out.extend(page)
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor or not page:
                return out
            if cursor in seen:
                raise ProtocolError(f"pagination cursor repeats: {cursor!r}", endpoint=path)
            seen.add(cursor)

    def _scopes(self, category: str, symbol: str | None) -> list[dict[str, object]]:
        """Linear queries need a symbol or a settle coin."""
        if symbol is not None:
            return [{"category": category, "symbol": symbol}]
        return [
            {"category": category, "settleCoin": coin}
            for coin in _SETTLE_COINS.get(category, (None,))
        ]

    # ------------------------------------------------------------------ ExchangeQueries
    async def fetch_order(
        self,
        category: str,
        *,
        order_id: str | None,
        order_link_id: str | None,
        symbol: str | None = None,
    ) -> Mapping[str, Any] | None:
        """One order, open or closed; the symbol narrows the lookup when known."""
        if (order_id is None) == (order_link_id is None):
            raise ValueError("give exactly one of order_id, order_link_id")
        params = {
            "category": category,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
        }
        for path in ("/v5/order/realtime", "/v5/order/history"):
            result = await self._client.call("GET", path, params)
            for item in _items(result, path):
                if (order_id and item.get("orderId") == order_id) or (
                    order_link_id and item.get("orderLinkId") == order_link_id
                ):
                    return item
        return None

    async def fetch_order_executions(self, category: str, order_id: str) -> list[Mapping[str, Any]]:
        return await self._all("/v5/execution/list", {"category": category, "orderId": order_id})

    async def fetch_positions(
        self, category: str, symbol: str | None = None
    ) -> list[Mapping[str, Any]]:
        if category == "spot":
            return []
        out: list[Mapping[str, Any]] = []
        for scope in self._scopes(category, symbol):
            for item in await self._all("/v5/position/list", scope):
                out.append({"category": category, **item})
        return out

    async def fetch_open_orders(
        self, category: str, symbol: str | None = None
    ) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        for scope in self._scopes(category, symbol):
            out.extend(await self._all("/v5/order/realtime", {**scope, "openOnly": 0}))
        return out

    # ------------------------------------------------------------------ ReconcileExchange
    async def _windows(
        self,
        path: str,
        category: str,
        symbol: str | None,
        since: datetime,
        until: datetime | None,
    ) -> list[Mapping[str, Any]]:
        end = until or datetime.now(UTC)
        out: list[Mapping[str, Any]] = []
        start = since
        while start < end:
            stop = min(start + _WINDOW, end)
            for scope in self._scopes(category, symbol):
                out.extend(
                    await self._all(
                        path, {**scope, "startTime": _ms(start), "endTime": _ms(stop) - 1}
                    )
                )
            start = stop
        return out

    async def fetch_order_history(
        self, category: str, *, symbol: str | None, since: datetime, until: datetime | None = None
    ) -> list[Mapping[str, Any]]:
        return await self._windows("/v5/order/history", category, symbol, since, until)

    async def fetch_executions(
        self, category: str, *, symbol: str | None, since: datetime, until: datetime | None = None
    ) -> list[Mapping[str, Any]]:
        return await self._windows("/v5/execution/list", category, symbol, since, until)

    async def cancel_all(self, category: str, *, symbol: str | None) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        for scope in self._scopes(category, symbol):
            result = await self._client.call("POST", "/v5/order/cancel-all", scope)
            out.extend(_items(result, "/v5/order/cancel-all"))
        return out


#: the tracker's name for the same adapter
BybitExchangeQueries = BybitReconcileQueries
