"""How an outbox event travels to ``om_outbox_add_many`` (revision 0003), shared by the outbox
repository (a transaction's queued events) and the orders repository (an executor answer
written with its events in one statement)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID


class QueuedEvent(Protocol):
    """An event built before its change was written (the port's ``QueuedEvent``)."""

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
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def trace_id(self) -> str | None: ...
    @property
    def is_dry_run(self) -> bool: ...


#: advisory lock namespace of the per-aggregate sequence (first key of the two-int form)
AGGREGATE_LOCK_NS = 0x0B0C


def outbox_row(event: QueuedEvent) -> list[object]:
    """``[event_id, topic, event_type, aggregate_type, aggregate_id, payload, trace_id,
    is_dry_run]``: one element of ``om_outbox_add_many``'s JSON array."""
    if not event.topic:
        raise ValueError("outbox event needs a topic")
    if not event.event_type:
        raise ValueError("outbox event needs an event_type")
    return [
        str(event.event_id),
        event.topic,
        event.event_type,
        event.aggregate_type,
        event.aggregate_id,
        dict(event.payload),
        event.trace_id,
        event.is_dry_run,
    ]
