"""Instrument cache: every symbol's trading rules, per configured category.

``/v5/market/instruments-info`` is paginated (more than 500 linear symbols exist on Bybit); the
cache loads every page of every configured category, swaps the whole map atomically, and
refreshes it periodically in the background. A failed background refresh keeps the previous map
(rules change rarely) and is logged; only the first load must succeed.

:class:`InstrumentInfo` uses the field names of ``order_manager.domain.instruments.Instrument``
so the shell maps one onto the other field by field, but the adapter does not import the domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import structlog

from .config import BybitClientConfig
from .errors import BybitError, ProtocolError, UnknownInstrumentError
from .models import RawInstrument

log = structlog.get_logger("order_manager.adapters.bybit.instruments")

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """One symbol's rules, normalised across categories (all Decimal).

    Spot has no ``qtyStep``: its ``basePrecision`` is the step; its minimum notional is
    ``minOrderAmt`` (linear: ``minNotionalValue``); spot's max market qty is ``maxMarketOrderQty``.
    """

    category: str
    symbol: str
    base_coin: str
    quote_coin: str
    tick_size: Decimal
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_market_qty: Decimal
    min_notional: Decimal
    status: str

    @property
    def is_trading(self) -> bool:
        return self.status == "Trading"


def normalise(category: str, raw: RawInstrument) -> InstrumentInfo:
    """Bybit's category-specific instrument record → :class:`InstrumentInfo`."""
    lot = raw.lot_size_filter
    if category == "spot":
        step = lot.base_precision or lot.qty_step
        min_qty = lot.min_order_qty or step
        max_qty = lot.max_limit_order_qty or lot.max_order_qty
        max_mkt = lot.max_market_order_qty or lot.max_mkt_order_qty or max_qty
        min_notional = lot.min_order_amt or lot.min_notional_value or _ZERO
    else:
        step = lot.qty_step
        min_qty = lot.min_order_qty
        max_qty = lot.max_order_qty
        max_mkt = lot.max_mkt_order_qty or max_qty
        min_notional = lot.min_notional_value or _ZERO
    if step is None or min_qty is None or max_qty is None or max_mkt is None:
        raise ProtocolError(
            f"{category}/{raw.symbol}: lotSizeFilter lacks step/min/max quantities",
            endpoint="/v5/market/instruments-info",
        )
    return InstrumentInfo(
        category=category,
        symbol=raw.symbol,
        base_coin=raw.base_coin,
        quote_coin=raw.quote_coin,
        tick_size=raw.price_filter.tick_size,
        qty_step=step,
        min_order_qty=min_qty,
        max_order_qty=max_qty,
        max_market_qty=max_mkt,
        min_notional=min_notional,
        status=raw.status,
    )


class InstrumentSource(Protocol):
    async def get_instruments(
        self, category: str, *, symbol: str | None = None, page_size: int = 1000
    ) -> list[RawInstrument]: ...


class InstrumentCache:
    """Cached instrument rules for ``categories``, refreshed every ``refresh_interval`` s."""

    def __init__(
        self,
        source: InstrumentSource,
        categories: Iterable[str],
        *,
        refresh_interval: float = 3600.0,
        page_size: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self.categories = tuple(categories)
        self.refresh_interval = refresh_interval
        self.page_size = page_size
        self._clock = clock
        self._by_key: dict[tuple[str, str], InstrumentInfo] = {}
        self.loaded_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, source: InstrumentSource, config: BybitClientConfig) -> InstrumentCache:
        """Cache for ``config.categories``, refreshed every ``instruments_refresh_interval``."""
        return cls(source, config.categories, refresh_interval=config.instruments_refresh_interval)

    async def refresh(self) -> int:
        """Load every page of every category and swap the cache; returns the symbol count."""
        fresh: dict[tuple[str, str], InstrumentInfo] = {}
        for category in self.categories:
            raws = await self._source.get_instruments(category, page_size=self.page_size)
            for raw in raws:
                fresh[(category, raw.symbol)] = normalise(category, raw)
        self._by_key = fresh
        self.loaded_at = self._clock()
        log.info("bybit.instruments_loaded", count=len(fresh), categories=self.categories)
        return len(fresh)

    def get(self, category: str, symbol: str) -> InstrumentInfo:
        try:
            return self._by_key[(category, symbol)]
        except KeyError:
            raise UnknownInstrumentError(
                f"{category}/{symbol} is not a known instrument", endpoint="instruments"
            ) from None

    def all(self, category: str | None = None) -> list[InstrumentInfo]:
        return [i for (cat, _), i in self._by_key.items() if category is None or cat == category]

    def __len__(self) -> int:
        return len(self._by_key)

    def age(self) -> float | None:
        return None if self.loaded_at is None else self._clock() - self.loaded_at

    async def start(self) -> None:
        """First load (must succeed), then a background refresh loop."""
        await self.refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._refresh_loop(), name="bybit-instruments")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except BybitError as error:
                log.warning("bybit.instruments_refresh_failed", error=str(error))
