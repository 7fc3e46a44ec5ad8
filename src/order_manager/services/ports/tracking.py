"""Port: what the tracker persists besides the order rows (those go through `ports.orders`).

- adoption of orders we have no row for (`adopt_order`), executions unique by execId
  (`insert_execution`, ON CONFLICT DO NOTHING semantics),
- position books (single owner: the tracker): `lock_position` (row lock until commit),
  `book_fills` (the fills of one book in execution order, for replays), `save_position`,
  `record_exchange_position` (what the exchange last said), `correct_position` (drift
  correction: the exchange's figures become the book's baseline), `snapshot_positions`,
- wallet balances from the `wallet` stream (`upsert_wallet`, `available_balances` for risk),
- `record_problem`: an exchange event we could not use is kept in the audit log with its raw
  body (never dropped silently).

Fill ordering key (`ExecKey`): (exec time, Bybit `seq` or 0, execId) — total and stable, so a
book replayed from its fills always gives the same result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from order_manager.domain.enums import Category, PositionIdx
from order_manager.domain.orders import Execution, OrderState
from order_manager.domain.positions import ExchangePosition, Position, PositionFill

ExecKey = tuple[datetime, int, str]


class StoredPosition(Protocol):
    @property
    def position(self) -> Position: ...
    @property
    def is_dry_run(self) -> bool: ...
    @property
    def last_exec_key(self) -> ExecKey | None: ...
    @property
    def baseline(self) -> Position: ...
    @property
    def baseline_key(self) -> ExecKey | None: ...
    @property
    def exchange_size(self) -> Decimal | None: ...  # signed, as last reported
    @property
    def exchange_avg_price(self) -> Decimal | None: ...
    @property
    def drift_count(self) -> int: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def validated_at(self) -> datetime | None:
        """When validation last found this book equal to the exchange's (None: never)."""
        ...


class TrackingRepository(Protocol):
    """Repository bound to the current transaction (see `ports.uow.UnitOfWork`)."""

    # -- orders we did not place (or do not remember placing) -------------------------------
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
        """Insert a row for an order first seen on the exchange; its uuid. Idempotent by
        orderLinkId (an existing row's uuid is returned)."""
        ...

    async def signal_exists(self, signal_id: str) -> bool: ...

    async def signal_info(self, signal_id: str) -> Mapping[str, Any] | None:
        """`strategy_id`, `confidence`, `amount` (Decimal or None), `is_warmup` (bool) and
        `market_data_snapshot` (the raw object or None) of a stored signal."""
        ...

    # -- executions --------------------------------------------------------------------------
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
        """Store one fill; False when its execId is already stored (a duplicate)."""
        ...

    # -- positions ---------------------------------------------------------------------------
    async def lock_position(
        self, category: Category, symbol: str, position_idx: PositionIdx, *, is_dry_run: bool
    ) -> StoredPosition:
        """The book's row, created flat when missing, locked until commit."""
        ...

    async def book_fills(
        self,
        category: Category,
        symbol: str,
        position_idx: PositionIdx,
        *,
        is_dry_run: bool,
        after: ExecKey | None,
    ) -> Sequence[tuple[PositionFill, ExecKey]]:
        """The book's stored fills with a key greater than `after` (all when None), in order."""
        ...

    async def all_fills(self, *, is_dry_run: bool) -> Sequence[tuple[Category, str, PositionFill]]:
        """Every stored fill of the mode (category, symbol, fill), in execution order (the
        paper exchange is rebuilt from them at start)."""
        ...

    async def unbooked_fills(self, *, is_dry_run: bool) -> Sequence[tuple[Execution, PositionIdx]]:
        """What order rows of the mode count as filled beyond their stored fills, one
        execution per order (``exec_id`` empty; the quantity, value and fee missing, at their
        average price; the order's ``updated_at`` as its time) with the order's book."""
        ...

    async def save_position(
        self, position: Position, *, is_dry_run: bool, last_exec_key: ExecKey | None
    ) -> None: ...

    async def save_position_with_view(
        self,
        position: Position,
        exchange: ExchangePosition,
        *,
        is_dry_run: bool,
        last_exec_key: ExecKey | None,
        observed_at: datetime,
    ) -> StoredPosition:
        """``save_position`` and then ``record_exchange_position`` of the same book (locked by
        this transaction), in one round trip; returns the book as the latter would."""
        ...

    async def record_exchange_position(
        self, exchange: ExchangePosition, *, is_dry_run: bool, observed_at: datetime
    ) -> StoredPosition:
        """Keep the exchange's size/average/mark (and our unrealised PnL at its mark); returns
        the book, locked until commit (created flat when missing)."""
        ...

    async def correct_position(
        self,
        baseline: Position,
        *,
        is_dry_run: bool,
        baseline_key: ExecKey | None,
        detected_at: datetime,
    ) -> None:
        """Drift correction: `baseline` (the exchange's book, our PnL figures) becomes both the
        baseline and the current book; fills up to `baseline_key` are inside it."""
        ...

    async def mark_validated(
        self,
        category: Category,
        symbol: str,
        position_idx: PositionIdx,
        *,
        is_dry_run: bool,
        at: datetime,
    ) -> None: ...

    async def positions(self, *, is_dry_run: bool) -> Sequence[StoredPosition]: ...

    async def snapshot_positions(self, *, source: str, is_dry_run: bool | None) -> int:
        """Copy current books into `position_snapshots`; number of rows written."""
        ...

    async def last_fill_time(
        self, category: Category, symbol: str, position_idx: PositionIdx, *, is_dry_run: bool
    ) -> datetime | None:
        """Arrival time of the book's newest stored fill (drift checks wait for quiet books)."""
        ...

    # -- wallet ------------------------------------------------------------------------------
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
        """`figures` keys: wallet_balance, equity, available_to_withdraw, total_position_im,
        total_order_im, locked, unrealised_pnl."""
        ...

    async def available_balances(
        self, *, is_dry_run: bool, account_type: str = "UNIFIED"
    ) -> Mapping[str, Decimal]:
        """Per coin: wallet balance minus position margin and locked amounts (what
        `AccountState.balances` expects: before our open-order reservations)."""
        ...

    # -- problems ----------------------------------------------------------------------------
    async def record_problem(
        self, *, action: str, message: str, raw: Mapping[str, Any], trace_id: str | None
    ) -> None:
        """Keep an unusable exchange event (audit_log kind `system`) with its raw body."""
        ...
