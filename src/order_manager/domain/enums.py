"""Shared vocabulary of the domain.

Enum values are exactly Bybit's wire spelling where Bybit has one (``Buy``, ``Limit``, ``GTC``,
``linear``), so adapters can send ``enum.value`` unchanged.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Side(StrEnum):
    """Order side, Bybit spelling."""

    BUY = "Buy"
    SELL = "Sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells (direction of the position change in one-way mode)."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "Market"
    LIMIT = "Limit"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    POST_ONLY = "PostOnly"


class Category(StrEnum):
    """Bybit product category. Options are out of scope for signal trading."""

    LINEAR = "linear"
    INVERSE = "inverse"
    SPOT = "spot"

    @property
    def has_positions(self) -> bool:
        """Derivatives hold positions; spot holds coins (wallet balances) instead."""
        return self is not Category.SPOT


class PositionMode(StrEnum):
    """Bybit position mode of a symbol: one net position, or separate long and short."""

    ONE_WAY = "one_way"
    HEDGE = "hedge"


class PositionIdx(IntEnum):
    """Bybit ``positionIdx`` (an int on the wire): 0 one-way, 1 hedge long, 2 hedge short."""

    ONE_WAY = 0
    HEDGE_LONG = 1
    HEDGE_SHORT = 2

    @staticmethod
    def for_hedge(position_side: Side) -> PositionIdx:
        """Hedge-mode index of the position on ``position_side`` (Buy = long, Sell = short)."""
        return PositionIdx.HEDGE_LONG if position_side is Side.BUY else PositionIdx.HEDGE_SHORT
