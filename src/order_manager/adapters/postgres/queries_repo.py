"""PostgreSQL read side for the REST API (`order_manager.services.ports.queries.ReadQueries`).

Every query runs on its own pooled connection outside any explicit transaction: no row locks,
committed data only. Filters are bound parameters (never string-built); the sort column comes
from a fixed allow-list, the only part of the SQL chosen at run time. The page and the total
are read with one statement (`count(*) OVER ()`), so they always agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

Record = Mapping[str, Any]

_SORT_COLUMNS = {
    "created_at": "o.created_at",
    "updated_at": "o.updated_at",
    "symbol": "o.symbol",
    "status": "o.status",
    "qty": "o.qty",
}

ORDER_COLUMNS = (
    "id",
    "order_id",
    "order_link_id",
    "signal_id",
    "leg",
    "category",
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "qty",
    "price",
    "trigger_price",
    "take_profit",
    "stop_loss",
    "reduce_only",
    "position_idx",
    "status",
    "exchange_status",
    "reject_reason",
    "cancel_type",
    "last_error_code",
    "last_error",
    "cum_exec_qty",
    "cum_exec_value",
    "cum_exec_fee",
    "fee_currency",
    "avg_price",
    "leaves_qty",
    "is_dry_run",
    "is_external",
    "trace_id",
    "submitted_at",
    "first_fill_at",
    "closed_at",
    "created_at",
    "updated_at",
)
_ORDER_SELECT = ", ".join(
    f"o.{c}::text AS {c}" if c in ("id", "signal_id") else f"o.{c}" for c in ORDER_COLUMNS
)

POSITION_COLUMNS = (
    "category",
    "symbol",
    "position_idx",
    "is_dry_run",
    "side",
    "size",
    "avg_entry_price",
    "realized_pnl",
    "unrealized_pnl",
    "fees_paid",
    "mark_price",
    "position_value",
    "leverage",
    "liq_price",
    "take_profit",
    "stop_loss",
    "exchange_size",
    "exchange_avg_price",
    "validated_at",
    "drift_detected_at",
    "updated_at",
)

SNAPSHOT_COLUMNS = (
    "id",
    "category",
    "symbol",
    "position_idx",
    "is_dry_run",
    "side",
    "size",
    "avg_entry_price",
    "realized_pnl",
    "unrealized_pnl",
    "fees_paid",
    "mark_price",
    "source",
    "snapshot_at",
)

SIGNAL_COLUMNS = (
    "signal_id",
    "status",
    "symbol",
    "signal_type",
    "strategy_id",
    "amount",
    "amount_unit",
    "confidence",
    "signal_timestamp",
    "is_warmup",
    "is_dry_run",
    "reason_code",
    "reason_message",
    "attempts",
    "trace_id",
    "received_at",
    "completed_at",
    "updated_at",
)


_SIGNAL_SORT_COLUMNS = {
    "received_at": "received_at",
    "updated_at": "updated_at",
    "completed_at": "completed_at",
}
_SIGNAL_SELECT = ", ".join(
    "signal_id::text AS signal_id" if c == "signal_id" else c for c in SIGNAL_COLUMNS
)


def _sort_clause(
    sort: str, columns: Mapping[str, str], tie: str, *, nulls_last: bool = False
) -> str:
    """`ORDER BY` text for an allow-listed sort key; `ValueError` for anything else."""
    descending = sort.startswith("-")
    column = columns.get(sort.removeprefix("-"))
    if column is None:
        allowed = ", ".join(f"{p}{k}" for k in columns for p in ("", "-"))
        raise ValueError(f"unknown sort {sort!r}; allowed: {allowed}")
    direction = "DESC" if descending else "ASC"
    nulls = " NULLS LAST" if nulls_last else ""
    return f"{column} {direction}{nulls}, {tie} {direction}"


def order_sort_clause(sort: str) -> str:
    """`ORDER BY` text for an allow-listed order sort key; `ValueError` for anything else."""
    return _sort_clause(sort, _SORT_COLUMNS, "o.id")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class _Filter:
    """``WHERE`` conditions with their bound parameters (``$?`` in a condition is its own)."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def bind(self, condition: str, value: object) -> None:
        self.args.append(value)
        self.conditions.append(condition.replace("$?", f"${len(self.args)}"))

    @property
    def where(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


async def _page(
    pool: asyncpg.Pool,
    *,
    select: str,
    source: str,
    found: _Filter,
    order_by: str,
    limit: int,
    offset: int,
    columns: Sequence[str],
) -> tuple[list[dict[str, Any]], int]:
    """One page of ``SELECT select FROM source`` and the total, read together; a page past the
    end still reports the real total."""
    args = [*found.args, limit, offset]
    sql = (
        f"SELECT {select}, count(*) OVER () AS total_count FROM {source} {found.where}"
        f" ORDER BY {order_by} LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    async with pool.acquire() as conn:
        rows = await conn.fetch(sql, *args)
        if rows:
            total = int(rows[0]["total_count"])
        elif offset == 0:
            total = 0
        else:
            count_sql = f"SELECT count(*) FROM {source} {found.where}"
            total = int(await conn.fetchval(count_sql, *found.args))
    return [_record(r, columns) for r in rows], total


class PgReadQueries:
    """`ReadQueries` over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_orders(
        self,
        *,
        symbol: str | None,
        statuses: Sequence[str],
        signal_id: str | None,
        side: str | None,
        created_from: datetime | None,
        created_to: datetime | None,
        is_dry_run: bool | None,
        sort: str,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Record], int]:
        found = _Filter()
        if symbol is not None:
            found.bind("o.symbol = $?", symbol)
        if statuses:
            found.bind("o.status = ANY($?::text[])", list(statuses))
        if signal_id is not None:
            found.bind(
                "(o.signal_id = $?::uuid OR o.id IN (SELECT l.order_uuid"
                " FROM signal_order_links l WHERE l.signal_id = $?::uuid))",
                signal_id,
            )
        if side is not None:
            found.bind("o.side = $?", side)
        if created_from is not None:
            found.bind("o.created_at >= $?", created_from)
        if created_to is not None:
            found.bind("o.created_at < $?", created_to)
        if is_dry_run is not None:
            found.bind("o.is_dry_run = $?", is_dry_run)
        return await _page(
            self._pool,
            select=_ORDER_SELECT,
            source="orders o",
            found=found,
            order_by=order_sort_clause(sort),
            limit=limit,
            offset=offset,
            columns=ORDER_COLUMNS,
        )

    async def find_order(self, identifier: str) -> Record | None:
        async with self._pool.acquire() as conn:
            if _is_uuid(identifier):
                row = await conn.fetchrow(
                    f"SELECT {_ORDER_SELECT} FROM orders o WHERE o.id = $1::uuid"
                    " OR o.order_id = $2 OR o.order_link_id = $2"
                    " ORDER BY (o.id = $1::uuid) DESC LIMIT 1",
                    identifier,
                    identifier,
                )
            else:
                row = await conn.fetchrow(
                    f"SELECT {_ORDER_SELECT} FROM orders o WHERE o.order_id = $1"
                    " OR o.order_link_id = $1 ORDER BY (o.order_id = $1) DESC LIMIT 1",
                    identifier,
                )
            if row is None:
                return None
            record = _record(row, ORDER_COLUMNS)
            fills = await conn.fetch(
                "SELECT exec_id, exec_qty, exec_price, exec_value, exec_fee, fee_currency,"
                " is_maker, exec_type, exec_time FROM executions WHERE order_uuid = $1::uuid"
                " ORDER BY exec_time, exec_id",
                record["id"],
            )
            links = await conn.fetch(
                "SELECT signal_id::text AS signal_id, relation, sequence, allocated_qty,"
                " created_at FROM signal_order_links WHERE order_uuid = $1::uuid ORDER BY id",
                record["id"],
            )
        record["fills"] = [dict(f) for f in fills]
        record["links"] = [dict(link) for link in links]
        return record

    async def list_signals(
        self,
        *,
        symbol: str | None,
        statuses: Sequence[str],
        reason_codes: Sequence[str],
        strategy_id: str | None,
        received_from: datetime | None,
        received_to: datetime | None,
        is_dry_run: bool | None,
        sort: str,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Record], int]:
        # completed_at is NULL while a signal is in progress: those come last either way
        order_by = _sort_clause(sort, _SIGNAL_SORT_COLUMNS, "signal_id", nulls_last=True)
        found = _Filter()
        if symbol is not None:
            found.bind("symbol = $?", symbol)
        if statuses:
            found.bind("status = ANY($?::text[])", list(statuses))
        if reason_codes:
            found.bind("reason_code = ANY($?::text[])", list(reason_codes))
        if strategy_id is not None:
            found.bind("strategy_id = $?", strategy_id)
        if received_from is not None:
            found.bind("received_at >= $?", received_from)
        if received_to is not None:
            found.bind("received_at < $?", received_to)
        if is_dry_run is not None:
            found.bind("is_dry_run = $?", is_dry_run)
        return await _page(
            self._pool,
            select=_SIGNAL_SELECT,
            source="signals",
            found=found,
            order_by=order_by,
            limit=limit,
            offset=offset,
            columns=SIGNAL_COLUMNS,
        )

    async def get_signal(self, signal_id: str) -> Record | None:
        if not _is_uuid(signal_id):
            return None
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_SIGNAL_SELECT} FROM signals WHERE signal_id = $1::uuid", signal_id
            )
            if row is None:
                return None
            orders = await conn.fetch(
                f"SELECT {_ORDER_SELECT},"
                " COALESCE((SELECT string_agg(l.relation, ',' ORDER BY l.id)"
                "   FROM signal_order_links l"
                "   WHERE l.order_uuid = o.id AND l.signal_id = $1::uuid),"
                "  CASE WHEN o.signal_id = $1::uuid THEN 'create' END) AS relation"
                " FROM orders o WHERE o.signal_id = $1::uuid OR o.id IN"
                " (SELECT order_uuid FROM signal_order_links WHERE signal_id = $1::uuid)"
                " ORDER BY o.leg NULLS LAST, o.created_at, o.id",
                signal_id,
            )
        record = _record(row, SIGNAL_COLUMNS)
        record["orders"] = [
            {**_record(o, ORDER_COLUMNS), "relation": o["relation"]} for o in orders
        ]
        return record

    async def list_positions(
        self, *, symbol: str | None, include_flat: bool, is_dry_run: bool | None
    ) -> Sequence[Record]:
        conditions: list[str] = []
        args: list[Any] = []
        if symbol is not None:
            args.append(symbol)
            conditions.append(f"symbol = ${len(args)}")
        if is_dry_run is not None:
            args.append(is_dry_run)
            conditions.append(f"is_dry_run = ${len(args)}")
        if not include_flat:
            conditions.append("size > 0")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {', '.join(POSITION_COLUMNS)} FROM positions {where}"
                " ORDER BY symbol, category, position_idx, is_dry_run",
                *args,
            )
        return [_record(r, POSITION_COLUMNS) for r in rows]

    async def position_history(
        self,
        symbol: str,
        *,
        since: datetime | None,
        until: datetime | None,
        is_dry_run: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Record], int]:
        conditions = ["symbol = $1"]
        args: list[Any] = [symbol]
        if since is not None:
            args.append(since)
            conditions.append(f"snapshot_at >= ${len(args)}")
        if until is not None:
            args.append(until)
            conditions.append(f"snapshot_at < ${len(args)}")
        if is_dry_run is not None:
            args.append(is_dry_run)
            conditions.append(f"is_dry_run = ${len(args)}")
        where = " AND ".join(conditions)
        async with self._pool.acquire() as conn:
            total = await conn.fetchval(
                f"SELECT count(*) FROM position_snapshots WHERE {where}", *args
            )
            rows = await conn.fetch(
                f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM position_snapshots WHERE {where}"
                f" ORDER BY snapshot_at DESC, id DESC LIMIT ${len(args) + 1}"
                f" OFFSET ${len(args) + 2}",
                *args,
                limit,
                offset,
            )
        return [_record(r, SNAPSHOT_COLUMNS) for r in rows], int(total)

    async def reconcile_candidates(
        self,
        *,
        active_only: bool,
        symbol: str | None,
        created_since: datetime | None,
        ids: Sequence[str] | None = None,
    ) -> Sequence[Record]:
        conditions = ["NOT o.is_dry_run"]
        args: list[Any] = []
        if ids is not None:
            args.append(list(ids))
            conditions.append(f"o.id = ANY(${len(args)}::uuid[])")
        else:
            if active_only:
                args.append(list(_ACTIVE))
                conditions.append(f"o.status = ANY(${len(args)}::text[])")
            if created_since is not None:
                args.append(created_since)
                conditions.append(f"o.created_at >= ${len(args)}")
            if symbol is not None:
                args.append(symbol)
                conditions.append(f"o.symbol = ${len(args)}")
        sql = (
            "SELECT o.id::text AS id, o.order_id, o.order_link_id, o.category, o.symbol,"
            " o.status, o.cum_exec_qty, COALESCE(f.qty, 0) AS executed_qty,"
            " COALESCE(f.n, 0) AS fill_count, o.created_at"
            " FROM orders o LEFT JOIN LATERAL (SELECT sum(e.exec_qty) AS qty, count(*) AS n"
            "   FROM executions e WHERE e.order_uuid = o.id) f ON true"
            f" WHERE {' AND '.join(conditions)} ORDER BY o.created_at, o.id"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, *args)
        return [_record(r, CANDIDATE_COLUMNS) for r in rows]


CANDIDATE_COLUMNS = (
    "id",
    "order_id",
    "order_link_id",
    "category",
    "symbol",
    "status",
    "cum_exec_qty",
    "executed_qty",
    "fill_count",
    "created_at",
)
_ACTIVE = ("submitting", "pending", "partially_filled", "untriggered", "triggered")


def _record(row: asyncpg.Record, columns: Sequence[str]) -> dict[str, Any]:
    return {c: row[c] for c in columns}
