"""A synthetic order book of several levels around a symbol's current price.

Level k (1-based) of the ask side sits `k * spacing` ticks above the price and of the bid side
the same distance below; its size grows with depth (`level_qty * (1 + growth * (k - 1))`).
Liquidity taken by our account's orders is remembered per level until the price moves, when the
book is rebuilt from scratch (the "market" replenishes). Levels are computed on demand, so a deep
book costs nothing until someone reads it.
"""

from __future__ import annotations

from decimal import Decimal

from bybit_sim.config import InstrumentConfig
from bybit_sim.engine.numbers import ZERO, round_down

BUY = "Buy"
SELL = "Sell"


class SyntheticBook:
    """One symbol's book; `u`/`seq` grow on every change (price move or liquidity taken)."""

    def __init__(self, cfg: InstrumentConfig, levels: int, price: Decimal) -> None:
        self._tick = cfg.tick_size
        self._gap = cfg.tick_size * cfg.level_spacing_ticks
        self._step = cfg.qty_step
        self._base = cfg.level_qty
        self._growth = cfg.level_growth
        self.levels = levels
        self.price = price
        self.update_id = 1
        self.seq = 1
        # full size of level k at index k (index 0 unused); the same at every price
        self._full = [ZERO] + [
            round_down(self._base * (1 + self._growth * (k - 1)), self._step)
            for k in range(1, levels + 1)
        ]
        # (side of the book, level index) -> quantity already taken at this price
        self._taken: dict[tuple[str, int], Decimal] = {}
        # per side, the first level that may still hold quantity (levels above are used up)
        self._first = {BUY: 1, SELL: 1}

    def reprice(self, price: Decimal) -> None:
        self.price = price
        self._taken.clear()
        self._first = {BUY: 1, SELL: 1}
        self.update_id += 1
        self.seq += 1

    def level_price(self, book_side: str, k: int) -> Decimal:
        """Price of level k of the ask (`SELL`) or bid (`BUY`) side."""
        if book_side == SELL:
            return self.price + self._gap * k
        return self.price - self._gap * k

    def level_qty(self, book_side: str, k: int) -> Decimal:
        if not self._taken:
            return self._full[k]
        return self._full[k] - self._taken.get((book_side, k), ZERO)

    def best(self, book_side: str) -> tuple[Decimal, Decimal] | None:
        """Best level of a side that still has quantity (price, qty)."""
        for k in range(self._first[book_side], self.levels + 1):
            price = self.level_price(book_side, k)
            if price <= 0:
                return None
            qty = self.level_qty(book_side, k)
            if qty > 0:
                return price, qty
        return None

    def depth(self, book_side: str, n: int) -> list[tuple[Decimal, Decimal]]:
        """The best `n` levels of a side that still hold quantity."""
        out: list[tuple[Decimal, Decimal]] = []
        for k in range(self._first[book_side], self.levels + 1):
            if len(out) >= n:
                break
            price = self.level_price(book_side, k)
            if price <= 0:
                break
            qty = self.level_qty(book_side, k)
            if qty > 0:
                out.append((price, qty))
        return out

    def available(self, taker_side: str, limit: Decimal) -> Decimal:
        """Total quantity a taker on `taker_side` could get at prices no worse than `limit`."""
        book_side = SELL if taker_side == BUY else BUY
        total = ZERO
        for k in range(self._first[book_side], self.levels + 1):
            price = self.level_price(book_side, k)
            if price <= 0 or not _within(taker_side, price, limit):
                break
            total += self.level_qty(book_side, k)
        return total

    def take(
        self, taker_side: str, limit: Decimal, qty: Decimal, quote: Decimal | None = None
    ) -> list[tuple[Decimal, Decimal]]:
        """Consume up to `qty` (or, if `quote` is given, up to that much quote value) from the
        opposite side at prices no worse than `limit`; returns the (price, qty) slices taken."""
        book_side = SELL if taker_side == BUY else BUY
        fills: list[tuple[Decimal, Decimal]] = []
        remaining = qty
        budget = quote
        first = self._first[book_side]
        for k in range(first, self.levels + 1):
            if remaining <= 0 or (budget is not None and budget <= 0):
                break
            price = self.level_price(book_side, k)
            if price <= 0 or not _within(taker_side, price, limit):
                break
            here = self.level_qty(book_side, k)
            if here <= 0:
                continue
            take = min(here, remaining)
            if budget is not None:
                take = min(take, round_down(budget / price, self._step))
                if take <= 0:
                    break
                budget -= take * price
            self._taken[(book_side, k)] = self._taken.get((book_side, k), ZERO) + take
            remaining -= take
            fills.append((price, take))
        while first <= self.levels and self.level_qty(book_side, first) <= 0:
            first += 1
        self._first[book_side] = first
        if fills:
            self.update_id += 1
            self.seq += 1
        return fills


def _within(taker_side: str, price: Decimal, limit: Decimal) -> bool:
    return price <= limit if taker_side == BUY else price >= limit
