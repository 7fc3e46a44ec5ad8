"""The order state machine: exchange events in any order, duplicated or late -> one exact state.

Our statuses (``OrderStatus``): ``submitting`` (intent committed, no exchange answer yet),
``pending`` (accepted/resting, Bybit ``New``), ``partially_filled``, ``filled``, ``cancelled``,
``rejected``, ``expired``, ``untriggered``, ``triggered``, ``deactivated``, ``failed`` (never
reached the exchange; provisional: exchange evidence for the orderLinkId overrides it).

Bybit ``orderStatus`` mapping (``map_bybit_status``):

=========================  ==========================================================
``New``                    pending
``PartiallyFilled``        partially_filled
``Untriggered``            untriggered
``Triggered``              triggered
``Filled``                 filled
``Rejected``               rejected
``Deactivated``            deactivated
``Cancelled`` /            rejected if ``rejectReason`` is ``EC_PostOnlyWillTakeLiquidity``
``PartiallyFilledCanceled`` (the order never rested); expired if the time-in-force ended it
                           (``EC_NoImmediateQtyToFill``, ``EC_CancelForNoFullFill``,
                           ``EC_NoEnoughQtyToFill``, or IOC/FOK with no cancelType); otherwise
                           cancelled. A partial fill is kept either way: ``cumExecQty > 0`` on a
                           cancelled order means "partially filled, then cancelled", and the
                           filled quantity stays on the order (and in positions).
=========================  ==========================================================

Rules (``apply_update`` for order objects, ``apply_execution`` for fills):

- An order update applies only if it is newer: its key ``(updatedTime, cumExecQty, status
  rank)`` must be greater than the last applied one; equal is a duplicate, smaller is stale.
  cumExecQty may never decrease. Allowed transitions are explicit (``ALLOWED``); terminal states
  are sticky; an illegal transition is refused with a reason and changes nothing.
- Executions are unique by ``execId``. The filled quantity is the larger of the exchange's
  ``cumExecQty`` and the sum of known executions (executions are the detailed source, the
  cumulative fields the fallback when executions are missed); average price and fees come from
  executions when they cover the filled quantity.
- The visible status is a pure function of (last applied update, set of executions): fills seen
  before the order update move an open order to partially_filled/filled. Hence any permutation,
  with duplicates, of a valid stream ends in the same ``OrderState``.

Public API: ``OrderStatus``, ``BybitOrderStatus``, ``map_bybit_status``, ``ExchangeOrderUpdate``
(``from_bybit``), ``Execution`` (``from_bybit``), ``OrderState`` (``submitting`` constructor and
derived ``filled_qty``/``average_price``/``fees``/``remaining_qty``), ``apply_update``,
``apply_execution``, ``acknowledge``, ``mark_rejected``, ``mark_failed``, ``OrderState.adopted``
(unknown orders: build the state from the exchange's object), ``OrderEvent``, ``OrderEventType``,
``FillDelta``, ``UpdateOutcome``, ``UpdateResult``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.money import ZERO


class OrderStatus(StrEnum):
    SUBMITTING = "submitting"
    PENDING = "pending"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNTRIGGERED = "untriggered"
    TRIGGERED = "triggered"
    DEACTIVATED = "deactivated"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """Live on the exchange (or possibly so): can still fill or be cancelled."""
        return self in _OPEN


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.DEACTIVATED,
        OrderStatus.FAILED,
    }
)
_OPEN = frozenset(
    {
        OrderStatus.SUBMITTING,
        OrderStatus.PENDING,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.UNTRIGGERED,
        OrderStatus.TRIGGERED,
    }
)
_RANK: Mapping[OrderStatus, int] = {
    OrderStatus.SUBMITTING: 0,
    OrderStatus.UNTRIGGERED: 1,
    OrderStatus.TRIGGERED: 2,
    OrderStatus.PENDING: 3,
    OrderStatus.PARTIALLY_FILLED: 4,
    **{status: 5 for status in _TERMINAL},
}
_AFTER_ACCEPTANCE = frozenset(
    {
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
    }
)

#: Explicit transition table (forward closure, so skipped intermediate events are fine).
ALLOWED: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.SUBMITTING: frozenset(OrderStatus) - {OrderStatus.SUBMITTING},
    OrderStatus.UNTRIGGERED: frozenset(
        {
            OrderStatus.UNTRIGGERED,
            OrderStatus.TRIGGERED,
            OrderStatus.PENDING,
            OrderStatus.REJECTED,
            OrderStatus.DEACTIVATED,
        }
        | _AFTER_ACCEPTANCE
    ),
    OrderStatus.TRIGGERED: frozenset(
        {OrderStatus.TRIGGERED, OrderStatus.PENDING, OrderStatus.REJECTED} | _AFTER_ACCEPTANCE
    ),
    OrderStatus.PENDING: frozenset({OrderStatus.PENDING, OrderStatus.REJECTED} | _AFTER_ACCEPTANCE),
    OrderStatus.PARTIALLY_FILLED: _AFTER_ACCEPTANCE,
    # failed is provisional: the exchange's word about the orderLinkId wins.
    OrderStatus.FAILED: frozenset(OrderStatus) - {OrderStatus.SUBMITTING, OrderStatus.FAILED},
    OrderStatus.FILLED: frozenset({OrderStatus.FILLED}),
    OrderStatus.CANCELLED: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.REJECTED: frozenset({OrderStatus.REJECTED}),
    OrderStatus.EXPIRED: frozenset({OrderStatus.EXPIRED}),
    OrderStatus.DEACTIVATED: frozenset({OrderStatus.DEACTIVATED}),
}


class BybitOrderStatus(StrEnum):
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    UNTRIGGERED = "Untriggered"
    REJECTED = "Rejected"
    PARTIALLY_FILLED_CANCELED = "PartiallyFilledCanceled"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    TRIGGERED = "Triggered"
    DEACTIVATED = "Deactivated"


_DIRECT: Mapping[BybitOrderStatus, OrderStatus] = {
    BybitOrderStatus.NEW: OrderStatus.PENDING,
    BybitOrderStatus.PARTIALLY_FILLED: OrderStatus.PARTIALLY_FILLED,
    BybitOrderStatus.UNTRIGGERED: OrderStatus.UNTRIGGERED,
    BybitOrderStatus.TRIGGERED: OrderStatus.TRIGGERED,
    BybitOrderStatus.FILLED: OrderStatus.FILLED,
    BybitOrderStatus.REJECTED: OrderStatus.REJECTED,
    BybitOrderStatus.DEACTIVATED: OrderStatus.DEACTIVATED,
}
_TIF_ENDED_REASONS = frozenset(
    {"EC_NoImmediateQtyToFill", "EC_CancelForNoFullFill", "EC_NoEnoughQtyToFill"}
)
_NO_CANCEL_TYPE = frozenset({"", "UNKNOWN"})


def untraded_after_cancel(order: ExchangeOrderUpdate | None, planned: Decimal) -> Decimal:
    """How much of an order we cancelled will never trade, by the exchange's word on it after
    the cancel: a closed order that did not fill leaves ``qty - cum_exec_qty`` untraded (at most
    ``planned``, what the planner counted on); a filled, still open or unknown order: nothing —
    converting a quantity that may still trade could trade it twice."""
    if order is None:
        return Decimal(0)
    return _untraded(order.status, order.qty, order.cum_exec_qty, planned)


def untraded_in_store(state: OrderState, planned: Decimal) -> Decimal:
    """``untraded_after_cancel`` for an order our store already knows closed: its final status
    and cumulative fill are the exchange's own record of it (the tracker's, or the paper
    exchange's answer), so no lookup is needed — and after a restart of a dry-run none is
    possible: the new paper exchange knows no closed order of the old one."""
    return _untraded(state.status, state.qty, state.filled_qty, planned)


def _untraded(status: OrderStatus, qty: Decimal, filled: Decimal, planned: Decimal) -> Decimal:
    if not status.is_terminal or status is OrderStatus.FILLED:
        return Decimal(0)
    return max(Decimal(0), min(planned, qty - filled))


def map_bybit_status(
    status: BybitOrderStatus | str,
    *,
    reject_reason: str = "",
    cancel_type: str = "",
    time_in_force: TimeInForce | None = None,
) -> OrderStatus:
    """Our status for a Bybit ``orderStatus`` (see the module table). Unknown -> ValueError."""
    bybit = BybitOrderStatus(status)
    direct = _DIRECT.get(bybit)
    if direct is not None:
        return direct
    if reject_reason == "EC_PostOnlyWillTakeLiquidity":
        return OrderStatus.REJECTED
    if reject_reason in _TIF_ENDED_REASONS:
        return OrderStatus.EXPIRED
    if time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and cancel_type in _NO_CANCEL_TYPE:
        return OrderStatus.EXPIRED
    return OrderStatus.CANCELLED


# ---------------------------------------------------------------------------- wire helpers


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"expected a decimal string, got {value!r}")
    try:
        result = Decimal(value)
    except ArithmeticError as exc:  # decimal.InvalidOperation is not a ValueError
        raise ValueError(f"not a decimal: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


def _opt_dec(value: Any) -> Decimal | None:
    result = _dec(value)
    return None if result == 0 else result


def ms_to_datetime(value: Any) -> datetime:
    """Bybit millisecond timestamp (string or int) -> aware UTC datetime."""
    millis = int(value)
    return datetime.fromtimestamp(millis // 1000, tz=UTC).replace(
        microsecond=(millis % 1000) * 1000
    )


def _tif(value: Any) -> TimeInForce | None:
    try:
        return TimeInForce(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ExchangeOrderUpdate:
    """One Bybit order object (WS ``order`` item, REST realtime/history row), exact."""

    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    order_type: OrderType
    bybit_status: BybitOrderStatus
    qty: Decimal
    price: Decimal | None
    cum_exec_qty: Decimal
    cum_exec_value: Decimal
    cum_exec_fee: Decimal
    updated_time: datetime
    category: Category | None = None
    time_in_force: TimeInForce | None = None
    avg_price: Decimal | None = None
    leaves_qty: Decimal | None = None
    reject_reason: str = ""
    cancel_type: str = ""
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    trigger_price: Decimal | None = None
    reduce_only: bool = False
    position_idx: PositionIdx = PositionIdx.ONE_WAY
    created_time: datetime | None = None

    @property
    def status(self) -> OrderStatus:
        return map_bybit_status(
            self.bybit_status,
            reject_reason=self.reject_reason,
            cancel_type=self.cancel_type,
            time_in_force=self.time_in_force,
        )

    @property
    def key(self) -> tuple[datetime, Decimal, int]:
        """Freshness key: newer updatedTime, then more filled, then further in the lifecycle."""
        return (self.updated_time, self.cum_exec_qty, _RANK[self.status])

    @classmethod
    def from_bybit(cls, obj: Mapping[str, Any]) -> ExchangeOrderUpdate:
        """Build from a raw Bybit V5 order object (numbers are strings).

        Raises ValueError (naming the problem) for a missing or malformed field."""
        try:
            return cls._from_bybit(obj)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed Bybit order object: {exc!r}") from exc

    @classmethod
    def _from_bybit(cls, obj: Mapping[str, Any]) -> ExchangeOrderUpdate:
        fee = _dec(obj.get("cumExecFee"))
        detail = obj.get("cumFeeDetail")
        if fee == 0 and isinstance(detail, Mapping) and detail:
            fee = sum((_dec(v) for v in detail.values()), ZERO)
        category = obj.get("category")
        return cls(
            order_id=str(obj["orderId"]),
            order_link_id=str(obj.get("orderLinkId") or ""),
            symbol=str(obj["symbol"]),
            side=Side(obj["side"]),
            order_type=OrderType(obj["orderType"]),
            bybit_status=BybitOrderStatus(obj["orderStatus"]),
            qty=_dec(obj.get("qty")),
            price=_opt_dec(obj.get("price")),
            cum_exec_qty=_dec(obj.get("cumExecQty")),
            cum_exec_value=_dec(obj.get("cumExecValue")),
            cum_exec_fee=fee,
            updated_time=ms_to_datetime(obj["updatedTime"]),
            category=Category(category) if category else None,
            time_in_force=_tif(obj.get("timeInForce")),
            avg_price=_opt_dec(obj.get("avgPrice")),
            leaves_qty=_dec(obj.get("leavesQty"))
            if obj.get("leavesQty") not in (None, "")
            else None,
            reject_reason=str(obj.get("rejectReason") or ""),
            cancel_type=str(obj.get("cancelType") or ""),
            take_profit=_opt_dec(obj.get("takeProfit")),
            stop_loss=_opt_dec(obj.get("stopLoss")),
            trigger_price=_opt_dec(obj.get("triggerPrice")),
            reduce_only=bool(obj.get("reduceOnly", False)),
            position_idx=PositionIdx(int(obj.get("positionIdx") or 0)),
            created_time=ms_to_datetime(obj["createdTime"]) if obj.get("createdTime") else None,
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill (Bybit ``execution`` item / ``/v5/execution/list`` row)."""

    exec_id: str
    order_id: str
    order_link_id: str
    symbol: str
    side: Side
    exec_price: Decimal
    exec_qty: Decimal
    exec_fee: Decimal
    exec_time: datetime
    is_maker: bool = False
    fee_currency: str = ""
    exec_type: str = "Trade"
    category: Category | None = None

    @property
    def value(self) -> Decimal:
        return self.exec_price * self.exec_qty

    @classmethod
    def from_bybit(cls, obj: Mapping[str, Any]) -> Execution:
        """Build from a raw Bybit execution item; ValueError for a malformed one."""
        try:
            return cls._from_bybit(obj)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed Bybit execution: {exc!r}") from exc

    @classmethod
    def _from_bybit(cls, obj: Mapping[str, Any]) -> Execution:
        category = obj.get("category")
        return cls(
            exec_id=str(obj["execId"]),
            order_id=str(obj.get("orderId") or ""),
            order_link_id=str(obj.get("orderLinkId") or ""),
            symbol=str(obj["symbol"]),
            side=Side(obj["side"]),
            exec_price=_dec(obj["execPrice"]),
            exec_qty=_dec(obj["execQty"]),
            exec_fee=_dec(obj.get("execFee")),
            exec_time=ms_to_datetime(obj["execTime"]),
            is_maker=bool(obj.get("isMaker", False)),
            fee_currency=str(obj.get("feeCurrency") or ""),
            exec_type=str(obj.get("execType") or "Trade"),
            category=Category(category) if category else None,
        )


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class OrderState:
    """Everything we know about one order. Derived values are properties, never stored twice."""

    order_link_id: str
    category: Category
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    time_in_force: TimeInForce | None
    created_at: datetime
    reduce_only: bool = False
    position_idx: PositionIdx = PositionIdx.ONE_WAY
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    trigger_price: Decimal | None = None
    order_id: str | None = None
    #: status set locally (submitting / pending on REST ack / rejected / failed)
    local_status: OrderStatus = OrderStatus.SUBMITTING
    #: last applied exchange order object (None until the first one)
    last_update: ExchangeOrderUpdate | None = None
    executions: tuple[Execution, ...] = ()
    status: OrderStatus = OrderStatus.SUBMITTING
    reject_code: str | None = None
    reject_message: str | None = None
    updated_at: datetime | None = None

    @classmethod
    def submitting(
        cls,
        *,
        order_link_id: str,
        category: Category,
        symbol: str,
        side: Side,
        order_type: OrderType,
        qty: Decimal,
        price: Decimal | None,
        time_in_force: TimeInForce | None,
        created_at: datetime,
        reduce_only: bool = False,
        position_idx: PositionIdx = PositionIdx.ONE_WAY,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> OrderState:
        """The write-ahead intent: committed before the REST call."""
        return cls(
            order_link_id=order_link_id,
            category=category,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            time_in_force=time_in_force,
            created_at=created_at,
            reduce_only=reduce_only,
            position_idx=position_idx,
            take_profit=take_profit,
            stop_loss=stop_loss,
            updated_at=created_at,
        )

    @classmethod
    def adopted(cls, update: ExchangeOrderUpdate, category: Category) -> UpdateResult:
        """State for an order we have no row for (placed before a crash, by hand, elsewhere):
        built from the exchange's object, then ``update`` applied (events included)."""
        seed = cls.submitting(
            order_link_id=update.order_link_id,
            category=update.category or category,
            symbol=update.symbol,
            side=update.side,
            order_type=update.order_type,
            qty=update.qty,
            price=update.price if update.order_type is OrderType.LIMIT else None,
            time_in_force=update.time_in_force,
            created_at=update.created_time or update.updated_time,
            reduce_only=update.reduce_only,
            position_idx=update.position_idx,
            take_profit=update.take_profit,
            stop_loss=update.stop_loss,
        )
        return apply_update(replace(seed, order_id=update.order_id or None), update)

    # -- derived fill figures ---------------------------------------------------------------

    @property
    def executed_qty(self) -> Decimal:
        return sum((e.exec_qty for e in self.executions), ZERO)

    @property
    def cum_exec_qty(self) -> Decimal:
        return self.last_update.cum_exec_qty if self.last_update else ZERO

    @property
    def filled_qty(self) -> Decimal:
        return max(self.executed_qty, self.cum_exec_qty)

    @property
    def remaining_qty(self) -> Decimal:
        return max(ZERO, self.qty - self.filled_qty)

    @property
    def _executions_cover(self) -> bool:
        return bool(self.executions) and self.executed_qty >= self.cum_exec_qty

    @property
    def filled_value(self) -> Decimal:
        if self._executions_cover:
            return sum((e.value for e in self.executions), ZERO)
        return self.last_update.cum_exec_value if self.last_update else ZERO

    @property
    def average_price(self) -> Decimal | None:
        qty = self.filled_qty
        if qty == 0:
            return None
        if not self._executions_cover and self.last_update and self.last_update.avg_price:
            return self.last_update.avg_price
        return self.filled_value / qty

    @property
    def fees(self) -> Decimal:
        if self._executions_cover:
            return sum((e.exec_fee for e in self.executions), ZERO)
        return self.last_update.cum_exec_fee if self.last_update else ZERO

    @property
    def fill_percentage(self) -> Decimal:
        return self.filled_qty / self.qty * 100 if self.qty > 0 else ZERO

    def matches(self, order_id: str, order_link_id: str) -> bool:
        """True when an exchange object with these ids belongs to this order."""
        if self.order_id and order_id:
            return self.order_id == order_id
        return bool(order_link_id) and order_link_id == self.order_link_id


# ---------------------------------------------------------------------------- events


class OrderEventType(StrEnum):
    CREATED = "created"
    MODIFIED = "modified"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


_STATUS_EVENT: Mapping[OrderStatus, OrderEventType] = {
    OrderStatus.PARTIALLY_FILLED: OrderEventType.PARTIALLY_FILLED,
    OrderStatus.FILLED: OrderEventType.FILLED,
    OrderStatus.CANCELLED: OrderEventType.CANCELLED,
    OrderStatus.DEACTIVATED: OrderEventType.CANCELLED,
    OrderStatus.REJECTED: OrderEventType.REJECTED,
    OrderStatus.FAILED: OrderEventType.REJECTED,
    OrderStatus.EXPIRED: OrderEventType.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class FillDelta:
    """What one event added: quantity, its average price, fee, and the execution if known."""

    qty: Decimal
    price: Decimal | None
    fee: Decimal
    exec_id: str | None = None
    is_maker: bool | None = None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A domain event; the shell enriches it into the messages.md §4 payload."""

    event_type: OrderEventType
    order: OrderState
    previous: OrderState
    fill: FillDelta | None = None
    #: for ``modified``: field -> (before, after) as exact strings (None = unset)
    modification: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "modification", MappingProxyType(dict(self.modification)))


class UpdateOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    ILLEGAL = "illegal"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class UpdateResult:
    state: OrderState
    events: tuple[OrderEvent, ...]
    outcome: UpdateOutcome
    reason: str = ""

    @property
    def applied(self) -> bool:
        return self.outcome is UpdateOutcome.APPLIED


# ---------------------------------------------------------------------------- transitions


def _base_status(state: OrderState) -> OrderStatus:
    if state.last_update is not None:
        return state.last_update.status
    return state.local_status


def _derive_status(state: OrderState) -> OrderStatus:
    """Visible status = f(last update or local status, executions)."""
    base = _base_status(state)
    if base is OrderStatus.FAILED and state.executions:
        base = OrderStatus.PENDING  # fills prove the order exists
    if base.is_terminal:
        return base
    filled = state.filled_qty
    if filled > 0 and state.qty > 0 and filled >= state.qty:
        return OrderStatus.FILLED
    if filled > 0 and base in (
        OrderStatus.SUBMITTING,
        OrderStatus.PENDING,
        OrderStatus.TRIGGERED,
        OrderStatus.UNTRIGGERED,
    ):
        return OrderStatus.PARTIALLY_FILLED
    return base


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


_MODIFIABLE = ("qty", "price", "take_profit", "stop_loss", "trigger_price")


def _events(before: OrderState, after: OrderState, fill_hint: Execution | None) -> list[OrderEvent]:
    events: list[OrderEvent] = []
    acknowledged = before.status in (OrderStatus.SUBMITTING, OrderStatus.FAILED)
    if (
        acknowledged
        and after.status != before.status
        and after.status not in (OrderStatus.REJECTED, OrderStatus.FAILED)
    ):
        events.append(OrderEvent(OrderEventType.CREATED, after, before))
    changes = {
        name: (_fmt(getattr(before, name)), _fmt(getattr(after, name)))
        for name in _MODIFIABLE
        if getattr(before, name) != getattr(after, name)
    }
    if changes and not acknowledged:
        events.append(OrderEvent(OrderEventType.MODIFIED, after, before, modification=changes))
    added = after.filled_qty - before.filled_qty
    fill = None
    if added > 0:
        if fill_hint is not None and fill_hint.exec_qty == added:
            fill = FillDelta(
                added,
                fill_hint.exec_price,
                fill_hint.exec_fee,
                fill_hint.exec_id,
                fill_hint.is_maker,
            )
        else:
            value = after.filled_value - before.filled_value
            fee = after.fees - before.fees
            fill = FillDelta(added, value / added if value > 0 else None, fee)
    status_event = _STATUS_EVENT.get(after.status)
    if after.status != before.status:
        if status_event is not None:
            events.append(OrderEvent(status_event, after, before, fill=fill))
        elif not acknowledged:
            events.append(
                OrderEvent(
                    OrderEventType.MODIFIED,
                    after,
                    before,
                    modification={"status": (before.status.value, after.status.value)},
                )
            )
    elif fill is not None and after.status is OrderStatus.PARTIALLY_FILLED:
        events.append(OrderEvent(OrderEventType.PARTIALLY_FILLED, after, before, fill=fill))
    return events


def _finish(before: OrderState, after: OrderState, hint: Execution | None = None) -> UpdateResult:
    after = replace(after, status=_derive_status(after))
    return UpdateResult(after, tuple(_events(before, after, hint)), UpdateOutcome.APPLIED)


def apply_update(state: OrderState, update: ExchangeOrderUpdate) -> UpdateResult:
    """Apply one exchange order object if it is newer and legal; never raises for bad order."""
    if not state.matches(update.order_id, update.order_link_id):
        return UpdateResult(state, (), UpdateOutcome.MISMATCH, "update is for another order")
    last = state.last_update
    if last is not None:
        if update.key == last.key:
            return UpdateResult(state, (), UpdateOutcome.DUPLICATE, "already applied")
        if update.key < last.key:
            return UpdateResult(state, (), UpdateOutcome.STALE, "older than the applied update")
        if update.cum_exec_qty < last.cum_exec_qty:
            return UpdateResult(
                state,
                (),
                UpdateOutcome.ILLEGAL,
                f"cumExecQty went down {last.cum_exec_qty} -> {update.cum_exec_qty}",
            )
    current = _base_status(state)
    target = update.status
    if target not in ALLOWED[current]:
        return UpdateResult(
            state, (), UpdateOutcome.ILLEGAL, f"illegal transition {current} -> {target}"
        )
    after = replace(
        state,
        order_id=update.order_id or state.order_id,
        last_update=update,
        qty=update.qty if update.qty > 0 else state.qty,
        price=update.price if update.order_type is OrderType.LIMIT else state.price,
        take_profit=update.take_profit,
        stop_loss=update.stop_loss,
        trigger_price=update.trigger_price,
        updated_at=max(update.updated_time, state.updated_at or update.updated_time),
    )
    if current.is_terminal and current is not OrderStatus.FAILED:
        # Same terminal status, newer timestamp (e.g. Bybit's duplicate Filled on a late
        # cancel): keep the newest object so the result is order-insensitive, emit nothing.
        return UpdateResult(replace(after, status=_derive_status(after)), (), UpdateOutcome.APPLIED)
    return _finish(state, after)


def apply_execution(state: OrderState, execution: Execution) -> UpdateResult:
    """Record one fill, unique by execId."""
    if not state.matches(execution.order_id, execution.order_link_id):
        return UpdateResult(state, (), UpdateOutcome.MISMATCH, "execution is for another order")
    if any(e.exec_id == execution.exec_id for e in state.executions):
        return UpdateResult(state, (), UpdateOutcome.DUPLICATE, "execId already recorded")
    if execution.exec_qty <= 0:
        return UpdateResult(state, (), UpdateOutcome.ILLEGAL, "execution without quantity")
    executions = tuple(
        sorted((*state.executions, execution), key=lambda e: (e.exec_time, e.exec_id))
    )
    after = replace(
        state,
        order_id=state.order_id or execution.order_id or None,
        executions=executions,
        updated_at=max(execution.exec_time, state.updated_at or execution.exec_time),
    )
    return _finish(state, after, execution)


def acknowledge(state: OrderState, order_id: str, now: datetime) -> UpdateResult:
    """REST create succeeded (retCode 0): the order exists; ``pending`` until events say more."""
    if state.local_status is not OrderStatus.SUBMITTING and state.order_id == order_id:
        return UpdateResult(state, (), UpdateOutcome.DUPLICATE, "already acknowledged")
    after = replace(
        state,
        order_id=order_id,
        local_status=OrderStatus.PENDING,
        updated_at=max(now, state.updated_at or now),
    )
    return _finish(state, after)


def mark_rejected(state: OrderState, code: str, message: str, now: datetime) -> UpdateResult:
    """The exchange refused the create call (e.g. 110007): terminal ``rejected``."""
    if state.last_update is not None or state.local_status is not OrderStatus.SUBMITTING:
        return UpdateResult(state, (), UpdateOutcome.ILLEGAL, f"cannot reject a {state.status}")
    after = replace(
        state,
        local_status=OrderStatus.REJECTED,
        reject_code=code,
        reject_message=message,
        updated_at=now,
    )
    return _finish(state, after)


def mark_failed(state: OrderState, reason: str, now: datetime) -> UpdateResult:
    """Retries exhausted and the exchange does not know the orderLinkId: ``failed``."""
    if state.last_update is not None or state.executions or state.status.is_terminal:
        return UpdateResult(state, (), UpdateOutcome.ILLEGAL, f"cannot fail a {state.status}")
    after = replace(state, local_status=OrderStatus.FAILED, reject_message=reason, updated_at=now)
    return _finish(state, after)
