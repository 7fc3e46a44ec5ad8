"""Plans: what the executor must do for one signal, and the orderLinkIds it uses.

Public API:

- ``order_link_id(prefix, signal_id, leg) -> str``: deterministic client order id
  ``{prefix}-{token}-{leg}``; ``token`` is the signal's UUID as 22 base64url characters (a
  non-UUID id is hashed with SHA-256 to the same length). At most 36 characters, only
  ``[0-9A-Za-z_-]``, unique per (signal, leg), identical on every retry of the same signal, so a
  repeated create is recognised by Bybit (110072) instead of placing a second order.
  ``prefix``: 1-8 of ``[0-9A-Za-z_]``; ``leg``: 1..9999.
- ``parse_order_link_id(prefix, link_id) -> (token, leg) | None`` and ``signal_token(signal_id)``
  let the tracker recognise our orders (adoption) and map them back to a signal.
- Actions: ``Place`` (one exchange order; ``leg`` numbered from 1), ``Amend`` (many-to-one: a
  resting unfilled limit order takes this signal's quantity too), ``Cancel`` (with a
  ``CancelReason``), ``Reject`` (= ``rejections.Rejection``).
- ``Plan``: the ordered actions for one signal (cancels, then amends, then places; reduce-only
  legs before opening legs), the instrument and reference price, and ``notes`` explaining each
  decision. A plan either holds exactly one ``Reject`` and nothing else, or no ``Reject`` at all;
  ``exchange_actions`` of a rejected plan is empty by construction.
- ``SignalOrderLink``/``LinkType``/``Relation``: the signal-to-order relationship rows a plan
  creates (``Plan.links``).

Quantities on a ``Place`` are always in the instrument's quantity unit (base coin; USD contracts
for inverse). For spot market orders the executor must send ``marketUnit=baseCoin``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.instruments import Instrument
from order_manager.domain.money import ZERO
from order_manager.domain.orders import OrderState
from order_manager.domain.rejections import Rejection

MAX_ORDER_LINK_ID = 36
MAX_LEG = 9999
_PREFIX = re.compile(r"[0-9A-Za-z_]{1,8}")
_TOKEN_LENGTH = 22


def signal_token(signal_id: str) -> str:
    """22 URL-safe characters identifying ``signal_id`` (its 128-bit UUID, else a hash)."""
    try:
        raw = uuid.UUID(signal_id).bytes
    except ValueError:
        raw = hashlib.sha256(signal_id.encode("utf-8")).digest()[:16]
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class Cancellable(Protocol):
    """What a cancel is built from (an open order as planning sees it, or an order's state)."""

    @property
    def order_link_id(self) -> str: ...
    @property
    def order_id(self) -> str | None: ...
    @property
    def category(self) -> Category: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def remaining_qty(self) -> Decimal: ...
    @property
    def reduce_only(self) -> bool: ...


def cancel_of(order: Cancellable, reason: CancelReason) -> Cancel:
    return Cancel(
        order_link_id=order.order_link_id,
        order_id=order.order_id,
        category=order.category,
        symbol=order.symbol,
        side=order.side,
        reason=reason,
        remaining_qty=order.remaining_qty,
        reduce_only=order.reduce_only,
    )


def resumed_cancel(order: OrderState, signal_side: Side) -> Cancel:
    """A cancel a plan wrote ahead, rebuilt from the order's row for the signal's resumed run:
    an order on the other side than the signal was cancelled as an opposite order, one on its
    side as a pending limit a market signal replaces (the only cancels a plan sends after its
    intents; ``convert`` sends its own before them, answered)."""
    same_side = order.side is signal_side
    return cancel_of(
        order, CancelReason.REPLACED_BY_MARKET if same_side else CancelReason.OPPOSITE_SIGNAL
    )


def order_link_id(prefix: str, signal_id: str, leg: int) -> str:
    if _PREFIX.fullmatch(prefix) is None:
        raise ValueError("order link id prefix must be 1-8 characters of [0-9A-Za-z_]")
    if not 1 <= leg <= MAX_LEG:
        raise ValueError(f"leg must be within 1..{MAX_LEG}")
    return f"{prefix}-{signal_token(signal_id)}-{leg}"


def synthetic_link_id(order_id: str) -> str:
    """The ``order_link_id`` (max 36 chars) we store for an order placed without one (an
    external order adopted from its exchange events): unique per exchange order id."""
    if len(order_id) <= 34:
        return f"x-{order_id}"
    return "x-" + hashlib.sha256(order_id.encode()).hexdigest()[:34]


def identity_conflict(
    stored_order_id: str | None,
    stored_link_id: str,
    event_order_id: str,
    event_link_id: str,
) -> str | None:
    """Why an exchange event naming ``(event_order_id, event_link_id)`` cannot belong to the
    stored order ``(stored_order_id, stored_link_id)`` — None when it can.

    On Bybit both ids identify one order for its whole life: an event that matches a row by
    one id and contradicts it on the other is about a different order (a reused id, a
    misconfigured exchange or simulator) and must not change that row. Missing ids never
    conflict (an event may omit the link; a row may not have its exchange id yet), and a row
    adopted without a link (``synthetic_link_id``) has no link to contradict."""
    if stored_order_id and event_order_id and stored_order_id != event_order_id:
        return f"orderId {event_order_id!r} differs from the stored {stored_order_id!r}"
    if (
        event_link_id
        and stored_link_id != event_link_id
        and stored_link_id != synthetic_link_id(stored_order_id or event_order_id)
    ):
        return f"orderLinkId {event_link_id!r} differs from the stored {stored_link_id!r}"
    return None


def parse_order_link_id(prefix: str, link_id: str) -> tuple[str, int] | None:
    """``(token, leg)`` when ``link_id`` was made by ``order_link_id`` with ``prefix``."""
    head = f"{prefix}-"
    if not link_id.startswith(head):
        return None
    rest = link_id[len(head) :]
    token, sep, leg = rest[:_TOKEN_LENGTH], rest[_TOKEN_LENGTH : _TOKEN_LENGTH + 1], rest[23:]
    if sep != "-" or len(token) != _TOKEN_LENGTH or not leg.isdigit() or leg.startswith("0"):
        return None
    number = int(leg)
    return (token, number) if 1 <= number <= MAX_LEG else None


class LegIntent(StrEnum):
    OPEN = "open"  # opens or increases exposure (scale-in, new position, flip remainder)
    REDUCE = "reduce"  # reduceOnly: scale-out / close


class CancelReason(StrEnum):
    OPPOSITE_SIGNAL = "opposite_signal"
    REPLACED_BY_MARKET = "replaced_by_market"
    STALE = "stale"
    OPERATOR = "operator"


class LinkType(StrEnum):
    ONE_TO_ONE = "one_to_one"
    ONE_TO_MANY = "one_to_many"
    MANY_TO_ONE = "many_to_one"


class Relation(StrEnum):
    """How a signal touched an order (``signal_order_links.relation``)."""

    CREATE = "create"  # the single opening order of the signal
    SPLIT = "split"  # one child of a split leg
    REDUCE = "reduce"  # a reduce-only (scale-out / close) order
    AMEND = "amend"  # the signal's quantity was added to a resting order (many-to-one)
    CANCEL = "cancel"  # the signal cancelled this order


@dataclass(frozen=True, slots=True)
class Place:
    leg: int
    order_link_id: str
    category: Category
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    time_in_force: TimeInForce
    reduce_only: bool
    post_only: bool
    position_idx: PositionIdx | None
    intent: LegIntent
    reference_price: Decimal
    notional: Decimal
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    slippage_tolerance_bps: Decimal | None = None
    split_index: int = 1
    split_count: int = 1


@dataclass(frozen=True, slots=True)
class Amend:
    order_link_id: str
    order_id: str | None
    category: Category
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None
    previous_qty: Decimal
    previous_price: Decimal | None
    added_qty: Decimal
    reference_price: Decimal
    added_notional: Decimal


@dataclass(frozen=True, slots=True)
class Cancel:
    order_link_id: str
    order_id: str | None
    category: Category
    symbol: str
    side: Side
    reason: CancelReason
    remaining_qty: Decimal
    reduce_only: bool = False


Reject = Rejection
Action = Place | Amend | Cancel | Rejection


@dataclass(frozen=True, slots=True)
class SignalOrderLink:
    signal_id: str
    order_link_id: str
    link_type: LinkType
    relation: Relation
    sequence: int
    allocated_qty: Decimal


@dataclass(frozen=True, slots=True)
class WrittenCancel:
    """A signal's ``cancel`` link as stored: whether the exchange answered the cancel, and the
    quantity of the order the plan converted into its market order (``convert``; else 0)."""

    order_link_id: str
    done: bool
    converted_qty: Decimal


@dataclass(frozen=True, slots=True)
class Plan:
    signal_id: str
    actions: tuple[Action, ...]
    instrument: Instrument | None = None
    order_type: OrderType | None = None
    reference_price: Decimal | None = None
    notes: tuple[str, ...] = ()
    #: quantity the opening legs took over from resting limits cancelled for a market signal
    #: (``pending_limits_on_market=convert``): the executor sends those cancels first and
    #: places this quantity only for the limits whose cancel the exchange confirmed
    converted_qty: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        rejects = [a for a in self.actions if isinstance(a, Rejection)]
        if rejects and len(self.actions) != 1:
            raise ValueError("a rejected plan holds exactly one Reject and nothing else")

    @classmethod
    def rejected(cls, signal_id: str, rejection: Rejection, notes: tuple[str, ...] = ()) -> Plan:
        return cls(signal_id=signal_id, actions=(rejection,), notes=notes)

    @property
    def rejection(self) -> Rejection | None:
        first = self.actions[0] if self.actions else None
        return first if isinstance(first, Rejection) else None

    @property
    def is_rejected(self) -> bool:
        return self.rejection is not None

    @property
    def exchange_actions(self) -> tuple[Place | Amend | Cancel, ...]:
        return tuple(a for a in self.actions if not isinstance(a, Rejection))

    @property
    def places(self) -> tuple[Place, ...]:
        return tuple(a for a in self.actions if isinstance(a, Place))

    @property
    def amends(self) -> tuple[Amend, ...]:
        return tuple(a for a in self.actions if isinstance(a, Amend))

    @property
    def cancels(self) -> tuple[Cancel, ...]:
        return tuple(a for a in self.actions if isinstance(a, Cancel))

    @property
    def opening_notional(self) -> Decimal:
        """Quote value this plan adds to exposure (opening legs plus amended additions)."""
        places = sum((p.notional for p in self.places if p.intent is LegIntent.OPEN), ZERO)
        return places + sum((a.added_notional for a in self.amends), ZERO)

    @property
    def links(self) -> tuple[SignalOrderLink, ...]:
        """Signal-to-order rows: every placed leg, every amended and cancelled order."""
        places = self.places
        kind = LinkType.ONE_TO_ONE if len(places) == 1 else LinkType.ONE_TO_MANY
        links = []
        for p in places:
            if p.intent is LegIntent.REDUCE:
                relation = Relation.REDUCE
            else:
                relation = Relation.SPLIT if p.split_count > 1 else Relation.CREATE
            links.append(
                SignalOrderLink(self.signal_id, p.order_link_id, kind, relation, p.leg, p.qty)
            )
        links += [
            SignalOrderLink(
                self.signal_id,
                a.order_link_id,
                LinkType.MANY_TO_ONE,
                Relation.AMEND,
                0,
                a.added_qty,
            )
            for a in self.amends
        ]
        links += [
            SignalOrderLink(
                self.signal_id, c.order_link_id, LinkType.ONE_TO_ONE, Relation.CANCEL, 0, ZERO
            )
            for c in self.cancels
        ]
        return tuple(links)
