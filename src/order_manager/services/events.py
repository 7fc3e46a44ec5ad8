"""Builders of the published event payloads (shared/design/messages.md §4).

The domain produces bare facts (`OrderEvent`, `Position`, `Rejection`); these functions turn
them into the enriched JSON objects other services consume. They are pure: no clock, no I/O.
Every builder returns a plain dict whose Decimal values are already exact JSON strings (plain
notation, never exponent, never float). The outbox fills `event_id`, `sequence`, `timestamp`,
`trace_id` and `event_type` when the event is stored (`OutboxRepository.add_event`), so
builders leave them out.

Shapes:

- order events (`created`, `modified`, `partially_filled`, `filled`, `cancelled`, `rejected`,
  `expired`): `order_event_payload(event, context, market=..., signal=...)` ->
  `{schema_version, is_dry_run, order, execution_details, market_conditions, signal,
  rejection_reason, modification}`;
- `signal_rejected`: `signal_rejected_payload(rejection, signal=..., is_dry_run=...)`
  (``order`` is null, so the dry-run flag is carried at the top level of the body; every event
  on `order-manager.order_events` has a top-level ``is_dry_run``, not only the AMQP header
  ``x-om-dry-run``);
- ``signal`` (`SignalSummary`): `{signal_id, strategy_id, confidence, amount, is_warmup}`;
- `position_updated`: `position_updated_payload(position, is_dry_run=..., source=...)`.

Publishing them: `publish_order_event(uow.outbox, ...)`, `publish_signal_rejected(...)`,
`publish_position_updated(...)` wrap `add_event` with the right topic, aggregate and type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from order_manager.domain.market import MarketSnapshot
from order_manager.domain.orders import OrderEvent, OrderEventType, OrderState
from order_manager.domain.positions import Position
from order_manager.domain.rejections import Rejection
from order_manager.domain.signals import SignalMarketData, TradingSignal
from order_manager.services.ports.outbox import (
    AGGREGATE_ORDER,
    AGGREGATE_POSITION,
    AGGREGATE_SIGNAL,
    ORDER_EVENTS_TOPIC,
    POSITION_EVENTS_TOPIC,
    EventWriter,
    QueuedEvent,
    position_aggregate_id,
)

SCHEMA_VERSION = 1
SIGNAL_REJECTED = "signal_rejected"
POSITION_UPDATED = "position_updated"
_PERCENT = Decimal("0.01")


def dec(value: Decimal | None) -> str | None:
    """Exact JSON string for a Decimal (plain notation, no exponent); None stays None."""
    if value is None:
        return None
    if not value.is_finite():
        raise ValueError(f"cannot publish non-finite decimal {value}")
    if value.is_zero() and value.is_signed():
        value = -value
    return format(value, "f")


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with `Z`; None stays None. Naive datetimes are refused."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------- context pieces


@dataclass(frozen=True, slots=True)
class OrderContext:
    """What the order row knows beyond the domain `OrderState`."""

    order_uuid: UUID | str
    signal_id: str | None = None
    is_dry_run: bool = False
    fee_currency: str | None = None
    #: when the REST create was sent (latency reference); falls back to the state's created_at
    submitted_at: datetime | None = None
    #: placed outside this service (adopted from exchange events)
    is_external: bool = False


@dataclass(frozen=True, slots=True)
class MarketConditions:
    mid_price: Decimal | None
    spread: Decimal | None
    source: str  # orderbook | ticker | signal

    @classmethod
    def from_snapshot(cls, snapshot: MarketSnapshot) -> MarketConditions:
        return cls(snapshot.mid, snapshot.spread, snapshot.source)

    @classmethod
    def from_signal(cls, data: SignalMarketData) -> MarketConditions:
        return cls(data.price, data.spread, "signal")

    def as_dict(self) -> dict[str, Any]:
        return {"mid_price": dec(self.mid_price), "spread": dec(self.spread), "source": self.source}


@dataclass(frozen=True, slots=True)
class SignalSummary:
    """The `signal` object of an event: which signal caused it, and whether it was a warm-up
    signal (messages.md §1 `is_warmup`), so consumers can report warm-up trading separately."""

    signal_id: str
    strategy_id: str | None = None
    confidence: Decimal | None = None
    amount: Decimal | None = None
    is_warmup: bool = False

    @classmethod
    def from_signal(cls, signal: TradingSignal) -> SignalSummary:
        return cls(
            signal.signal_id,
            signal.strategy_id,
            signal.confidence,
            signal.amount,
            is_warmup=signal.is_warmup,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal_id": self.signal_id,
            "strategy_id": self.strategy_id,
            # confidence is a ratio, published as a number like the existing service does
            "confidence": float(self.confidence) if self.confidence is not None else None,
            "amount": dec(self.amount),
            "is_warmup": self.is_warmup,
        }


# ---------------------------------------------------------------------------- order events


def _fee_currency(state: OrderState, context: OrderContext) -> str | None:
    for execution in reversed(state.executions):
        if execution.fee_currency:
            return execution.fee_currency
    return context.fee_currency


def _executed_at(state: OrderState) -> datetime | None:
    if state.executions:
        return state.executions[-1].exec_time
    if state.filled_qty > 0 and state.last_update is not None:
        return state.last_update.updated_time
    return None


def order_payload(state: OrderState, context: OrderContext) -> dict[str, Any]:
    """The `order` object of an order event (field names kept from the existing service)."""
    return {
        "id": str(context.order_uuid),
        "order_id": state.order_id,
        "order_link_id": state.order_link_id,
        "signal_id": context.signal_id,
        "asset": state.symbol,
        "category": state.category.value,
        "side": state.side.value,
        "order_type": state.order_type.value,
        "time_in_force": state.time_in_force.value if state.time_in_force else None,
        "quantity": dec(state.qty),
        "price": dec(state.price),
        "status": state.status.value,
        "filled_quantity": dec(state.filled_qty),
        "average_price": dec(state.average_price),
        "fees": dec(state.fees),
        "fee_currency": _fee_currency(state, context),
        "reduce_only": state.reduce_only,
        "position_idx": int(state.position_idx),
        "take_profit": dec(state.take_profit),
        "stop_loss": dec(state.stop_loss),
        "created_at": iso(state.created_at),
        "updated_at": iso(state.updated_at),
        "executed_at": iso(_executed_at(state)),
        "is_dry_run": context.is_dry_run,
        "is_external": context.is_external,
    }


def _fill_time(event: OrderEvent) -> datetime | None:
    fill = event.fill
    if fill is not None and fill.exec_id is not None:
        for execution in event.order.executions:
            if execution.exec_id == fill.exec_id:
                return execution.exec_time
    return _executed_at(event.order) if fill is not None else None


def execution_details(event: OrderEvent, context: OrderContext) -> dict[str, Any]:
    """Fill figures: the last fill (null when the event added none), progress, latency."""
    state, fill = event.order, event.fill
    latency: float | None = None
    fill_time = _fill_time(event)
    start = context.submitted_at or state.created_at
    if fill_time is not None and start is not None:
        latency = max(0.0, (fill_time - start).total_seconds())
    return {
        "last_fill_qty": dec(fill.qty) if fill else None,
        "last_fill_price": dec(fill.price) if fill else None,
        "last_fill_fee": dec(fill.fee) if fill else None,
        "exec_id": fill.exec_id if fill else None,
        "is_maker": fill.is_maker if fill else None,
        "fill_percentage": dec(state.fill_percentage.quantize(_PERCENT)),
        "remaining_quantity": dec(state.remaining_qty),
        "execution_latency_seconds": latency,
    }


def _rejection_reason(event: OrderEvent) -> dict[str, Any] | None:
    if event.event_type not in (OrderEventType.REJECTED, OrderEventType.EXPIRED):
        return None
    state = event.order
    update = state.last_update
    code = state.reject_code or (update.reject_reason if update else None) or "rejected"
    message = state.reject_message or (update.reject_reason if update else "") or code
    details: dict[str, str] = {}
    if update is not None:
        details["exchange_status"] = update.bybit_status.value
        if update.cancel_type:
            details["cancel_type"] = update.cancel_type
    return {"code": code, "message": message, "details": details}


def _modification(event: OrderEvent) -> dict[str, Any] | None:
    if event.event_type is not OrderEventType.MODIFIED or not event.modification:
        return None
    return {
        "before": {name: before for name, (before, _) in event.modification.items()},
        "after": {name: after for name, (_, after) in event.modification.items()},
    }


def order_event_payload(
    event: OrderEvent,
    context: OrderContext,
    *,
    market: MarketConditions | None = None,
    signal: SignalSummary | None = None,
) -> dict[str, Any]:
    """messages.md §4 payload for one domain `OrderEvent` (without the outbox-filled keys)."""
    return {
        "event_type": event.event_type.value,
        "schema_version": SCHEMA_VERSION,
        "is_dry_run": context.is_dry_run,
        "order": order_payload(event.order, context),
        "execution_details": execution_details(event, context),
        "market_conditions": market.as_dict() if market else None,
        "signal": signal.as_dict() if signal else None,
        "rejection_reason": _rejection_reason(event),
        "modification": _modification(event),
    }


def signal_rejected_payload(
    rejection: Rejection,
    *,
    signal: SignalSummary | None = None,
    market: MarketConditions | None = None,
    is_dry_run: bool = False,
) -> dict[str, Any]:
    """`signal_rejected`: no order reached the exchange; `order` is null, so `is_dry_run`
    (the signal was handled by the paper path) is a top-level field."""
    return {
        "event_type": SIGNAL_REJECTED,
        "schema_version": SCHEMA_VERSION,
        "is_dry_run": is_dry_run,
        "order": None,
        "execution_details": None,
        "market_conditions": market.as_dict() if market else None,
        "signal": signal.as_dict() if signal else None,
        "rejection_reason": rejection.as_dict(),
        "modification": None,
    }


# ---------------------------------------------------------------------------- positions


def position_payload(position: Position, *, is_dry_run: bool) -> dict[str, Any]:
    side = position.side
    return {
        "asset": position.symbol,
        "category": position.category.value,
        "side": side.value if side else "None",
        "size": dec(position.abs_size),
        "average_entry_price": dec(position.avg_entry_price),
        "realized_pnl": dec(position.realized_pnl),
        "unrealized_pnl": dec(position.unrealized_pnl()),
        "fees": dec(position.fees),
        "mark_price": dec(position.mark_price),
        "position_idx": int(position.position_idx),
        "is_dry_run": is_dry_run,
    }


def position_updated_payload(
    position: Position, *, is_dry_run: bool, source: str = "execution"
) -> dict[str, Any]:
    """`position_updated` on `order-manager.position_events`; `source` says what changed it
    (`execution`, `exchange`, `validation`, `mark`)."""
    return {
        "event_type": POSITION_UPDATED,
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "position": position_payload(position, is_dry_run=is_dry_run),
    }


# ---------------------------------------------------------------------------- writing them


async def publish_order_event(
    outbox: EventWriter,
    event: OrderEvent,
    context: OrderContext,
    *,
    trace_id: str | None,
    market: MarketConditions | None = None,
    signal: SignalSummary | None = None,
) -> UUID:
    """Store one order event in the caller's transaction (aggregate = the order's uuid)."""
    return await outbox.add_event(
        topic=ORDER_EVENTS_TOPIC,
        event_type=event.event_type.value,
        aggregate_type=AGGREGATE_ORDER,
        aggregate_id=str(context.order_uuid),
        payload=order_event_payload(event, context, market=market, signal=signal),
        trace_id=trace_id,
        is_dry_run=context.is_dry_run,
    )


async def publish_signal_rejected(
    outbox: EventWriter,
    signal_id: str,
    rejection: Rejection,
    *,
    trace_id: str | None,
    is_dry_run: bool = False,
    signal: SignalSummary | None = None,
    market: MarketConditions | None = None,
) -> UUID:
    """Store a `signal_rejected` event (aggregate = the signal)."""
    summary = signal or SignalSummary(signal_id)
    return await outbox.add_event(
        topic=ORDER_EVENTS_TOPIC,
        event_type=SIGNAL_REJECTED,
        aggregate_type=AGGREGATE_SIGNAL,
        aggregate_id=signal_id,
        payload=signal_rejected_payload(
            rejection, signal=summary, market=market, is_dry_run=is_dry_run
        ),
        trace_id=trace_id,
        is_dry_run=is_dry_run,
    )


async def publish_position_updated(
    outbox: EventWriter,
    position: Position,
    *,
    is_dry_run: bool,
    trace_id: str | None,
    source: str = "execution",
) -> UUID:
    """Store a `position_updated` event (aggregate = the position book)."""
    return await outbox.add_event(
        topic=POSITION_EVENTS_TOPIC,
        event_type=POSITION_UPDATED,
        aggregate_type=AGGREGATE_POSITION,
        aggregate_id=position_aggregate_id(
            position.category.value, position.symbol, int(position.position_idx), is_dry_run
        ),
        payload=position_updated_payload(position, is_dry_run=is_dry_run, source=source),
        trace_id=trace_id,
        is_dry_run=is_dry_run,
    )


class EventQueue:
    """An ``EventWriter`` that keeps the events in memory, in order — for a change written
    together with its events in ONE statement (``OrderRepository.answer_untouched``); the
    events exist only if that statement writes them."""

    def __init__(self) -> None:
        self.events: list[QueuedEvent] = []

    async def add_event(
        self,
        *,
        topic: str,
        event_type: str,
        aggregate_type: str,
        aggregate_id: str | None,
        payload: Mapping[str, Any],
        trace_id: str | None,
        is_dry_run: bool,
    ) -> UUID:
        event = QueuedEvent(
            uuid4(),
            topic,
            event_type,
            aggregate_type,
            aggregate_id,
            dict(payload),
            trace_id,
            is_dry_run,
        )
        self.events.append(event)
        return event.event_id


def payload_decimal(payload: Mapping[str, Any], *path: str) -> Decimal | None:
    """Read back an exact Decimal from a payload (`payload_decimal(p, "order", "fees")`)."""
    node: Any = payload
    for key in path:
        node = node[key]
    return None if node is None else Decimal(node)
