"""PostgreSQL implementation of the signals port (`order_manager.services.ports.signals`).

The signal's message is stored verbatim in ``raw`` (jsonb cast from the original text, so
numbers keep their exact digits); the parsed fields go to their own columns for queries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from order_manager.domain.signals import TradingSignal

_FINAL = ("executed", "rejected")
# jsonb cannot hold NUL characters; such a body is kept as a JSON string instead.
_NUL_ESCAPE = re.compile(r"\\u0000", re.IGNORECASE)


# A new signal is inserted directly as `processing` (attempts 1): `received` only exists inside
# the claiming transaction, which also moves it on. An existing row is locked; unless its outcome
# is final it goes back to `processing` with attempts + 1 (a retry after `failed`, or a resume
# after a crash left it `processing`).
_CLAIM = """
WITH existing AS (
    SELECT status, attempts FROM signals WHERE signal_id = $1 FOR UPDATE
),
inserted AS (
    INSERT INTO signals (signal_id, status, symbol, signal_type, strategy_id, amount,
        amount_unit, confidence, signal_timestamp, is_warmup, is_dry_run, raw, trace_id,
        attempts)
    SELECT $1, 'processing', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::jsonb, $12, 1
     WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (signal_id) DO NOTHING
    RETURNING status, attempts
),
resumed AS (
    UPDATE signals
       SET status = 'processing', attempts = signals.attempts + 1, trace_id = $12,
           is_dry_run = $10, completed_at = NULL
     WHERE signal_id = $1
       AND EXISTS (SELECT 1 FROM existing WHERE status NOT IN ('executed', 'rejected'))
    RETURNING status, attempts
)
SELECT (SELECT status FROM existing) AS previous_status,
       COALESCE((SELECT status FROM resumed), (SELECT status FROM inserted),
                (SELECT status FROM existing)) AS status,
       COALESCE((SELECT attempts FROM resumed), (SELECT attempts FROM inserted),
                (SELECT attempts FROM existing)) AS attempts
"""


@dataclass(frozen=True, slots=True)
class PgSignalClaim:
    previous_status: str | None
    status: str
    attempts: int

    @property
    def is_duplicate(self) -> bool:
        return self.previous_status in _FINAL


def _jsonb_text(raw_body: str) -> str:
    if _NUL_ESCAPE.search(raw_body) or "\x00" in raw_body:
        return json.dumps({"unstorable_body": raw_body.replace("\x00", "")})
    return raw_body


class PgSignalRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self._conn = conn

    async def claim(
        self, signal: TradingSignal, *, raw_body: str, trace_id: str, is_dry_run: bool
    ) -> PgSignalClaim:
        """One round trip: lock the existing row, or insert a new one, or move it on."""
        for _ in range(2):
            row = await self._conn.fetchrow(
                _CLAIM,
                signal.signal_id,
                signal.asset,
                signal.signal_type.value,
                signal.strategy_id,
                signal.amount,
                None if signal.amount_unit is None else signal.amount_unit.value,
                signal.confidence,
                signal.timestamp,
                signal.is_warmup,
                is_dry_run,
                _jsonb_text(raw_body),
                trace_id,
            )
            assert row is not None  # the SELECT always yields one row
            if row["status"] is not None:
                return PgSignalClaim(row["previous_status"], row["status"], row["attempts"])
            # Another transaction inserted the same signal_id between our lock attempt and our
            # insert (ON CONFLICT DO NOTHING): it has committed by now, so a second pass sees it.
        raise RuntimeError(f"signal {signal.signal_id} could not be claimed")

    async def finish(
        self,
        signal_id: str,
        *,
        status: str,
        reason_code: str | None = None,
        reason_message: str | None = None,
        is_dry_run: bool | None = None,
    ) -> None:
        result = await self._conn.execute(
            """
            UPDATE signals
               SET status = $2, reason_code = $3, reason_message = $4,
                   is_dry_run = COALESCE($5, is_dry_run), completed_at = now()
             WHERE signal_id = $1
            """,
            signal_id,
            status,
            reason_code,
            reason_message,
            is_dry_run,
        )
        if result != "UPDATE 1":
            raise LookupError(f"signal {signal_id} has no row to finish")

    async def record_malformed(
        self,
        signal_id: str,
        *,
        raw_body: str,
        reason_code: str,
        reason_message: str,
        trace_id: str,
    ) -> bool:
        inserted = await self._conn.fetchval(
            """
            INSERT INTO signals (signal_id, status, raw, reason_code, reason_message, trace_id,
                                 completed_at)
            VALUES ($1, 'rejected', $2::text::jsonb, $3, $4, $5, now())
            ON CONFLICT (signal_id) DO NOTHING
            RETURNING true
            """,
            signal_id,
            _jsonb_text(raw_body),
            reason_code,
            reason_message,
            trace_id,
        )
        return bool(inserted)

    async def status_of(self, signal_id: str) -> str | None:
        status = await self._conn.fetchval(
            "SELECT status FROM signals WHERE signal_id = $1", signal_id
        )
        return None if status is None else str(status)

    async def finished_at(self, signal_id: str) -> datetime | None:
        finished: datetime | None = await self._conn.fetchval(
            "SELECT completed_at FROM signals WHERE signal_id = $1 "
            "AND status NOT IN ('received', 'processing') FOR SHARE",
            signal_id,
        )
        return finished


class PgSignalStore:
    """``SignalStore``: each call takes a pooled connection and runs one autocommitted statement
    (the claim is a single statement, so it is atomic without an explicit transaction)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(
        self, signal: TradingSignal, *, raw_body: str, trace_id: str, is_dry_run: bool
    ) -> PgSignalClaim:
        async with self._pool.acquire() as conn:
            return await PgSignalRepository(conn).claim(
                signal, raw_body=raw_body, trace_id=trace_id, is_dry_run=is_dry_run
            )

    async def finish(
        self,
        signal_id: str,
        *,
        status: str,
        reason_code: str | None = None,
        reason_message: str | None = None,
        is_dry_run: bool | None = None,
    ) -> None:
        async with self._pool.acquire() as conn:
            await PgSignalRepository(conn).finish(
                signal_id,
                status=status,
                reason_code=reason_code,
                reason_message=reason_message,
                is_dry_run=is_dry_run,
            )
