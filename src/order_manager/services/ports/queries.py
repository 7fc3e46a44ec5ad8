"""Port: the read side the REST API queries (orders, signals, positions, snapshots).

Reads never go through the unit of work: they take no row locks and see committed data only,
so an API caller can never slow down or block the write path (signals, tracker, reconciler).

Records are plain mappings with documented keys (adapters may not import services, so no
service-side dataclass can cross this port). Values are exact: ``Decimal`` for money and
quantities, aware UTC ``datetime`` for timestamps, ``str`` for ids. The API's response models
(``order_manager.api.schemas``) validate every record, so a missing key fails loudly.

Keys of an **order record**: ``id``, ``order_id``, ``order_link_id``, ``signal_id``, ``leg``,
``category``, ``symbol``, ``side``, ``order_type``, ``time_in_force``, ``qty``, ``price``,
``trigger_price``, ``take_profit``, ``stop_loss``, ``reduce_only``, ``position_idx``, ``status``,
``exchange_status``, ``reject_reason``, ``cancel_type``, ``last_error_code``, ``last_error``,
``cum_exec_qty``, ``cum_exec_value``, ``cum_exec_fee``, ``fee_currency``, ``avg_price``,
``leaves_qty``, ``is_dry_run``, ``is_external``, ``trace_id``, ``submitted_at``,
``first_fill_at``, ``closed_at``, ``created_at``, ``updated_at``. ``find_order`` adds ``fills``
(execution records) and ``links`` (signal link records).

Sorting is an allow-list (``ORDER_SORTS``): a key with a leading ``-`` sorts descending; the
internal id breaks ties so pages never overlap or skip rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

#: sort keys the orders list accepts (``-`` prefix = descending)
ORDER_SORT_FIELDS = ("created_at", "updated_at", "symbol", "status", "qty")
ORDER_SORTS = tuple(f"{prefix}{name}" for name in ORDER_SORT_FIELDS for prefix in ("", "-"))

#: sort keys the signals list accepts (``-`` prefix = descending)
SIGNAL_SORT_FIELDS = ("received_at", "updated_at", "completed_at")
SIGNAL_SORTS = tuple(f"{prefix}{name}" for name in SIGNAL_SORT_FIELDS for prefix in ("", "-"))

Record = Mapping[str, Any]


class ReadQueries(Protocol):
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
        """One page of order records and the total number of matching rows.

        ``statuses`` empty = any status; ``created_from`` inclusive, ``created_to`` exclusive.
        Raises ``ValueError`` for a ``sort`` outside ``ORDER_SORTS``."""
        ...

    async def find_order(self, identifier: str) -> Record | None:
        """The order whose internal id, Bybit orderId or orderLinkId is ``identifier``, with
        ``fills`` (exec_id, exec_qty, exec_price, exec_value, exec_fee, fee_currency, is_maker,
        exec_type, exec_time) and ``links`` (signal_id, relation, sequence, allocated_qty,
        created_at)."""
        ...

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
        """One page of signal records (the keys of ``get_signal`` without ``orders``) and the
        total number of matching rows. Empty sequences = any; ``received_from`` inclusive,
        ``received_to`` exclusive. Raises ``ValueError`` for a ``sort`` outside
        ``SIGNAL_SORTS``."""
        ...

    async def get_signal(self, signal_id: str) -> Record | None:
        """The signal (signal_id, status, symbol, signal_type, strategy_id, amount,
        amount_unit, confidence, signal_timestamp, is_warmup, is_dry_run, reason_code,
        reason_message, attempts, trace_id, received_at, completed_at, updated_at) with
        ``orders``: the order records it created or touched, each with its ``relation``."""
        ...

    async def list_positions(
        self, *, symbol: str | None, include_flat: bool, is_dry_run: bool | None
    ) -> Sequence[Record]:
        """Current position books (category, symbol, position_idx, is_dry_run, side, size,
        avg_entry_price, realized_pnl, unrealized_pnl, fees_paid, mark_price, position_value,
        leverage, liq_price, take_profit, stop_loss, exchange_size, exchange_avg_price,
        validated_at, drift_detected_at, updated_at), by symbol then position_idx."""
        ...

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
        """Snapshots of the symbol's books, newest first (id, category, symbol, position_idx,
        is_dry_run, side, size, avg_entry_price, realized_pnl, unrealized_pnl, fees_paid,
        mark_price, source, snapshot_at), and the total count."""
        ...

    async def reconcile_candidates(
        self,
        *,
        active_only: bool,
        symbol: str | None,
        created_since: datetime | None,
        ids: Sequence[str] | None = None,
    ) -> Sequence[Record]:
        """Live (not dry-run) orders to compare with the exchange: the non-terminal ones
        (``active_only``) or every order created since ``created_since``; or exactly ``ids``.
        Keys: id, order_id, order_link_id, category, symbol, status, cum_exec_qty,
        executed_qty (sum of stored fills), fill_count, created_at."""
        ...
