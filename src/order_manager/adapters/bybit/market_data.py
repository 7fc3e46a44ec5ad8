"""Market data for pricing orders: public WebSocket ``tickers`` and ``orderbook.1`` per tracked
symbol, a REST fallback, and a hard staleness limit.

One :class:`PublicStream` per category keeps the best bid/ask (``orderbook.1``: snapshot, then
deltas where size ``"0"`` removes a level) and last/mark prices (``tickers``: snapshot, then
deltas carrying only changed fields). :meth:`MarketData.quote` returns a :class:`Quote` no older
than ``staleness`` seconds: from the stream when it is fresh, otherwise from REST
(``/v5/market/tickers``); if neither can deliver fresh data it raises
:class:`~.errors.StaleMarketDataError` - stale data never prices an order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
import structlog

from .config import BybitClientConfig
from .errors import BybitError, ProtocolError, StaleMarketDataError
from .metrics import BybitMetrics, metrics_for
from .models import Ticker
from .ws_base import ReconnectingWebSocket

log = structlog.get_logger("order_manager.adapters.bybit.market_data")


@dataclass(frozen=True, slots=True)
class Quote:
    category: str
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    mark: Decimal | None
    received_at: float  # monotonic seconds
    source: str  # "ws" | "rest"

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    def age(self, now: float) -> float:
        return now - self.received_at


def _dec(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise ProtocolError("float in market data", endpoint="public ws")
    return Decimal(str(value))


@dataclass(slots=True)
class _Book:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int = 0

    def apply(self, data: dict[str, Any], snapshot: bool) -> None:
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, data.get("b", [])), (self.asks, data.get("a", []))):
            for price_raw, size_raw in levels:
                price, size = _dec(price_raw), _dec(size_raw)
                if price is None or size is None:
                    raise ProtocolError("empty order book level", endpoint="public ws")
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size
        self.update_id = int(data.get("u", self.update_id))

    def best(self) -> tuple[Decimal | None, Decimal | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)


@dataclass(slots=True)
class _SymbolState:
    book: _Book = field(default_factory=_Book)
    ticker: dict[str, Any] = field(default_factory=dict)
    book_at: float | None = None
    ticker_at: float | None = None


class PublicStream(ReconnectingWebSocket):
    """Public WebSocket of one category; keeps per-symbol top of book and ticker fields."""

    def __init__(
        self,
        url: str,
        category: str,
        config: BybitClientConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: BybitMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(url, config.websocket, metrics=metrics, rng=rng)
        self.name = f"public-{category}"
        self.category = category
        self._clock = clock
        self.symbols: set[str] = set()
        self.state: dict[str, _SymbolState] = {}

    @staticmethod
    def topics_for(symbol: str) -> list[str]:
        return [f"tickers.{symbol}", f"orderbook.1.{symbol}"]

    async def track(self, symbol: str) -> None:
        if symbol in self.symbols:
            return
        self.symbols.add(symbol)
        if self.is_ready:
            await self.send_json(
                {"op": "subscribe", "args": self.topics_for(symbol), "req_id": self.next_req_id()}
            )

    async def on_open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # Data from the previous connection is not trusted across a gap.
        self.state.clear()
        args = [topic for symbol in sorted(self.symbols) for topic in self.topics_for(symbol)]
        if args:
            await self.request(ws, {"op": "subscribe", "args": args}, "subscribe")

    async def on_message(self, message: dict[str, Any]) -> None:
        topic = message.get("topic")
        data = message.get("data")
        if message.get("success") is False:
            # e.g. a late subscribe for an unknown symbol: the symbol just never gets fresh data
            log.warning("bybit.ws_refused", stream=self.name, reply=message)
            return
        if not isinstance(topic, str) or not isinstance(data, dict):
            return
        kind, _, rest = topic.partition(".")
        now = self._clock()
        snapshot = message.get("type") == "snapshot"
        if kind == "orderbook":
            symbol = rest.partition(".")[2]
            state = self.state.setdefault(symbol, _SymbolState())
            if not snapshot and state.book_at is None:
                return  # a delta without its snapshot cannot be applied
            state.book.apply(data, snapshot)
            state.book_at = now
        elif kind == "tickers":
            state = self.state.setdefault(rest, _SymbolState())
            if snapshot:
                state.ticker = dict(data)
            else:
                state.ticker.update(data)
            state.ticker_at = now
        else:
            return
        self.metrics.ws_messages.labels(stream=self.name, topic=kind).inc()

    def quote(self, symbol: str) -> Quote | None:
        """The stream's view of ``symbol`` (``received_at`` = the older of book and ticker)."""
        state = self.state.get(symbol)
        if state is None or state.book_at is None:
            return None
        bid, ask = state.book.best()
        ticker = state.ticker
        if bid is None:
            bid = _dec(ticker.get("bid1Price"))
        if ask is None:
            ask = _dec(ticker.get("ask1Price"))
        received = state.book_at if state.ticker_at is None else min(state.book_at, state.ticker_at)
        return Quote(
            category=self.category,
            symbol=symbol,
            bid=bid,
            ask=ask,
            last=_dec(ticker.get("lastPrice")),
            mark=_dec(ticker.get("markPrice")),
            received_at=received,
            source="ws",
        )


class TickerSource(Protocol):
    async def get_tickers(self, category: str, symbol: str | None = None) -> list[Ticker]: ...


class MarketData:
    """Fresh quotes for tracked symbols (see the module docstring)."""

    def __init__(
        self,
        config: BybitClientConfig,
        rest: TickerSource,
        *,
        staleness: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: BybitMetrics | None = None,
    ) -> None:
        self.config = config
        self.rest = rest
        self.staleness = config.market_data_staleness if staleness is None else staleness
        self._clock = clock
        self.metrics = metrics or metrics_for()
        self.streams: dict[str, PublicStream] = {}
        self._rest_cache: dict[tuple[str, str], Quote] = {}
        self._lock = asyncio.Lock()

    def stream(self, category: str) -> PublicStream:
        stream = self.streams.get(category)
        if stream is None:
            url = self.config.endpoints.public_ws.format(category=category)
            stream = PublicStream(
                url, category, self.config, clock=self._clock, metrics=self.metrics
            )
            self.streams[category] = stream
        return stream

    async def track(self, category: str, symbol: str) -> None:
        """Subscribe to ``symbol`` (starting the category's stream on first use)."""
        stream = self.stream(category)
        await stream.track(symbol)
        if not stream.started:
            await stream.start(wait=False)

    async def stop(self) -> None:
        for stream in self.streams.values():
            await stream.stop()

    def cached(self, category: str, symbol: str) -> Quote:
        """The freshest quote known without I/O; raises when none is within the limit."""
        now = self._clock()
        candidates = [
            q
            for q in (
                self.stream(category).quote(symbol) if category in self.streams else None,
                self._rest_cache.get((category, symbol)),
            )
            if q is not None
        ]
        fresh = [q for q in candidates if q.age(now) <= self.staleness]
        if not fresh:
            ages = ", ".join(f"{q.source} {q.age(now):.1f}s" for q in candidates) or "none"
            raise StaleMarketDataError(
                f"no {category}/{symbol} quote fresher than {self.staleness}s (have: {ages})",
                endpoint="market data",
            )
        return max(fresh, key=lambda q: q.received_at)

    async def quote(self, category: str, symbol: str) -> Quote:
        """A quote no older than the staleness limit: stream first, REST as fallback."""
        try:
            return self.cached(category, symbol)
        except StaleMarketDataError:
            pass
        try:
            tickers = await self.rest.get_tickers(category, symbol)
        except BybitError as error:
            raise StaleMarketDataError(
                f"{category}/{symbol}: stream stale and REST fallback failed: {error}",
                endpoint="market data",
            ) from error
        ticker = next((t for t in tickers if t.symbol == symbol), None)
        if ticker is None:
            raise StaleMarketDataError(
                f"{category}/{symbol}: no ticker from REST", endpoint="/v5/market/tickers"
            )
        self.metrics.market_data_fallbacks.labels(category=category).inc()
        quote = Quote(
            category=category,
            symbol=symbol,
            bid=ticker.bid1_price,
            ask=ticker.ask1_price,
            last=ticker.last_price,
            mark=ticker.mark_price,
            received_at=self._clock(),
            source="rest",
        )
        self._rest_cache[(category, symbol)] = quote
        log.debug("bybit.market_data_rest_fallback", category=category, symbol=symbol)
        return quote


__all__ = ["MarketData", "PublicStream", "Quote"]
