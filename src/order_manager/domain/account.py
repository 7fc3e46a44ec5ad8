"""What the planner and risk checks know about the account: balances, positions, open orders.

The shell builds an ``AccountState`` per signal from its stores (wallet events, the tracker's
positions, our non-terminal orders) and passes it in; nothing here fetches anything.

Public API:

- ``OpenOrder``: one live order of the account as planning sees it, with the margin it reserves
  (``reserved`` in ``reserve_coin``) and its quote ``notional``. Build it with
  ``OpenOrder.from_state(order_state, instrument, leverage=1, reference_price=None,
  is_external=False)``. ``is_external`` marks an order someone else placed (adopted by the
  tracker). Every open order counts for reservations and exposure (an external order or an
  untriggered stop really does lock margin), but only ``is_actionable`` ones (ours, ``pending``
  or ``partially_filled``) may be cancelled, amended or counted as our reduce-only cover by
  the planner: never an external order, a conditional order waiting for (or just past) its
  trigger, or a ``submitting`` intent whose fate is not known yet.
- ``AccountState``: ``balances`` (available per coin **before** our open-order reservations,
  e.g. wallet balance minus position margin), ``positions``, ``open_orders``,
  ``recent_order_times`` (per symbol, for the orders-per-minute limit), ``leverage`` (per
  symbol, default 1: the balance check then demands the full notional), ``daily_volume``
  (opening notional traded today), ``trading_paused``. Helpers: ``position``,
  ``orders_for`` (every open order of a symbol), ``actionable_orders_for`` (only those the
  planner may act on), ``available``, ``reserved``, ``exposure``, ``with_commitments``.
- ``Commitment``: what an approved plan is about to hold (its orders as open orders, the
  opening notional it adds to today's volume) while the account state read by a concurrent
  signal of another symbol may not show it yet; ``AccountState.with_commitments`` counts it
  as the snapshot will once the plan's intents are written (``risk.commitment`` builds it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side
from order_manager.domain.instruments import Instrument
from order_manager.domain.money import ONE, ZERO
from order_manager.domain.orders import OrderState, OrderStatus
from order_manager.domain.positions import Position

#: Statuses of an order resting on the book that the planner may act on (see ``is_actionable``).
_ACTIONABLE = frozenset({OrderStatus.PENDING, OrderStatus.PARTIALLY_FILLED})


@dataclass(frozen=True, slots=True)
class OpenOrder:
    order_link_id: str
    order_id: str | None
    category: Category
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    filled_qty: Decimal
    status: OrderStatus
    reduce_only: bool
    position_idx: PositionIdx
    created_at: datetime
    reserve_coin: str
    reserved: Decimal
    notional: Decimal
    signal_ids: tuple[str, ...] = ()
    is_external: bool = False

    @property
    def remaining_qty(self) -> Decimal:
        return max(ZERO, self.qty - self.filled_qty)

    @property
    def is_actionable(self) -> bool:
        """Ours and live on the book (``pending``/``partially_filled``): the only orders the
        planner may cancel, amend or count as reduce-only cover. External orders belong to
        someone else; untriggered/triggered conditional orders are meant to wait for their
        trigger; a ``submitting`` intent may not exist on the exchange at all."""
        return not self.is_external and self.status in _ACTIONABLE

    @property
    def is_unfilled_resting_limit(self) -> bool:
        """Amendable for many-to-one: one of our confirmed limit orders with nothing filled."""
        return (
            self.is_actionable
            and self.order_type is OrderType.LIMIT
            and self.status is OrderStatus.PENDING
            and self.filled_qty == 0
            and self.order_id is not None
        )

    @classmethod
    def from_state(
        cls,
        state: OrderState,
        instrument: Instrument,
        *,
        leverage: Decimal = ONE,
        reference_price: Decimal | None = None,
        signal_ids: tuple[str, ...] = (),
        is_external: bool = False,
    ) -> OpenOrder:
        """Planning view of a live order; reservations use its price (or ``reference_price``)."""
        remaining = state.remaining_qty
        price = state.price or reference_price
        notional = instrument.notional(remaining, price) if price else ZERO
        if state.reduce_only:
            coin, reserved = instrument.quote_coin, ZERO
        elif instrument.category is Category.SPOT:
            if state.side is Side.BUY:
                coin, reserved = instrument.quote_coin, notional
            else:
                coin, reserved = instrument.base_coin, remaining
        elif instrument.category is Category.INVERSE:
            coin = instrument.base_coin
            reserved = remaining / price / leverage if price else ZERO
        else:
            coin, reserved = instrument.quote_coin, notional / leverage
        return cls(
            order_link_id=state.order_link_id,
            order_id=state.order_id,
            category=state.category,
            symbol=state.symbol,
            side=state.side,
            order_type=state.order_type,
            qty=state.qty,
            price=state.price,
            filled_qty=state.filled_qty,
            status=state.status,
            reduce_only=state.reduce_only,
            position_idx=state.position_idx,
            created_at=state.created_at,
            reserve_coin=coin,
            reserved=reserved,
            notional=notional,
            signal_ids=signal_ids,
            is_external=is_external,
        )


@dataclass(frozen=True, slots=True)
class Commitment:
    """An approved plan's orders (opening legs, amend additions, spot sells) as open orders,
    and the opening notional it adds to today's volume."""

    orders: tuple[OpenOrder, ...]
    opening_notional: Decimal


@dataclass(frozen=True, slots=True)
class AccountState:
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    positions: tuple[Position, ...] = ()
    open_orders: tuple[OpenOrder, ...] = ()
    recent_order_times: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)
    leverage: Mapping[str, Decimal] = field(default_factory=dict)
    daily_volume: Decimal = ZERO
    trading_paused: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "balances", MappingProxyType(dict(self.balances)))
        object.__setattr__(
            self, "recent_order_times", MappingProxyType(dict(self.recent_order_times))
        )
        object.__setattr__(self, "leverage", MappingProxyType(dict(self.leverage)))

    def position(
        self, category: Category, symbol: str, idx: PositionIdx = PositionIdx.ONE_WAY
    ) -> Position:
        for pos in self.positions:
            if pos.category is category and pos.symbol == symbol and pos.position_idx == idx:
                return pos
        return Position.flat(category, symbol, idx)

    def orders_for(self, category: Category, symbol: str) -> tuple[OpenOrder, ...]:
        return tuple(
            o
            for o in self.open_orders
            if o.category is category and o.symbol == symbol and o.status.is_open
        )

    def actionable_orders_for(self, category: Category, symbol: str) -> tuple[OpenOrder, ...]:
        """``orders_for`` narrowed to ``OpenOrder.is_actionable``: cancel, amend and reduce-cover
        candidates. Reservations and exposure keep counting every open order."""
        return tuple(o for o in self.orders_for(category, symbol) if o.is_actionable)

    def leverage_for(self, symbol: str) -> Decimal:
        return self.leverage.get(symbol, ONE)

    def reserved(self, coin: str) -> Decimal:
        return sum(
            (o.reserved for o in self.open_orders if o.reserve_coin == coin and o.status.is_open),
            ZERO,
        )

    def available(self, coin: str) -> Decimal:
        """Balance of ``coin`` minus what our open orders reserve."""
        return self.balances.get(coin, ZERO) - self.reserved(coin)

    def with_commitments(self, commitments: Iterable[Commitment]) -> AccountState:
        """This state plus plans it does not show yet: their orders reserve, add exposure and
        (opening notional) count towards today's volume, like our open orders do."""
        taken = tuple(commitments)
        if not taken:
            return self
        return replace(
            self,
            open_orders=self.open_orders + tuple(o for c in taken for o in c.orders),
            daily_volume=self.daily_volume + sum((c.opening_notional for c in taken), ZERO),
        )

    def exposure(self) -> Decimal:
        """Quote notional of all positions (at mark) plus open non-reduce-only orders."""
        positions = sum((p.notional() for p in self.positions), ZERO)
        orders = sum(
            (o.notional for o in self.open_orders if o.status.is_open and not o.reduce_only),
            ZERO,
        )
        return positions + orders
