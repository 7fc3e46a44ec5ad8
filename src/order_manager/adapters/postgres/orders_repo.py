"""PostgreSQL implementation of the orders port (`order_manager.services.ports.orders`).

Row ↔ ``OrderState`` mapping:

* the row's ``status`` is the visible (derived) status; the last applied exchange order object is
  kept in the exchange columns (``exchange_status``, ``cum_exec_*``, ``avg_price``,
  ``leaves_qty``, ``reject_reason``, ``cancel_type``, ``exchange_updated_time`` in Bybit ms,
  ``exchange_created_time``) and rebuilt as ``ExchangeOrderUpdate`` when ``exchange_status`` is
  set, so freshness checks survive a restart;
* the locally set status (``submitting``/``pending``/``rejected``/``failed``) is the row status
  while no exchange object was applied;
* executions come from the ``executions`` table (unique by execId).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, cast

import asyncpg

from order_manager.adapters.postgres.outbox_rows import AGGREGATE_LOCK_NS, QueuedEvent, outbox_row
from order_manager.domain.amends import RecordedAmend
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.orders import (
    BybitOrderStatus,
    ExchangeOrderUpdate,
    Execution,
    OrderState,
    OrderStatus,
)
from order_manager.domain.plans import Relation, SignalOrderLink, WrittenCancel

ACTIVE_STATUSES = tuple(s.value for s in OrderStatus if s.is_open)
#: the open statuses as SQL text, exactly the predicate of the partial index `orders_active_idx`
#: (revision 0001): a query that names them as a literal lets PostgreSQL use that index in a
#: *generic* plan and so keep one cached plan; passed as a parameter, every call of the
#: prepared statement was planned afresh (the generic plan, unable to use the index, always
#: looked worse than a custom one)
_OPEN = "o.status IN (" + ", ".join(f"'{status}'" for status in ACTIVE_STATUSES) + ")"
_LOCAL_STATUSES = frozenset(
    {OrderStatus.SUBMITTING, OrderStatus.PENDING, OrderStatus.REJECTED, OrderStatus.FAILED}
)

#: An order with its links and — when it has any (``cum_exec_qty`` counts every execution
#: row) — its fills as ``executions`` rows, all in ONE statement (a separate fills query was
#: one more round trip for every read of a filled order).
_COLUMNS = """
SELECT o.*,
       COALESCE((SELECT array_agg(l.signal_id::text ORDER BY l.id)
                 FROM signal_order_links l WHERE l.order_uuid = o.id), '{}') AS linked_signals,
       CASE WHEN o.cum_exec_qty > 0 THEN
           (SELECT array_agg(e) FROM executions e WHERE e.order_uuid = o.id)
       END AS fills"""
_SELECT = f"{_COLUMNS}\nFROM orders o\n"

#: A signal's own orders and the orders linked to it (e.g. one it amended). Two index lookups
#: (``orders_signal_idx``, the links' unique key) joined on the primary key: the obvious
#: ``signal_id = $1 OR id IN (...)`` cannot use an index for the OR and scanned the whole
#: orders table for every signal (O(history); a test EXPLAINs this query).
FOR_SIGNAL_SQL = f"""{_SELECT}
WHERE o.id IN (SELECT id FROM orders WHERE signal_id = $1::uuid
               UNION SELECT order_uuid FROM signal_order_links WHERE signal_id = $1::uuid)
ORDER BY o.leg NULLS LAST, o.created_at
"""


class _Identified(Protocol):
    @property
    def uuid(self) -> str: ...


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """`StoredOrder` of the port."""

    uuid: str
    signal_id: str | None
    leg: int | None
    state: OrderState
    is_dry_run: bool
    is_external: bool
    trace_id: str | None
    signal_ids: tuple[str, ...]
    created_at: datetime
    submitted_at: datetime | None
    signal_info: Mapping[str, Any] | None = None
    planned_notional: Decimal | None = None


def signal_info_columns(alias: str) -> str:
    """SELECT-list of a signal's event enrichment from the ``signals`` row ``alias`` (read back
    by ``signal_info_from_row``; ``signal_found`` is false when an outer join found none)."""
    return (
        f"{alias}.signal_id IS NOT NULL AS signal_found,"
        f" {alias}.strategy_id AS signal_strategy_id, {alias}.confidence AS signal_confidence,"
        f" {alias}.amount AS signal_amount, {alias}.is_warmup AS signal_is_warmup,"
        f" {alias}.raw -> 'market_data_snapshot' AS signal_snapshot"
    )


def signal_info_from_row(row: asyncpg.Record) -> Mapping[str, Any] | None:
    """The signal's enrichment fields selected by ``signal_info_columns`` (None: no signal, or
    the query did not select them)."""
    if not row.get("signal_found"):
        return None
    snapshot = row["signal_snapshot"]
    return {
        "strategy_id": row["signal_strategy_id"],
        "confidence": row["signal_confidence"],
        "amount": row["signal_amount"],
        "is_warmup": row["signal_is_warmup"],
        "market_data_snapshot": snapshot if isinstance(snapshot, Mapping) else None,
    }


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _from_ms(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC).replace(microsecond=(value % 1000) * 1000)


def _opt(value: Decimal | None) -> Decimal | None:
    return value if value else None


def _tif(value: str | None) -> TimeInForce | None:
    try:
        return TimeInForce(value) if value else None
    except ValueError:  # e.g. RPI: not a time in force the domain plans with
        return None


def _last_update(row: asyncpg.Record) -> ExchangeOrderUpdate | None:
    if row["exchange_status"] is None or row["order_id"] is None:
        return None
    updated = _from_ms(row["exchange_updated_time"])
    if updated is None:
        return None
    return ExchangeOrderUpdate(
        order_id=row["order_id"],
        order_link_id=row["order_link_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        order_type=OrderType(row["order_type"]),
        bybit_status=BybitOrderStatus(row["exchange_status"]),
        qty=row["qty"],
        price=_opt(row["price"]),
        cum_exec_qty=row["cum_exec_qty"],
        cum_exec_value=row["cum_exec_value"],
        cum_exec_fee=row["cum_exec_fee"],
        updated_time=updated,
        category=Category(row["category"]),
        time_in_force=_tif(row["time_in_force"]),
        avg_price=_opt(row["avg_price"]),
        leaves_qty=row["leaves_qty"],
        reject_reason=row["reject_reason"] or "",
        cancel_type=row["cancel_type"] or "",
        take_profit=_opt(row["take_profit"]),
        stop_loss=_opt(row["stop_loss"]),
        trigger_price=_opt(row["trigger_price"]),
        reduce_only=row["reduce_only"],
        position_idx=PositionIdx(row["position_idx"]),
        created_time=_from_ms(row["exchange_created_time"]),
    )


def _execution(row: asyncpg.Record) -> Execution:
    return Execution(
        exec_id=row["exec_id"],
        order_id=row["order_id"] or "",
        order_link_id=row["order_link_id"] or "",
        symbol=row["symbol"],
        side=Side(row["side"]),
        exec_price=row["exec_price"],
        exec_qty=row["exec_qty"],
        exec_fee=row["exec_fee"],
        exec_time=row["exec_time"],
        is_maker=bool(row["is_maker"]),
        fee_currency=row["fee_currency"] or "",
        exec_type=row["exec_type"],
        category=Category(row["category"]),
    )


#: audit rows (a JSON array of objects) in one statement, in array order
AUDIT_INSERT = """
INSERT INTO audit_log (kind, action, entity_type, entity_id, signal_id, order_uuid, trace_id,
                       request, response, ret_code, duration_ms, error, is_dry_run)
SELECT 'exchange_call', r.action, 'order', r.entity_id, r.signal_id, r.order_uuid, r.trace_id,
       r.request, r.response, r.ret_code, r.duration_ms, r.error, r.is_dry_run
FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (
    action text, entity_id text, signal_id uuid, order_uuid uuid, trace_id text, request jsonb,
    response jsonb, ret_code integer, duration_ms double precision, error text,
    is_dry_run boolean)) WITH ORDINALITY AS r(
    action, entity_id, signal_id, order_uuid, trace_id, request, response, ret_code,
    duration_ms, error, is_dry_run, n)
ORDER BY r.n
"""


def _state(row: asyncpg.Record, executions: Sequence[Execution]) -> OrderState:
    status = OrderStatus(row["status"])
    last = _last_update(row)
    if last is None and status in _LOCAL_STATUSES:
        local = status
    else:
        local = OrderStatus.PENDING if row["order_id"] else OrderStatus.SUBMITTING
    return OrderState(
        order_link_id=row["order_link_id"],
        category=Category(row["category"]),
        symbol=row["symbol"],
        side=Side(row["side"]),
        order_type=OrderType(row["order_type"]),
        qty=row["qty"],
        price=row["price"],
        time_in_force=_tif(row["time_in_force"]),
        created_at=row["created_at"],
        reduce_only=row["reduce_only"],
        position_idx=PositionIdx(row["position_idx"]),
        take_profit=row["take_profit"],
        stop_loss=row["stop_loss"],
        trigger_price=row["trigger_price"],
        order_id=row["order_id"],
        local_status=local,
        last_update=last,
        executions=tuple(sorted(executions, key=lambda e: (e.exec_time, e.exec_id))),
        status=status,
        reject_code=str(row["last_error_code"]) if row["last_error_code"] is not None else None,
        reject_message=row["last_error"],
        updated_at=row["updated_at"],
    )


def _record(
    row: asyncpg.Record, executions: Sequence[Execution], signal_ids: Sequence[str]
) -> OrderRecord:
    return OrderRecord(
        uuid=str(row["id"]),
        signal_id=str(row["signal_id"]) if row["signal_id"] else None,
        leg=row["leg"],
        state=_state(row, executions),
        is_dry_run=row["is_dry_run"],
        is_external=row["is_external"],
        trace_id=row["trace_id"],
        signal_ids=tuple(signal_ids),
        created_at=row["created_at"],
        submitted_at=row["submitted_at"],
        signal_info=signal_info_from_row(row),
        planned_notional=row.get("notional"),
    )


#: every column a state change may touch ($1 the order's uuid; see ``_save_args``)
_SAVE_SQL = """
UPDATE orders SET
    order_id = COALESCE($2, order_id),
    status = $3,
    qty = $4,
    price = $5,
    take_profit = $6,
    stop_loss = $7,
    trigger_price = $8,
    exchange_status = $9,
    reject_reason = $10,
    cancel_type = $11,
    cum_exec_qty = $12,
    cum_exec_value = $13,
    cum_exec_fee = $14,
    avg_price = $15,
    leaves_qty = $16,
    exchange_created_time = COALESCE($17, exchange_created_time),
    exchange_updated_time = $18,
    last_error_code = COALESCE($19, last_error_code),
    last_error = COALESCE($20, last_error),
    submitted_at = CASE WHEN $2::text IS NOT NULL
                        THEN COALESCE(submitted_at, $21) ELSE submitted_at END,
    first_fill_at = COALESCE(first_fill_at, $22),
    closed_at = CASE WHEN $23 THEN COALESCE(closed_at, $21) ELSE NULL END
"""

#: ``answer_untouched``: the acknowledged state of an intent nobody has touched since it was
#: written, with its events ($24, ``om_outbox_add_many``) only if the row was still untouched;
#: returns whether it stored them and the exchange id the row holds (the answer's, or — when
#: untouched it was not — the one at the statement's start, NULL if none yet)
_ANSWER_SQL = f"""
WITH answered AS (
    {_SAVE_SQL} WHERE id = $1::uuid AND status = 'submitting' AND order_id IS NULL
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM answered) AS stored,
       COALESCE((SELECT $2::text FROM answered),
                (SELECT order_id FROM orders WHERE id = $1::uuid)) AS order_id,
       CASE WHEN EXISTS (SELECT 1 FROM answered)
            THEN om_outbox_add_many($24::jsonb, $25) END AS events
"""
#: the same with the unit of work's queued audit rows ($26) in the statement: the call's audit
#: row is written whether or not the row was still untouched (a data-modifying CTE always runs)
_ANSWER_AUDITED_SQL = _ANSWER_SQL.replace(
    "WITH answered AS (",
    f"WITH audit AS ({AUDIT_INSERT.replace('$1::jsonb', '$26::jsonb')}),\nanswered AS (",
    1,
)


def _save_args(
    order_uuid: str,
    state: OrderState,
    last_error_code: int | None,
    last_error: str | None,
    now: datetime,
) -> tuple[object, ...]:
    last = state.last_update
    first_fill = min((e.exec_time for e in state.executions), default=None)
    if first_fill is None and state.filled_qty > 0:
        first_fill = now
    return (
        order_uuid,
        state.order_id,
        state.status.value,
        state.qty,
        state.price,
        state.take_profit,
        state.stop_loss,
        state.trigger_price,
        last.bybit_status.value if last else None,
        last.reject_reason or None if last else state.reject_code,
        last.cancel_type or None if last else None,
        state.filled_qty,
        state.filled_value,
        state.fees,
        state.average_price,
        last.leaves_qty if last else None,
        _ms(last.created_time) if last else None,
        _ms(last.updated_time) if last else None,
        last_error_code,
        last_error if last_error is not None else state.reject_message,
        now,
        first_fill,
        state.status.is_terminal,
    )


#: ``locate``: by exchange id ($1), else by orderLinkId ($2) — one read, two index lookups
#: (with its signal's event enrichment: the tracker publishes the order's events at once)
LOCATE_SQL = f"""{_COLUMNS},
       {signal_info_columns("s")}
FROM orders o LEFT JOIN signals s ON s.signal_id = o.signal_id
WHERE (o.order_id = $1 OR o.order_link_id = $2)
ORDER BY o.order_id = $1 IS TRUE DESC LIMIT 1"""


class PgOrderRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection, *, in_transaction: bool = True) -> None:
        self._conn = conn
        self._in_transaction = in_transaction
        self._pending_audit: list[dict[str, object]] = []

    def take_audit(self) -> list[dict[str, object]]:
        """The audit rows this unit of work queued. In a transaction the unit of work writes
        them at commit, in the same statement as the outbox events (audit rows are never read
        back inside a transaction); without one, the next ``answer_untouched`` carries them in
        its statement, or ``write_audit`` writes them when the unit of work closes."""
        rows, self._pending_audit = self._pending_audit, []
        return rows

    async def write_audit(self) -> None:
        """Without a transaction: write the audit rows no statement has carried yet."""
        rows = self.take_audit()
        if rows:
            await self._conn.execute(AUDIT_INSERT, rows)

    # ------------------------------------------------------------------ reads
    @staticmethod
    def _records(rows: Sequence[asyncpg.Record]) -> list[OrderRecord]:
        """Rows of ``_SELECT`` (fills included) as records."""
        return [
            _record(row, [_execution(fill) for fill in row["fills"] or ()], row["linked_signals"])
            for row in rows
        ]

    async def _one(self, where: str, value: object, for_update: bool) -> OrderRecord | None:
        lock = " FOR UPDATE OF o" if for_update else ""
        rows = await self._conn.fetch(f"{_SELECT} WHERE {where}{lock}", value)
        records = self._records(rows)
        return records[0] if records else None

    async def get(self, order_link_id: str, *, for_update: bool = False) -> OrderRecord | None:
        return await self._one("o.order_link_id = $1", order_link_id, for_update)

    async def get_by_uuid(self, order_uuid: str, *, for_update: bool = False) -> OrderRecord | None:
        return await self._one("o.id = $1::uuid", order_uuid, for_update)

    async def get_by_order_id(
        self, order_id: str, *, for_update: bool = False
    ) -> OrderRecord | None:
        return await self._one("o.order_id = $1", order_id, for_update)

    async def locate(
        self, order_id: str, order_link_id: str, *, for_update: bool = False
    ) -> OrderRecord | None:
        """The row with this exchange ``order_id``, else the one with ``order_link_id`` (an
        empty id matches nothing) — one statement, two index lookups (the OR of two indexed
        columns is a BitmapOr). With ``for_update`` only the returned row is locked: a row
        found by its link whose answer transaction is still open is waited for and re-read."""
        lock = " FOR UPDATE OF o" if for_update else ""
        rows = await self._conn.fetch(
            f"{LOCATE_SQL}{lock}", order_id or None, order_link_id or None
        )
        records = self._records(rows)
        return records[0] if records else None

    async def for_signal(self, signal_id: str) -> list[OrderRecord]:
        rows = await self._conn.fetch(FOR_SIGNAL_SQL, signal_id)
        return self._records(rows)

    async def open_orders(
        self, category: Category, symbol: str, *, is_dry_run: bool
    ) -> list[OrderRecord]:
        rows = await self._conn.fetch(
            f"{_SELECT} WHERE o.symbol = $1 AND o.category = $2 AND o.is_dry_run = $3 "
            f"AND {_OPEN} ORDER BY o.created_at, o.id",
            symbol,
            category.value,
            is_dry_run,
        )
        return self._records(rows)

    async def all_open_orders(
        self, *, is_dry_run: bool, resting_only: bool = False
    ) -> list[OrderRecord]:
        takers = (
            " AND NOT (o.order_id IS NOT NULL AND (o.order_type = 'Market'"
            " OR o.time_in_force IN ('IOC', 'FOK')))"
            if resting_only
            else ""
        )
        rows = await self._conn.fetch(
            f"{_SELECT} WHERE o.is_dry_run = $1 AND {_OPEN}{takers} ORDER BY o.created_at, o.id",
            is_dry_run,
        )
        return self._records(rows)

    async def submitting(self, *, is_dry_run: bool | None = None) -> list[OrderRecord]:
        rows = await self._conn.fetch(
            f"{_SELECT} WHERE o.status = 'submitting' "
            "AND ($1::boolean IS NULL OR o.is_dry_run = $1) ORDER BY o.created_at, o.id",
            is_dry_run,
        )
        return self._records(rows)

    async def orphaned_intents(self, *, is_dry_run: bool) -> list[OrderRecord]:
        rows = await self._conn.fetch(
            f"{_SELECT} WHERE o.status = 'submitting' AND o.is_dry_run = $1 AND EXISTS ("
            "SELECT 1 FROM signals s WHERE s.signal_id = o.signal_id "
            "AND s.status NOT IN ('received', 'processing')) ORDER BY o.created_at, o.id",
            is_dry_run,
        )
        return self._records(rows)

    async def recent_order_times(
        self, category: Category, symbol: str, since: datetime, *, is_dry_run: bool
    ) -> tuple[datetime, ...]:
        rows = await self._conn.fetch(
            "SELECT created_at FROM orders WHERE symbol = $1 AND category = $2 "
            "AND is_dry_run = $3 AND created_at >= $4 AND NOT is_external AND NOT reduce_only "
            "AND status NOT IN ('failed', 'rejected') ORDER BY created_at",
            symbol,
            category.value,
            is_dry_run,
            since,
        )
        return tuple(row["created_at"] for row in rows)

    async def daily_volume(self, since: datetime, *, is_dry_run: bool) -> Decimal:
        """Opening notional of our orders created since ``since`` (quote currency): an order
        still active counts whole (it may yet trade), a finished one the share that traded;
        refused and failed intents, reduce-only orders, spot sells and external orders do not
        count."""
        value = await self._conn.fetchval(
            """
            SELECT COALESCE(sum(
                COALESCE(notional, qty * COALESCE(price, avg_price, 0))
                * CASE WHEN status = ANY($3::text[]) THEN 1
                       ELSE LEAST(cum_exec_qty / NULLIF(qty, 0), 1) END
            ), 0)
            FROM orders
            WHERE is_dry_run = $1 AND created_at >= $2 AND NOT is_external AND NOT reduce_only
              AND NOT (category = 'spot' AND side = 'Sell')
              AND status NOT IN ('failed', 'rejected')
            """,
            is_dry_run,
            since,
            list(ACTIVE_STATUSES),
        )
        return Decimal(value)

    # ------------------------------------------------------------------ writes
    async def add_notional(self, order_uuid: str, added: Decimal) -> None:
        """An amend made the order larger: its planned notional grows by ``added``."""
        await self._conn.execute(
            "UPDATE orders SET notional = COALESCE(notional, 0) + $2 WHERE id = $1::uuid",
            order_uuid,
            added,
        )

    async def add_intent(
        self,
        state: OrderState,
        *,
        signal_id: str | None,
        leg: int | None,
        trace_id: str | None,
        is_dry_run: bool,
        links: Sequence[SignalOrderLink] = (),
        notional: Decimal | None = None,
    ) -> tuple[OrderRecord, bool]:
        own = [link for link in links if link.order_link_id == state.order_link_id]
        first = own[0] if own else None
        # intent and its (first) link in ONE statement: one round trip on the hot path
        inserted = await self._conn.fetchrow(
            """
            WITH ins AS (
                INSERT INTO orders (order_link_id, signal_id, leg, category, symbol, side,
                    order_type, time_in_force, qty, price, take_profit, stop_loss, reduce_only,
                    position_idx, status, is_dry_run, trace_id, created_at, notional)
                VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                        'submitting', $15, $16, $17, $22)
                ON CONFLICT (order_link_id) DO NOTHING
                RETURNING *
            ), link AS (
                INSERT INTO signal_order_links (signal_id, order_uuid, relation, sequence,
                                                allocated_qty)
                SELECT $18::uuid, ins.id, $19, $20, $21 FROM ins WHERE $18::uuid IS NOT NULL
                ON CONFLICT (signal_id, order_uuid, relation) DO NOTHING
            )
            SELECT * FROM ins
            """,
            state.order_link_id,
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
            state.reduce_only,
            int(state.position_idx),
            is_dry_run,
            trace_id,
            state.created_at,
            first.signal_id if first else None,
            first.relation.value if first else "create",
            first.sequence if first else 0,
            first.allocated_qty if first else None,
            notional,
        )
        if inserted is not None:
            for link in own[1:]:
                await self._insert_link(link, str(inserted["id"]))
            signal_ids = list(dict.fromkeys(link.signal_id for link in own))
            return _record(inserted, (), signal_ids), True
        record = await self.get(state.order_link_id)
        if record is None:  # pragma: no cover - the row was inserted or existed
            raise RuntimeError(f"order {state.order_link_id} vanished")
        return record, False

    async def _insert_link(
        self, link: SignalOrderLink, order_uuid: str, amend: RecordedAmend | None = None
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO signal_order_links (signal_id, order_uuid, relation, sequence,
                allocated_qty, amend_qty, amend_price, amend_from_qty, amend_from_price,
                amend_notional)
            VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (signal_id, order_uuid, relation) DO NOTHING
            """,
            link.signal_id,
            order_uuid,
            link.relation.value,
            link.sequence,
            link.allocated_qty,
            amend.target_qty if amend else None,
            amend.target_price if amend else None,
            amend.previous_qty if amend else None,
            amend.previous_price if amend else None,
            amend.added_notional if amend else None,
        )

    async def remove_link(self, signal_id: str, order_uuid: str, relation: Relation) -> None:
        await self._conn.execute(
            "DELETE FROM signal_order_links WHERE signal_id = $1::uuid "
            "AND order_uuid = $2::uuid AND relation = $3",
            signal_id,
            order_uuid,
            relation.value,
        )

    async def add_link(
        self, link: SignalOrderLink, order_uuid: str, *, amend: RecordedAmend | None = None
    ) -> None:
        await self._insert_link(link, order_uuid, amend)

    async def link_relations(self, signal_id: str) -> frozenset[Relation]:
        rows = await self._conn.fetch(
            "SELECT DISTINCT relation FROM signal_order_links WHERE signal_id = $1::uuid",
            signal_id,
        )
        return frozenset(Relation(row["relation"]) for row in rows)

    async def cancel_links(self, signal_id: str) -> list[WrittenCancel]:
        rows = await self._conn.fetch(
            """
            SELECT o.order_link_id, l.cancel_done_at IS NOT NULL AS done, l.allocated_qty
            FROM signal_order_links l JOIN orders o ON o.id = l.order_uuid
            WHERE l.signal_id = $1::uuid AND l.relation = 'cancel'
            ORDER BY l.id
            """,
            signal_id,
        )
        return [
            WrittenCancel(row["order_link_id"], row["done"], row["allocated_qty"] or Decimal(0))
            for row in rows
        ]

    async def mark_cancel_done(self, signal_id: str, order_uuid: str, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE signal_order_links SET cancel_done_at = COALESCE(cancel_done_at, $3) "
            "WHERE signal_id = $1::uuid AND order_uuid = $2::uuid AND relation = 'cancel'",
            signal_id,
            order_uuid,
            at,
        )

    async def amend_links(self, signal_id: str) -> list[RecordedAmend]:
        rows = await self._conn.fetch(
            """
            SELECT o.order_link_id, l.allocated_qty, l.amend_qty, l.amend_price,
                   l.amend_from_qty, l.amend_from_price, l.amend_notional, l.amended_at
            FROM signal_order_links l JOIN orders o ON o.id = l.order_uuid
            WHERE l.signal_id = $1::uuid AND l.relation = 'amend' AND l.amend_qty IS NOT NULL
            ORDER BY l.id
            """,
            signal_id,
        )
        return [
            RecordedAmend(
                signal_id=signal_id,
                order_link_id=row["order_link_id"],
                target_qty=row["amend_qty"],
                target_price=row["amend_price"],
                previous_qty=row["amend_from_qty"],
                previous_price=row["amend_from_price"],
                added_qty=row["allocated_qty"],
                added_notional=row["amend_notional"],
                landed=row["amended_at"] is not None,
            )
            for row in rows
        ]

    async def mark_amend_landed(self, signal_id: str, order_uuid: str, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE signal_order_links SET amended_at = COALESCE(amended_at, $3) "
            "WHERE signal_id = $1::uuid AND order_uuid = $2::uuid AND relation = 'amend'",
            signal_id,
            order_uuid,
            at,
        )

    async def reset_intent(
        self, order: _Identified, state: OrderState, trace_id: str
    ) -> OrderRecord:
        await self._conn.execute(
            """
            UPDATE orders SET status = 'submitting', order_type = $2, time_in_force = $3,
                qty = $4, price = $5, take_profit = $6, stop_loss = $7, reduce_only = $8,
                position_idx = $9, side = $10, trace_id = $11, last_error = NULL,
                last_error_code = NULL, closed_at = NULL
            WHERE id = $1::uuid AND status = 'failed'
            """,
            order.uuid,
            state.order_type.value,
            state.time_in_force.value if state.time_in_force else None,
            state.qty,
            state.price,
            state.take_profit,
            state.stop_loss,
            state.reduce_only,
            int(state.position_idx),
            state.side.value,
            trace_id,
        )
        record = await self.get_by_uuid(order.uuid)
        assert record is not None
        return record

    async def save(
        self,
        order: _Identified,
        state: OrderState,
        *,
        last_error_code: int | None = None,
        last_error: str | None = None,
    ) -> OrderRecord:
        args = _save_args(order.uuid, state, last_error_code, last_error, datetime.now(UTC))
        row = await self._conn.fetchrow(f"{_SAVE_SQL} WHERE id = $1::uuid RETURNING *", *args)
        if row is None:
            raise LookupError(f"order {order.uuid} does not exist")
        linked = getattr(order, "signal_ids", None)
        if linked is None:
            linked = await self._conn.fetchval(
                "SELECT COALESCE(array_agg(signal_id::text ORDER BY id), '{}') "
                "FROM signal_order_links WHERE order_uuid = $1::uuid",
                order.uuid,
            )
        return _record(row, state.executions, linked)

    async def answer_untouched(
        self,
        order: _Identified,
        state: OrderState,
        *,
        events: Sequence[QueuedEvent],
        submitted_at: datetime,
    ) -> tuple[bool, str | None]:
        """See the port. One autocommitted statement: atomic by itself, no transaction; the
        audit rows queued on this repository (the call's) go into it."""
        args = [
            *_save_args(order.uuid, state, None, None, submitted_at),
            [outbox_row(event) for event in events],
            AGGREGATE_LOCK_NS,
        ]
        audit = [] if self._in_transaction else self.take_audit()
        try:
            if audit:
                row = await self._conn.fetchrow(_ANSWER_AUDITED_SQL, *args, audit)
            else:
                row = await self._conn.fetchrow(_ANSWER_SQL, *args)
        except BaseException:
            self._pending_audit[:0] = audit  # not written: the unit of work's exit tries again
            raise
        assert row is not None
        return bool(row["stored"]), cast(str | None, row["order_id"])

    async def record_exchange_call(
        self,
        *,
        action: str,
        request: Mapping[str, object],
        response: Mapping[str, object] | None,
        ok: bool,
        ret_code: int | None,
        error_kind: str | None,
        message: str,
        duration_ms: float,
        trace_id: str | None,
        signal_id: str | None,
        order_uuid: str | None,
        order_link_id: str | None,
        is_dry_run: bool,
    ) -> None:
        body: dict[str, object] = dict(response or {})
        if error_kind:
            body.setdefault("error_kind", error_kind)
        body.setdefault("message", message)
        row: dict[str, object] = {
            "action": action,
            "entity_id": order_link_id,
            "signal_id": signal_id,
            "order_uuid": order_uuid,
            "trace_id": trace_id,
            "request": dict(request),
            "response": body,
            "ret_code": ret_code,
            "duration_ms": duration_ms,
            "error": None if ok else message,
            "is_dry_run": is_dry_run,
        }
        self._pending_audit.append(row)  # written with a later statement (see `take_audit`)
