"""PostgreSQL `OperatorLog`: rows of `audit_log` with kind `operator` (details in `request`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg


class PgOperatorLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, action: str, details: Mapping[str, Any]) -> datetime:
        async with self._pool.acquire() as conn:
            at = await conn.fetchval(
                "INSERT INTO audit_log (kind, action, entity_type, request)"
                " VALUES ('operator', $1, 'operator', $2) RETURNING occurred_at",
                action,
                dict(details),
            )
        assert isinstance(at, datetime)
        return at

    async def latest(
        self, actions: Sequence[str]
    ) -> tuple[str, Mapping[str, Any], datetime] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT action, request, occurred_at FROM audit_log"
                " WHERE kind = 'operator' AND action = ANY($1::text[])"
                " ORDER BY occurred_at DESC, id DESC LIMIT 1",
                list(actions),
            )
        if row is None:
            return None
        details = row["request"] if isinstance(row["request"], Mapping) else {}
        return str(row["action"]), details, row["occurred_at"]
