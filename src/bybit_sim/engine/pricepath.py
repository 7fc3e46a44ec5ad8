"""Seeded price paths: random walk on the tick grid, frozen, or a scripted list of prices."""

from __future__ import annotations

import random
import zlib
from decimal import Decimal

from bybit_sim.config import InstrumentConfig


class PricePath:
    """Produces a symbol's next price; deterministic for a given seed and symbol.

    Each symbol has its own `random.Random` seeded from (seed, category, symbol), so the path of
    one symbol never depends on what happens to another or on order flow.
    """

    def __init__(self, cfg: InstrumentConfig, seed: int) -> None:
        self.mode = cfg.path
        self._tick = cfg.tick_size
        self._sigma = float(cfg.volatility_ticks)
        self._script = list(cfg.scripted_prices)
        self._script_pos = 0
        key = f"{seed}:{cfg.category}:{cfg.symbol}".encode()
        self._rng = random.Random(zlib.crc32(key))

    def next_price(self, current: Decimal, manual: bool = False) -> Decimal:
        """The price after one step; never below one tick.

        A `manual` step (admin `step_price`) always moves: a frozen path then takes one step of
        the seeded random walk, and a walk step that rounds to zero ticks becomes ±1 tick."""
        if self.mode == "scripted":
            if self._script_pos >= len(self._script):
                return current
            price = self._script[self._script_pos]
            self._script_pos += 1
            return max(price, self._tick)
        if self.mode == "frozen" and not manual:
            return current
        steps = round(self._rng.gauss(0.0, self._sigma))
        if steps == 0 and manual:
            steps = 1 if self._rng.random() < 0.5 else -1
        return max(current + self._tick * steps, self._tick)
