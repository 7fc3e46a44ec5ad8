"""Positions computed from fills; comparison with stored or exchange state.

A ``Position`` is one (category, symbol, positionIdx) book: in one-way mode (idx 0) a single
net position whose ``size`` is signed (> 0 long, < 0 short); in hedge mode idx 1 holds only a
long (size >= 0) and idx 2 only a short (size <= 0), and a fill can never flip them.

Accounting (exact Decimal, average-cost method as Bybit uses):

- Increasing fills add to ``entry_value`` (linear/spot: qty x price in quote; inverse: qty /
  price in base coin, i.e. contracts are USD), so ``avg_entry_price`` is the volume-weighted
  (inverse: harmonic) mean.
- Reducing fills close ``closing = min(|fill|, |size|)`` at the average cost: the closed share of
  ``entry_value`` leaves the position and the difference with the fill's value is realised PnL
  (long: exit - entry; short: entry - exit). A one-way fill larger than the position flips it:
  the remainder opens the opposite side at the fill price.
- ``realized_pnl`` is net of fees (every fill's fee is subtracted; rebates are negative fees);
  ``fees`` keeps the total paid. ``unrealized_pnl(mark)`` uses the mark price.

Public API: ``PositionFill`` (``from_execution``), ``Position`` (``flat``, ``side``,
``avg_entry_price``, ``unrealized_pnl``, ``notional``, ``with_mark``), ``apply_fill``,
``position_from_fills``, ``ExchangePosition`` (``from_bybit``), ``compare`` -> ``PositionDrift``
(``FieldDrift`` per differing field), ``loss_ratio``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from order_manager.domain.enums import Category, PositionIdx, Side
from order_manager.domain.money import ZERO
from order_manager.domain.orders import Execution


@dataclass(frozen=True, slots=True)
class PositionFill:
    """One fill as it affects a position.

    Bybit executions do not carry ``positionIdx``: take it from the order the fill belongs to."""

    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal = ZERO
    exec_id: str = ""
    position_idx: PositionIdx = PositionIdx.ONE_WAY
    exec_time: datetime | None = None

    @classmethod
    def from_execution(
        cls, execution: Execution, position_idx: PositionIdx = PositionIdx.ONE_WAY
    ) -> PositionFill:
        return cls(
            side=execution.side,
            qty=execution.exec_qty,
            price=execution.exec_price,
            fee=execution.exec_fee,
            exec_id=execution.exec_id,
            position_idx=position_idx,
            exec_time=execution.exec_time,
        )


@dataclass(frozen=True, slots=True)
class Position:
    category: Category
    symbol: str
    position_idx: PositionIdx = PositionIdx.ONE_WAY
    size: Decimal = ZERO
    entry_value: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    mark_price: Decimal | None = None

    @classmethod
    def flat(
        cls, category: Category, symbol: str, position_idx: PositionIdx = PositionIdx.ONE_WAY
    ) -> Position:
        return cls(category=category, symbol=symbol, position_idx=position_idx)

    @property
    def is_flat(self) -> bool:
        return self.size == 0

    @property
    def side(self) -> Side | None:
        """``Buy`` for long, ``Sell`` for short, None when flat (Bybit's ``""``)."""
        if self.size > 0:
            return Side.BUY
        if self.size < 0:
            return Side.SELL
        return None

    @property
    def abs_size(self) -> Decimal:
        return abs(self.size)

    @property
    def avg_entry_price(self) -> Decimal | None:
        if self.size == 0 or self.entry_value == 0:
            return None
        if self.category is Category.INVERSE:
            return self.abs_size / self.entry_value
        return self.entry_value / self.abs_size

    def unrealized_pnl(self, mark: Decimal | None = None) -> Decimal:
        """PnL if closed at ``mark`` (default: the stored ``mark_price``); 0 when flat/unknown."""
        price = mark if mark is not None else self.mark_price
        if self.size == 0 or price is None or price <= 0:
            return ZERO
        if self.category is Category.INVERSE:
            exit_value = self.abs_size / price
            gross = self.entry_value - exit_value
        else:
            gross = self.abs_size * price - self.entry_value
        return gross if self.size > 0 else -gross

    def notional(self, mark: Decimal | None = None) -> Decimal:
        """Exposure in quote currency at ``mark`` (or mark_price, or average entry)."""
        price = mark or self.mark_price or self.avg_entry_price
        if self.size == 0 or price is None:
            return ZERO
        if self.category is Category.INVERSE:
            return self.abs_size
        return self.abs_size * price

    def with_mark(self, mark: Decimal) -> Position:
        return replace(self, mark_price=mark)


def _value(category: Category, qty: Decimal, price: Decimal) -> Decimal:
    return qty / price if category is Category.INVERSE else qty * price


def apply_fill(position: Position, fill: PositionFill) -> Position:
    """The position after ``fill``. Raises ValueError for fills that cannot belong to it."""
    if fill.qty <= 0 or fill.price <= 0:
        raise ValueError("a fill needs a positive quantity and price")
    if fill.position_idx != position.position_idx:
        raise ValueError(
            f"fill for positionIdx {fill.position_idx} applied to {position.position_idx}"
        )
    delta = fill.qty * fill.side.sign
    size, entry = position.size, position.entry_value
    realized = position.realized_pnl - fill.fee
    hedge = position.position_idx is not PositionIdx.ONE_WAY
    if size == 0 or (size > 0) == (delta > 0):
        if hedge and (fill.side is Side.BUY) != (position.position_idx is PositionIdx.HEDGE_LONG):
            raise ValueError("a hedge-mode fill can only open its own side")
        return replace(
            position,
            size=size + delta,
            entry_value=entry + _value(position.category, fill.qty, fill.price),
            realized_pnl=realized,
            fees=position.fees + fill.fee,
        )
    closing = min(fill.qty, abs(size))
    if hedge and fill.qty > abs(size):
        raise ValueError("a hedge-mode fill cannot flip the position")
    closed_entry = entry if closing == abs(size) else entry * closing / abs(size)
    exit_value = _value(position.category, closing, fill.price)
    if position.category is Category.INVERSE:
        gross = closed_entry - exit_value  # base coin
    else:
        gross = exit_value - closed_entry
    realized += gross if size > 0 else -gross
    new_size = size + delta
    new_entry = entry - closed_entry
    remainder = fill.qty - closing
    if remainder > 0:  # one-way flip: the rest opens the other side at the fill price
        new_entry = _value(position.category, remainder, fill.price)
    elif new_size == 0:
        new_entry = ZERO
    return replace(
        position,
        size=new_size,
        entry_value=new_entry,
        realized_pnl=realized,
        fees=position.fees + fill.fee,
    )


def position_from_fills(
    category: Category,
    symbol: str,
    fills: Iterable[PositionFill],
    position_idx: PositionIdx = PositionIdx.ONE_WAY,
) -> Position:
    """Replay ``fills`` from flat; duplicate exec_ids count once.

    When every fill has an ``exec_time`` they are replayed in (exec_time, exec_id) order, so the
    result does not depend on the order the fills arrived in; otherwise in the given order."""
    position = Position.flat(category, symbol, position_idx)
    ordered = list(fills)
    if all(f.exec_time is not None for f in ordered):
        ordered.sort(key=lambda f: (f.exec_time, f.exec_id))
    seen: set[str] = set()
    for fill in ordered:
        if fill.exec_id:
            if fill.exec_id in seen:
                continue
            seen.add(fill.exec_id)
        position = apply_fill(position, fill)
    return position


def loss_ratio(position: Position, mark: Decimal) -> Decimal:
    """Unrealised loss as a fraction of the entry value (0 when in profit or flat)."""
    if position.size == 0 or position.entry_value == 0:
        return ZERO
    pnl = position.unrealized_pnl(mark)
    return -pnl / position.entry_value if pnl < 0 else ZERO


# ---------------------------------------------------------------------------- exchange view


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    """A Bybit position row (REST ``/v5/position/list`` or WS ``position`` item)."""

    category: Category
    symbol: str
    position_idx: PositionIdx
    size: Decimal  # signed like ``Position.size``
    avg_entry_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    cum_realized_pnl: Decimal
    #: the exchange's own figures, kept for display (None when not given; an empty string or
    #: "0" from Bybit means "none" for the price fields)
    position_value: Decimal | None = None
    leverage: Decimal | None = None
    liq_price: Decimal | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None

    @classmethod
    def from_bybit(
        cls, obj: Mapping[str, Any], category: Category | None = None
    ) -> ExchangePosition:
        def dec(key: str) -> Decimal:
            value = obj.get(key)
            return Decimal(value) if value not in (None, "") else ZERO

        size = dec("size")
        if obj.get("side") == "Sell":
            size = -size
        avg = obj.get("avgPrice") or obj.get("entryPrice")
        cat = category or Category(obj["category"])
        return cls(
            category=cat,
            symbol=str(obj["symbol"]),
            position_idx=PositionIdx(int(obj.get("positionIdx") or 0)),
            size=size,
            avg_entry_price=Decimal(avg) if avg and Decimal(avg) != 0 else None,
            mark_price=dec("markPrice") or None,
            unrealized_pnl=dec("unrealisedPnl"),
            cum_realized_pnl=dec("cumRealisedPnl"),
            position_value=dec("positionValue") if obj.get("positionValue") else None,
            leverage=dec("leverage") or None,
            liq_price=dec("liqPrice") or None,
            take_profit=dec("takeProfit") or None,
            stop_loss=dec("stopLoss") or None,
        )


@dataclass(frozen=True, slots=True)
class FieldDrift:
    name: str
    expected: Decimal | None
    actual: Decimal | None


@dataclass(frozen=True, slots=True)
class PositionDrift:
    """Differences between a reference position (``expected``) and another view (``actual``)."""

    category: Category
    symbol: str
    position_idx: PositionIdx
    fields: tuple[FieldDrift, ...]

    @property
    def has_drift(self) -> bool:
        return bool(self.fields)


def _avg_differs(expected: Decimal | None, actual: Decimal | None, tolerance: Decimal) -> bool:
    if expected is None or actual is None:
        return (expected is None) != (actual is None)
    return abs(expected - actual) > abs(expected) * tolerance


def compare(
    expected: Position,
    actual: Position | ExchangePosition,
    *,
    price_tolerance: Decimal = Decimal("0.000001"),
    pnl_tolerance: Decimal | None = None,
) -> PositionDrift:
    """Drift report. Size must match exactly; average entry within ``price_tolerance``
    (relative, the exchange rounds it); realised PnL compared only when ``pnl_tolerance`` is
    given and ``actual`` is a ``Position`` (Bybit's cumulative figure includes funding)."""
    drifts: list[FieldDrift] = []
    if expected.size != actual.size:
        drifts.append(FieldDrift("size", expected.size, actual.size))
    if (expected.size != 0 or actual.size != 0) and _avg_differs(
        expected.avg_entry_price, actual.avg_entry_price, price_tolerance
    ):
        drifts.append(
            FieldDrift("avg_entry_price", expected.avg_entry_price, actual.avg_entry_price)
        )
    if (
        pnl_tolerance is not None
        and isinstance(actual, Position)
        and abs(expected.realized_pnl - actual.realized_pnl) > pnl_tolerance
    ):
        drifts.append(FieldDrift("realized_pnl", expected.realized_pnl, actual.realized_pnl))
    return PositionDrift(expected.category, expected.symbol, expected.position_idx, tuple(drifts))
