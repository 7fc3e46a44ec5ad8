"""PostgreSQL implementation of the outbox port (`order_manager.services.ports.outbox`).

Sequence assignment: a transaction-scoped advisory lock keyed by the aggregate serialises the
writers of one aggregate, then the next sequence is `max(sequence) + 1` read through the unique
index `outbox_aggregate_sequence_idx`. The lock is held until the writer's transaction ends, so a
second writer of the same aggregate sees the first one's row (or its absence after a rollback):
no duplicate, no gap. Because the row's `id` is taken after the lock too, id order within one
aggregate equals sequence order, which is what lets the relay publish in plain id order.

The relay claims a different transaction-scoped advisory lock, so at most one relay publishes at
any moment (several service instances may run one each).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

# Advisory lock namespaces (first key of the two-int form).
_AGGREGATE_LOCK_NS = 0x0B0C
_RELAY_LOCK_KEY = 0x0B0D0001


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


def iso_utc(moment: datetime) -> str:
    """`2026-11-23T10:15:31.004000Z`: ISO 8601 in UTC with a `Z` suffix."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class PgOutboxRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

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
        if not topic:
            raise ValueError("outbox event needs a topic")
        if not event_type:
            raise ValueError("outbox event needs an event_type")
        sequence: int | None = None
        if aggregate_id is not None:
            await self._conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                _AGGREGATE_LOCK_NS,
                f"{aggregate_type}/{aggregate_id}",
            )
            sequence = await self.last_sequence(aggregate_type, aggregate_id) + 1
        event_id = uuid.uuid4()
        now = await self._conn.fetchval("SELECT clock_timestamp()")
        body = dict(payload)
        body["event_id"] = str(event_id)
        body["event_type"] = event_type
        body["sequence"] = sequence
        body["timestamp"] = iso_utc(now)
        body["trace_id"] = trace_id
        await self._conn.execute(
            """
            INSERT INTO outbox (event_id, topic, event_type, aggregate_type, aggregate_id,
                                sequence, payload, trace_id, is_dry_run, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            """,
            event_id,
            topic,
            event_type,
            aggregate_type,
            aggregate_id,
            sequence,
            body,
            trace_id,
            is_dry_run,
            now,
        )
        return event_id

    async def last_sequence(self, aggregate_type: str, aggregate_id: str) -> int:
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
        rows = await self._conn.fetch(
            """
            SELECT id, event_id, topic, event_type, aggregate_type, aggregate_id, sequence,
                   payload, trace_id, is_dry_run, created_at, attempts
            FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1
            """,
            limit,
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

    async def record_failure(self, ids: Sequence[int], error: str) -> None:
        if ids:
            await self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2"
                " WHERE id = ANY($1::bigint[])",
                list(ids),
                error[:2000],
            )
