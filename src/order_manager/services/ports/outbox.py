"""Port: the transactional outbox.

Every state change that other services must hear about writes its event row with
`add_event(...)` on the SAME unit of work as the change itself, so the change and its event are
committed together or not at all::

    async with uow_factory() as uow:
        ...  # change orders / positions / signals
        event_id = await uow.outbox.add_event(
            topic=ORDER_EVENTS_TOPIC,
            event_type="filled",
            aggregate_type=AGGREGATE_ORDER,
            aggregate_id=str(order_uuid),
            payload=events.order_event_payload(...),
            trace_id=trace_id,
            is_dry_run=False,
        )
        await uow.commit()

`add_event` assigns the aggregate's next `sequence` (1, 2, 3, ... per `(aggregate_type,
aggregate_id)`; concurrent writers for one aggregate are serialised inside the database, so the
sequence has no gaps or duplicates) and writes `event_id`, `sequence` and `timestamp` into the
stored payload, so the published JSON and the row always agree.

`topic` is the RabbitMQ routing key (the queue name on the default exchange):
`ORDER_EVENTS_TOPIC` or `POSITION_EVENTS_TOPIC`.

The relay side (`fetch_unpublished`, `mark_published`, `record_failure`) is used by
`services.outbox_relay`; `OutboxNotifications` is the LISTEN/NOTIFY wake-up it waits on.
`prune_published` is the retention's (`services.outbox_retention`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

ORDER_EVENTS_TOPIC = "order-manager.order_events"
POSITION_EVENTS_TOPIC = "order-manager.position_events"

AGGREGATE_ORDER = "order"
AGGREGATE_SIGNAL = "signal"
AGGREGATE_POSITION = "position"


def position_aggregate_id(category: str, symbol: str, position_idx: int, is_dry_run: bool) -> str:
    """Aggregate id of one position book (the key of the `positions` table)."""
    return f"{category}:{symbol}:{position_idx}:{'dry' if is_dry_run else 'live'}"


class OutboxRecord(Protocol):
    """One stored event as the relay reads it."""

    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> UUID: ...
    @property
    def topic(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def aggregate_type(self) -> str: ...
    @property
    def aggregate_id(self) -> str | None: ...
    @property
    def sequence(self) -> int | None: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def trace_id(self) -> str | None: ...
    @property
    def is_dry_run(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def attempts(self) -> int: ...


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An event built before its change is written (``EventWriter`` of ``events.EventQueue``),
    handed to a repository method that stores the change and its events in one statement."""

    event_id: UUID
    topic: str
    event_type: str
    aggregate_type: str
    aggregate_id: str | None
    payload: Mapping[str, Any]
    trace_id: str | None
    is_dry_run: bool


class EventWriter(Protocol):
    """Where the `services.events` publishers write: the outbox of a unit of work, or an
    in-memory queue (`events.EventQueue`)."""

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
        """Insert one event in the current transaction and return its `event_id`.

        With an `aggregate_id` the event gets the aggregate's next sequence (from 1); without
        one, `sequence` is null. `payload` is copied; `event_id`, `sequence`, `timestamp` (ISO
        UTC), `trace_id` and `event_type` are set in the stored copy."""
        ...


class PruneStep(Protocol):
    """What one retention step did (adapters return their own dataclass)."""

    @property
    def examined(self) -> int: ...  # old published rows looked at

    @property
    def deleted(self) -> int: ...

    @property
    def last_id(self) -> int | None: ...  # highest id looked at (None: nothing old)

    @property
    def more(self) -> bool: ...  # the window was all old rows: the next step may find more


class OutboxRepository(EventWriter, Protocol):
    """Repository bound to the current transaction (see `ports.uow.UnitOfWork`)."""

    async def claim_relay(self) -> bool:
        """Take the relay's transaction-scoped lock; False when another relay holds it.

        Only one relay publishes at a time, which keeps the per-aggregate order global."""
        ...

    async def fetch_unpublished(self, limit: int) -> Sequence[OutboxRecord]:
        """Unpublished events, oldest first (id order = per-aggregate sequence order). Also
        claims the relay lock for the transaction: empty when another relay holds it."""
        ...

    async def mark_published(self, ids: Sequence[int], published_at: datetime) -> None:
        """Record that these rows were confirmed by the broker."""
        ...

    async def record_failure(self, ids: Sequence[int], error: str) -> None:
        """Count a failed publish attempt on these rows and keep the last error."""
        ...

    async def prune_published(
        self, *, after_id: int, published_before: datetime, window: int
    ) -> PruneStep:
        """One step of the retention pass: look at the next ``window`` rows after ``after_id``
        (id order) up to the first one that is unpublished or published at/after
        ``published_before``; delete those of them that are not their aggregate's newest row
        (the next event of an aggregate is numbered from its newest row, which is kept)."""
        ...

    async def last_sequence(self, aggregate_type: str, aggregate_id: str) -> int:
        """The aggregate's highest assigned sequence (0 when it has none)."""
        ...


class OutboxNotifications(Protocol):
    """Wake-up signal for the relay (PostgreSQL LISTEN on channel `outbox`)."""

    async def start(self) -> None: ...

    async def wait(self, max_wait: float) -> bool:
        """Return True as soon as an outbox insert was notified, False after `max_wait` s."""
        ...

    async def close(self) -> None: ...
