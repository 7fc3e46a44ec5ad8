"""PostgreSQL implementation of the outbox port (`order_manager.services.ports.outbox`).

Sequence assignment (one round trip: the SQL function `om_outbox_add` of revision 0004): a
transaction-scoped advisory lock keyed by the aggregate serialises the writers of one aggregate,
then the next sequence is `max(sequence) + 1` read through the unique index
`outbox_aggregate_sequence_idx`; `event_id`, `event_type`, `sequence`, `timestamp` (ISO UTC,
microseconds, `Z`) and `trace_id` are written into the stored payload by the same function.
The lock is held until the writer's transaction ends, so a second writer of the same aggregate
sees the first one's row (or its absence after a rollback): no duplicate, no gap. Because the
row's `id` is taken after the lock too, id order within one aggregate equals sequence order,
which is what lets the relay publish in plain id order.

Batching: `add_event` only queues the event (its `event_id` is generated here, so the caller
has it at once); `flush` writes the queue with one `om_outbox_add_many` call (revision 0003),
together with the transaction's queued audit rows, just before the unit of work commits; any
outbox read in the same transaction flushes first. One round trip per transaction instead of
one per event, same rows, same order, same atomicity: a rollback drops the queue together with
everything else.

The relay claims a different transaction-scoped advisory lock (inside `fetch_unpublished`), so
at most one relay publishes at any moment (several service instances may run one each).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from order_manager.adapters.postgres.orders_repo import AUDIT_INSERT
from order_manager.adapters.postgres.outbox_rows import AGGREGATE_LOCK_NS, outbox_row

# Advisory lock key of the relay (the aggregates' namespace: `outbox_rows.AGGREGATE_LOCK_NS`).
_RELAY_LOCK_KEY = 0x0B0D0001


#: One retention step ($1 after this id, $2 published before, $3 window): the window's rows
#: up to the first one still unpublished or too young are "old"; of those, a row whose
#: aggregate has a newer row goes (its sequence is no longer the one the next event is
#: numbered from), as does a row of no aggregate. The EXISTS reads the statement's snapshot,
#: so rows deleted by this statement still count as newer rows.
_PRUNE_SQL = """
WITH win AS (
    SELECT id, aggregate_type, aggregate_id, sequence,
           published_at IS NOT NULL AND published_at < $2 AS old
    FROM outbox WHERE id > $1 ORDER BY id LIMIT $3
), edge AS (
    SELECT min(id) AS young FROM win WHERE NOT old
), batch AS (
    SELECT win.* FROM win, edge WHERE win.old AND (edge.young IS NULL OR win.id < edge.young)
), doomed AS (
    SELECT b.id FROM batch b
    WHERE b.aggregate_id IS NULL OR b.sequence IS NULL OR EXISTS (
        SELECT 1 FROM outbox n
        WHERE n.aggregate_type = b.aggregate_type AND n.aggregate_id = b.aggregate_id
          AND n.sequence > b.sequence
          AND n.aggregate_id IS NOT NULL AND n.sequence IS NOT NULL)
), gone AS (
    DELETE FROM outbox WHERE id IN (SELECT id FROM doomed) RETURNING id
)
SELECT (SELECT count(*) FROM batch)::int AS examined,
       (SELECT count(*) FROM gone)::int AS deleted,
       (SELECT max(id) FROM batch) AS last_id,
       (SELECT young FROM edge) IS NULL AND (SELECT count(*) FROM win) = $3 AS more
"""


@dataclass(frozen=True, slots=True)
class PgPruneStep:
    """One retention step's result (structurally a `PruneStep`)."""

    examined: int
    deleted: int
    last_id: int | None
    more: bool


@dataclass(frozen=True, slots=True)
class _Event:
    """One event queued by `add_event` (structurally an `outbox_rows.QueuedEvent`)."""

    event_id: UUID
    topic: str
    event_type: str
    aggregate_type: str
    aggregate_id: str | None
    payload: Mapping[str, Any]
    trace_id: str | None
    is_dry_run: bool


@dataclass(frozen=True, slots=True)
class PgOutboxRecord:
    """One `outbox` row (structurally an `OutboxRecord`)."""

    id: int
    event_id: UUID
    topic: str
    event_type: str
    aggregate_type: str
    aggregate_id: str | None
    sequence: int | None
    payload: Mapping[str, Any]
    trace_id: str | None
    is_dry_run: bool
    created_at: datetime
    attempts: int


#: the transaction's queued audit rows ($1) and outbox events ($2), one statement
_WRITE_QUEUED = f"WITH audit AS ({AUDIT_INSERT}) SELECT om_outbox_add_many($2::jsonb, $3)"


class PgOutboxRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection, *, in_transaction: bool = True) -> None:
        self._conn = conn
        self._in_transaction = in_transaction
        self._pending: list[list[Any]] = []

    @property
    def pending(self) -> int:
        """Events queued for this transaction and not yet written."""
        return len(self._pending)

    async def flush(self, audit: Sequence[Mapping[str, object]] = ()) -> None:
        """Write the queued events in the order they were added — with the unit of work's
        queued audit rows when it commits — in ONE statement."""
        if not self._pending and not audit:
            return
        events, self._pending = self._pending, []
        await self._conn.fetchval(_WRITE_QUEUED, list(audit), events, AGGREGATE_LOCK_NS)

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
        if not self._in_transaction:
            raise RuntimeError(
                "an outbox event must commit with its change: use a unit of work with atomic=True"
            )
        event = _Event(
            uuid.uuid4(),
            topic,
            event_type,
            aggregate_type,
            aggregate_id,
            payload,
            trace_id,
            is_dry_run,
        )
        self._pending.append(outbox_row(event))
        return event.event_id

    async def last_sequence(self, aggregate_type: str, aggregate_id: str) -> int:
        await self.flush()
        value = await self._conn.fetchval(
            """
            SELECT max(sequence) FROM outbox
            WHERE aggregate_type = $1 AND aggregate_id = $2
              AND aggregate_id IS NOT NULL AND sequence IS NOT NULL
            """,
            aggregate_type,
            aggregate_id,
        )
        return int(value or 0)

    async def claim_relay(self) -> bool:
        return bool(
            await self._conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK_KEY)
        )

    async def fetch_unpublished(self, limit: int) -> list[PgOutboxRecord]:
        """Oldest unpublished rows; claims the relay lock in the same round trip (no rows when
        another relay holds it)."""
        await self.flush()
        rows = await self._conn.fetch(
            """
            SELECT id, event_id, topic, event_type, aggregate_type, aggregate_id, sequence,
                   payload, trace_id, is_dry_run, created_at, attempts
            FROM outbox WHERE published_at IS NULL AND pg_try_advisory_xact_lock($2)
            ORDER BY id LIMIT $1
            """,
            limit,
            _RELAY_LOCK_KEY,
        )
        return [PgOutboxRecord(**dict(row)) for row in rows]

    async def mark_published(self, ids: Sequence[int], published_at: datetime) -> None:
        if ids:
            await self._conn.execute(
                "UPDATE outbox SET published_at = $2, attempts = attempts + 1, last_error = NULL"
                " WHERE id = ANY($1::bigint[])",
                list(ids),
                published_at,
            )

    async def prune_published(
        self, *, after_id: int, published_before: datetime, window: int
    ) -> PgPruneStep:
        row = await self._conn.fetchrow(_PRUNE_SQL, after_id, published_before, window)
        assert row is not None
        return PgPruneStep(row["examined"], row["deleted"], row["last_id"], row["more"])

    async def record_failure(self, ids: Sequence[int], error: str) -> None:
        if ids:
            await self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2"
                " WHERE id = ANY($1::bigint[])",
                list(ids),
                error[:2000],
            )
