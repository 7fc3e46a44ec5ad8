"""Fresh market data for pricing: the exchange's book, never the signal's advisory snapshot.

Public API: ``MarketSnapshot`` (best bid/ask with the time they were observed, optional depth in
the instrument's quantity unit for the top levels, optional mark price, and ``source``:
``orderbook`` or ``ticker``), with ``mid``, ``spread``, ``spread_bps``, ``age(now)``,
``is_fresh(now, max_age)``, ``touch(side)`` (price a taker pays) and ``depth_against(side)``
(liquidity a taker of ``side`` consumes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from order_manager.domain.enums import Side
from order_manager.domain.money import BPS


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    symbol: str
    best_bid: Decimal
    best_ask: Decimal
    as_of: datetime
    bid_depth: Decimal | None = None
    ask_depth: Decimal | None = None
    mark_price: Decimal | None = None
    source: str = "orderbook"

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")

    @property
    def is_usable(self) -> bool:
        """Both sides present and not crossed."""
        return self.best_bid > 0 and self.best_ask > 0 and self.best_ask >= self.best_bid

    @property
    def mid(self) -> Decimal:
        return (self.best_bid + self.best_ask) / 2

    @property
    def spread(self) -> Decimal:
        return self.best_ask - self.best_bid

    @property
    def spread_bps(self) -> Decimal:
        return self.spread / self.mid * BPS

    def age(self, now: datetime) -> timedelta:
        return now - self.as_of

    def is_fresh(self, now: datetime, max_age: timedelta) -> bool:
        return self.age(now) <= max_age

    def touch(self, side: Side) -> Decimal:
        """The price a taker of ``side`` meets: the ask for buys, the bid for sells."""
        return self.best_ask if side is Side.BUY else self.best_bid

    def depth_against(self, side: Side) -> Decimal | None:
        """Resting quantity a taker of ``side`` consumes (asks for buys, bids for sells)."""
        return self.ask_depth if side is Side.BUY else self.bid_depth
