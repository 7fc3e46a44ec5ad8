"""PostgreSQL implementation of the tracking port (`order_manager.services.ports.tracking`).

Positions are stored with a signed book in domain terms (`Position.size` > 0 long, < 0 short)
mapped onto the table's `side` + non-negative `size`; `entry_value` keeps the exact
average-cost state. Executions are unique by `exec_id` (primary key): a duplicate insert is a
no-op and reports False.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from order_manager.adapters.postgres.orders_repo import signal_info_columns, signal_info_from_row
from order_manager.domain.enums import Category, PositionIdx, Side
from order_manager.domain.money import ZERO
from order_manager.domain.orders import Execution, OrderState
from order_manager.domain.plans import synthetic_link_id
from order_manager.domain.positions import ExchangePosition, Position, PositionFill

ExecKey = tuple[datetime, int, str]

#: execution types that move a position (the tracker applies the same set)
POSITION_EXEC_TYPES = ("Trade", "AdlTrade", "BustTrade", "BlockTrade", "MovePosition")

_WALLET_FIELDS = (
    "wallet_balance",
    "equity",
    "available_to_withdraw",
    "total_position_im",
    "total_order_im",
    "locked",
    "unrealised_pnl",
)


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """`StoredPosition` of the port."""

    position: Position
    is_dry_run: bool
    last_exec_key: ExecKey | None
    baseline: Position
    baseline_key: ExecKey | None
    exchange_size: Decimal | None
    exchange_avg_price: Decimal | None
    drift_count: int
    updated_at: datetime
    validated_at: datetime | None = None


def _signed(side: str, size: Decimal) -> Decimal:
    return -size if side == "Sell" else size


def _key(time: datetime | None, seq: int | None, exec_id: str | None) -> ExecKey | None:
    if time is None or exec_id is None:
        return None
    return (time, seq or 0, exec_id)


def _position_record(row: asyncpg.Record) -> PositionRecord:
    category = Category(row["category"])
    idx = PositionIdx(row["position_idx"])
    size = _signed(row["side"], row["size"])
    position = Position(
        category=category,
        symbol=row["symbol"],
        position_idx=idx,
        size=size,
        entry_value=row["entry_value"],
        realized_pnl=row["realized_pnl"],
        fees=row["fees_paid"],
        mark_price=row["mark_price"],
    )
    baseline = Position(
        category=category,
        symbol=row["symbol"],
        position_idx=idx,
        size=row["baseline_size"],
        entry_value=row["baseline_entry_value"],
        realized_pnl=row["baseline_realized_pnl"],
        fees=row["baseline_fees"],
    )
    return PositionRecord(
        position=position,
        is_dry_run=row["is_dry_run"],
        last_exec_key=_key(row["last_exec_time"], row["last_exec_seq"], row["last_exec_id"]),
        baseline=baseline,
        baseline_key=_key(
            row["baseline_exec_time"], row["baseline_exec_seq"], row["baseline_exec_id"]
        ),
        exchange_size=row["exchange_size"],
        exchange_avg_price=row["exchange_avg_price"],
        drift_count=row["drift_count"],
        updated_at=row["updated_at"],
        validated_at=row["validated_at"],
    )


#: SET list of our book ($1..$4 the key, $5..$13 ``_book_args``)
_BOOK = """side = $5, size = $6, entry_value = $7, avg_entry_price = $8,
                realized_pnl = $9, fees_paid = $10,
                last_exec_time = $11, last_exec_seq = $12, last_exec_id = $13"""


def _book_args(
    position: Position, is_dry_run: bool, last_exec_key: ExecKey | None
) -> tuple[object, ...]:
    side = position.side
    time, seq, exec_id = last_exec_key if last_exec_key else (None, None, None)
    return (
        position.category.value,
        position.symbol,
        int(position.position_idx),
        is_dry_run,
        side.value if side else "None",
        position.abs_size,
        position.entry_value,
        position.avg_entry_price or ZERO,
        position.realized_pnl,
        position.fees,
        time,
        seq,
        exec_id,
    )


def _exchange_view(base: int) -> str:
    """SET list of the exchange's view of a position: parameters ``base`` + 1 … + 9 are
    ``_view_args`` (the mark is ``base`` + 3)."""
    p = [f"${base + i}" for i in range(1, 10)]
    return (
        f"exchange_size = {p[0]}, exchange_avg_price = {p[1]},"
        f" mark_price = COALESCE({p[2]}, mark_price), exchange_updated_time = {p[3]},"
        f" position_value = {p[4]}, leverage = COALESCE({p[5]}, leverage),"
        f" liq_price = {p[6]}, take_profit = {p[7]}, stop_loss = {p[8]}"
    )


def _upnl(size: str, entry_value: str, side: str, mark: str) -> str:
    """Unrealised PnL of a book (SQL) at the exchange's mark — the new one, else the stored."""
    at = f"COALESCE({mark}, mark_price)"
    sign = f"CASE WHEN {side} = 'Sell' THEN -1 ELSE 1 END"
    return (
        f"CASE WHEN {size} = 0 OR {at} IS NULL THEN 0"
        f" WHEN category = 'inverse' THEN ({entry_value} - {size} / {at}) * {sign}"
        f" ELSE ({size} * {at} - {entry_value}) * {sign} END"
    )


def _view_args(exchange: ExchangePosition, observed_at: datetime) -> tuple[object, ...]:
    return (
        exchange.size,
        exchange.avg_entry_price,
        exchange.mark_price,
        int(observed_at.timestamp() * 1000),
        exchange.position_value,
        exchange.leverage,
        exchange.liq_price,
        exchange.take_profit,
        exchange.stop_loss,
    )


class PgTrackingRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # ------------------------------------------------------------------ orders
    async def adopt_order(
        self,
        state: OrderState,
        *,
        signal_id: str | None,
        leg: int | None,
        is_external: bool,
        trace_id: str | None,
        is_dry_run: bool,
    ) -> str:
        link = state.order_link_id or synthetic_link_id(state.order_id or "")
        await self._conn.execute(
            """
            INSERT INTO orders (order_link_id, order_id, signal_id, leg, category, symbol, side,
                order_type, time_in_force, qty, price, take_profit, stop_loss, trigger_price,
                reduce_only, position_idx, status, is_dry_run, is_external, trace_id,
                created_at, submitted_at)
            VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, $19, $20, $21, $21)
            ON CONFLICT (order_link_id) DO NOTHING
            """,
            link,
            state.order_id,
            signal_id,
            leg,
            state.category.value,
            state.symbol,
            state.side.value,
            state.order_type.value,
            state.time_in_force.value if state.time_in_force else None,
            state.qty,
            state.price,
            state.take_profit,
            state.stop_loss,
            state.trigger_price,
            state.reduce_only,
            int(state.position_idx),
            state.local_status.value,
            is_dry_run,
            is_external,
            trace_id,
            state.created_at,
        )
        value = await self._conn.fetchval("SELECT id FROM orders WHERE order_link_id = $1", link)
        return str(value)

    async def signal_exists(self, signal_id: str) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM signals WHERE signal_id = $1::uuid)", signal_id
            )
        )

    async def signal_info(self, signal_id: str) -> Mapping[str, Any] | None:
        row = await self._conn.fetchrow(
            f"SELECT {signal_info_columns('s')} FROM signals s WHERE s.signal_id = $1::uuid",
            signal_id,
        )
        return None if row is None else signal_info_from_row(row)

    # ------------------------------------------------------------------ executions
    async def insert_execution(
        self,
        execution: Execution,
        *,
        order_uuid: str | None,
        category: Category,
        position_idx: PositionIdx,
        exchange_seq: int | None,
        closed_size: Decimal | None,
        fee_rate: Decimal | None,
        is_dry_run: bool,
        trace_id: str | None,
    ) -> bool:
        status = await self._conn.execute(
            """
            INSERT INTO executions (exec_id, order_uuid, order_id, order_link_id, category,
                symbol, side, exec_type, exec_qty, exec_price, exec_value, exec_fee,
                fee_currency, fee_rate, is_maker, closed_size, exec_time, exchange_seq,
                is_dry_run, trace_id, position_idx)
            VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, $19, $20, $21)
            ON CONFLICT (exec_id) DO NOTHING
            """,
            execution.exec_id,
            order_uuid,
            execution.order_id or None,
            execution.order_link_id or None,
            category.value,
            execution.symbol,
            execution.side.value,
            execution.exec_type,
            execution.exec_qty,
            execution.exec_price,
            execution.value,
            execution.exec_fee,
            execution.fee_currency or None,
            fee_rate,
            execution.is_maker,
            closed_size,
            execution.exec_time,
            exchange_seq,
            is_dry_run,
            trace_id,
            int(position_idx),
        )
        return bool(status == "INSERT 0 1")

    # ------------------------------------------------------------------ positions
    async def lock_position(
        self, category: Category, symbol: str, position_idx: PositionIdx, *, is_dry_run: bool
    ) -> PositionRecord:
        key = (category.value, symbol, int(position_idx), is_dry_run)
        query = """
            SELECT * FROM positions
            WHERE category = $1 AND symbol = $2 AND position_idx = $3 AND is_dry_run = $4
            FOR UPDATE
        """
        row = await self._conn.fetchrow(query, *key)
        if row is None:  # first fill of this book: create it flat, then lock it
            await self._conn.execute(
                "INSERT INTO positions (category, symbol, position_idx, is_dry_run)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                *key,
            )
            row = await self._conn.fetchrow(query, *key)
        assert row is not None
        return _position_record(row)

    async def all_fills(self, *, is_dry_run: bool) -> list[tuple[Category, str, PositionFill]]:
        rows = await self._conn.fetch(
            """
            SELECT category, symbol, position_idx, exec_id, side, exec_qty, exec_price, exec_fee
            FROM executions
            WHERE is_dry_run = $1 AND exec_qty > 0 AND exec_type = ANY($2::text[])
            ORDER BY exec_time, COALESCE(exchange_seq, 0), exec_id
            """,
            is_dry_run,
            list(POSITION_EXEC_TYPES),
        )
        return [
            (
                Category(r["category"]),
                r["symbol"],
                _position_fill(r, PositionIdx(r["position_idx"])),
            )
            for r in rows
        ]

    async def unbooked_fills(self, *, is_dry_run: bool) -> list[tuple[Execution, PositionIdx]]:
        rows = await self._conn.fetch(
            """
            SELECT o.order_id, o.order_link_id, o.category, o.symbol, o.side, o.position_idx,
                   o.updated_at, o.cum_exec_qty - f.qty AS qty,
                   o.cum_exec_value - f.value AS value, o.cum_exec_fee - f.fee AS fee
            FROM orders o
            CROSS JOIN LATERAL (
                SELECT COALESCE(sum(e.exec_qty), 0) AS qty,
                       COALESCE(sum(e.exec_value), 0) AS value,
                       COALESCE(sum(e.exec_fee), 0) AS fee
                FROM executions e WHERE e.order_uuid = o.id
            ) f
            WHERE o.is_dry_run = $1 AND o.order_id IS NOT NULL AND o.cum_exec_qty > 0
              AND o.cum_exec_qty > f.qty
            ORDER BY o.updated_at, o.id
            """,
            is_dry_run,
        )
        return [
            (
                Execution(
                    exec_id="",
                    order_id=r["order_id"],
                    order_link_id=r["order_link_id"],
                    symbol=r["symbol"],
                    side=Side(r["side"]),
                    exec_price=r["value"] / r["qty"],
                    exec_qty=r["qty"],
                    exec_fee=r["fee"],
                    exec_time=r["updated_at"],
                    category=Category(r["category"]),
                ),
                PositionIdx(r["position_idx"]),
            )
            for r in rows
        ]

    async def book_fills(
        self,
        category: Category,
        symbol: str,
        position_idx: PositionIdx,
        *,
        is_dry_run: bool,
        after: ExecKey | None,
    ) -> list[tuple[PositionFill, ExecKey]]:
        after_time, after_seq, after_id = after if after else (None, 0, "")
        rows = await self._conn.fetch(
            """
            SELECT exec_id, side, exec_qty, exec_price, exec_fee, exec_time,
                   COALESCE(exchange_seq, 0) AS seq
            FROM executions
            WHERE category = $1 AND symbol = $2 AND position_idx = $3 AND is_dry_run = $4
              AND exec_qty > 0 AND exec_type = ANY($8::text[])
              AND ($5::timestamptz IS NULL
                   OR (exec_time, COALESCE(exchange_seq, 0), exec_id) > ($5, $6, $7))
            ORDER BY exec_time, COALESCE(exchange_seq, 0), exec_id
            """,
            category.value,
            symbol,
            int(position_idx),
            is_dry_run,
            after_time,
            after_seq,
            after_id,
            list(POSITION_EXEC_TYPES),
        )
        return [
            (
                _position_fill(r, position_idx),
                (r["exec_time"], int(r["seq"]), r["exec_id"]),
            )
            for r in rows
        ]

    async def save_position(
        self, position: Position, *, is_dry_run: bool, last_exec_key: ExecKey | None
    ) -> None:
        await self._conn.execute(
            f"""
            UPDATE positions SET {_BOOK}, unrealized_pnl = $14
            WHERE category = $1 AND symbol = $2 AND position_idx = $3 AND is_dry_run = $4
            """,
            *_book_args(position, is_dry_run, last_exec_key),
            position.unrealized_pnl(),
        )

    async def save_position_with_view(
        self,
        position: Position,
        exchange: ExchangePosition,
        *,
        is_dry_run: bool,
        last_exec_key: ExecKey | None,
        observed_at: datetime,
    ) -> PositionRecord:
        """``save_position`` then ``record_exchange_position`` of the same (locked) book, in
        ONE statement: the view's unrealised PnL is computed on the new book."""
        row = await self._conn.fetchrow(
            f"""
            UPDATE positions SET {_BOOK}, {_exchange_view(13)},
                unrealized_pnl = {_upnl("$6::numeric", "$7::numeric", "$5::text", "$16::numeric")}
            WHERE category = $1 AND symbol = $2 AND position_idx = $3 AND is_dry_run = $4
            RETURNING *
            """,
            *_book_args(position, is_dry_run, last_exec_key),
            *_view_args(exchange, observed_at),
        )
        if row is None:  # the book was locked (created) by this transaction: it exists
            raise LookupError(f"position {position.symbol} vanished")
        return _position_record(row)

    async def record_exchange_position(
        self, exchange: ExchangePosition, *, is_dry_run: bool, observed_at: datetime
    ) -> PositionRecord:
        key = (exchange.category.value, exchange.symbol, int(exchange.position_idx), is_dry_run)
        query = f"""
            UPDATE positions SET {_exchange_view(4)},
                unrealized_pnl = {_upnl("size", "entry_value", "side", "$7")}
            WHERE category = $1 AND symbol = $2 AND position_idx = $3 AND is_dry_run = $4
            RETURNING *
        """
        args = (*key, *_view_args(exchange, observed_at))
        row = await self._conn.fetchrow(query, *args)
        if row is None:
            await self._conn.execute(
                "INSERT INTO positions (category, symbol, position_idx, is_dry_run)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                *key,
            )
            row = await self._conn.fetchrow(query, *args)
        assert row is not None
        return _position_record(row)

    async def correct_position(
        self,
        baseline: Position,
        *,
        is_dry_run: bool,
        baseline_key: ExecKey | None,
        detected_at: datetime,
    ) -> None:
        time, seq, exec_id = baseline_key if baseline_key else (None, None, None)
        side = baseline.side
        await self._conn.execute(
            """
            UPDATE positions SET
                baseline_size = $5, baseline_entry_value = $6, baseline_realized_pnl = $7,
                baseline_fees = $8, baseline_exec_time = $9, baseline_exec_seq = $10,
                baseline_exec_id = $11,
                side = $12, size = $13, entry_value = $6, avg_entry_price = $14,
                realized_pnl = $7, fees_paid = $8,
                last_exec_time = $9, last_exec_seq = $10, last_exec_id = $11,
                drift_count = drift_count + 1, drift_detected_at = $15, validated_at = $15
            WHERE category = $1 AND symbol = $2 AND position_idx = $3 AND is_dry_run = $4
            """,
            baseline.category.value,
            baseline.symbol,
            int(baseline.position_idx),
            is_dry_run,
            baseline.size,
            baseline.entry_value,
            baseline.realized_pnl,
            baseline.fees,
            time,
            seq,
            exec_id,
            side.value if side else "None",
            baseline.abs_size,
            baseline.avg_entry_price or ZERO,
            detected_at,
        )

    async def mark_validated(
        self,
        category: Category,
        symbol: str,
        position_idx: PositionIdx,
        *,
        is_dry_run: bool,
        at: datetime,
    ) -> None:
        await self._conn.execute(
            "UPDATE positions SET validated_at = $5 WHERE category = $1 AND symbol = $2"
            " AND position_idx = $3 AND is_dry_run = $4",
            category.value,
            symbol,
            int(position_idx),
            is_dry_run,
            at,
        )

    async def positions(self, *, is_dry_run: bool) -> list[PositionRecord]:
        rows = await self._conn.fetch(
            "SELECT * FROM positions WHERE is_dry_run = $1 ORDER BY category, symbol, position_idx",
            is_dry_run,
        )
        return [_position_record(r) for r in rows]

    async def snapshot_positions(self, *, source: str, is_dry_run: bool | None) -> int:
        status = await self._conn.execute(
            """
            INSERT INTO position_snapshots (category, symbol, position_idx, is_dry_run, side,
                size, avg_entry_price, realized_pnl, unrealized_pnl, fees_paid, mark_price,
                source)
            SELECT category, symbol, position_idx, is_dry_run, side, size, avg_entry_price,
                   realized_pnl, unrealized_pnl, fees_paid, mark_price, $1
            FROM positions WHERE $2::boolean IS NULL OR is_dry_run = $2
            """,
            source,
            is_dry_run,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def last_fill_time(
        self, category: Category, symbol: str, position_idx: PositionIdx, *, is_dry_run: bool
    ) -> datetime | None:
        value = await self._conn.fetchval(
            "SELECT max(received_at) FROM executions WHERE category = $1 AND symbol = $2"
            " AND position_idx = $3 AND is_dry_run = $4",
            category.value,
            symbol,
            int(position_idx),
            is_dry_run,
        )
        return value if isinstance(value, datetime) else None

    # ------------------------------------------------------------------ wallet
    async def upsert_wallet(
        self,
        *,
        account_type: str,
        coin: str,
        figures: Mapping[str, Decimal | None],
        exchange_time: datetime | None,
        source: str,
        is_dry_run: bool,
    ) -> None:
        unknown = set(figures) - set(_WALLET_FIELDS)
        if unknown:
            raise ValueError(f"unknown wallet figures: {sorted(unknown)}")
        values = [figures.get(name) for name in _WALLET_FIELDS]
        await self._conn.execute(
            """
            INSERT INTO wallet_balances (account_type, coin, is_dry_run, wallet_balance, equity,
                available_to_withdraw, total_position_im, total_order_im, locked,
                unrealised_pnl, exchange_time, source, updated_at)
            VALUES ($1, $2, $3, COALESCE($4::numeric, 0), $5, $6, $7, $8, $9, $10, $11, $12, now())
            ON CONFLICT (account_type, coin, is_dry_run) DO UPDATE SET
                wallet_balance = EXCLUDED.wallet_balance, equity = EXCLUDED.equity,
                available_to_withdraw = EXCLUDED.available_to_withdraw,
                total_position_im = EXCLUDED.total_position_im,
                total_order_im = EXCLUDED.total_order_im, locked = EXCLUDED.locked,
                unrealised_pnl = EXCLUDED.unrealised_pnl,
                exchange_time = EXCLUDED.exchange_time, source = EXCLUDED.source,
                updated_at = now()
            WHERE wallet_balances.exchange_time IS NULL OR EXCLUDED.exchange_time IS NULL
               OR EXCLUDED.exchange_time >= wallet_balances.exchange_time
            """,
            account_type,
            coin,
            is_dry_run,
            *values,
            exchange_time,
            source,
        )

    async def available_balances(
        self, *, is_dry_run: bool, account_type: str = "UNIFIED"
    ) -> dict[str, Decimal]:
        rows = await self._conn.fetch(
            """
            SELECT coin, wallet_balance - COALESCE(total_position_im, 0) - COALESCE(locked, 0)
                   AS available
            FROM wallet_balances WHERE is_dry_run = $1 AND account_type = $2
            """,
            is_dry_run,
            account_type,
        )
        return {r["coin"]: r["available"] for r in rows}

    # ------------------------------------------------------------------ problems
    async def record_problem(
        self, *, action: str, message: str, raw: Mapping[str, Any], trace_id: str | None
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO audit_log (kind, action, entity_type, trace_id, request, error)
            VALUES ('system', $1, 'exchange_event', $2, $3, $4)
            """,
            action,
            trace_id,
            dict(raw),
            message,
        )


def _position_fill(row: asyncpg.Record, position_idx: PositionIdx) -> PositionFill:
    """A stored execution as it moves its position book."""
    return PositionFill(
        side=Side(row["side"]),
        qty=row["exec_qty"],
        price=row["exec_price"],
        fee=row["exec_fee"],
        exec_id=row["exec_id"],
        position_idx=position_idx,
    )
