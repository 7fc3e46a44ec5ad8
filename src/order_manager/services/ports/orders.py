"""Port: orders persistence used inside a unit of work.

An order row is the persisted ``domain.orders.OrderState`` plus what the shell needs around it
(internal uuid, owning signal and leg, trace_id, dry-run flag). Rows are written by

* the executor: the write-ahead intent (``add_intent``, status ``submitting``) committed BEFORE
  the exchange call, then the exchange's answer (``save``) committed after;
* the tracker: exchange order/execution events applied through the domain state machine
  (``get(..., for_update=True)`` → ``apply_update``/``apply_execution`` → ``save``) — the row
  lock serialises the executor's acknowledgement with a WebSocket event racing it, and the
  state machine keeps whichever is newer.

``get`` rebuilds the full ``OrderState`` (last exchange order object from the row's exchange
columns, executions from the ``executions`` table), so any service can apply a domain transition
to it. Every exchange call is recorded with ``record_exchange_call`` (audit_log, kind
``exchange_call``): action, wire request (never secrets), retCode, duration, trace_id.

Dry-run rows (``is_dry_run``) and live rows never mix: every query for planning or recovery
takes the flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from order_manager.domain.amends import RecordedAmend
from order_manager.domain.enums import Category
from order_manager.domain.orders import OrderState
from order_manager.domain.plans import Relation, SignalOrderLink, WrittenCancel
from order_manager.services.ports.outbox import QueuedEvent


class StoredOrder(Protocol):
    """One persisted order as the services see it (adapters return their own dataclass)."""

    @property
    def uuid(self) -> str: ...  # internal id (orders.id), also the outbox aggregate id

    @property
    def signal_id(self) -> str | None: ...  # the signal that created it (None: external)

    @property
    def leg(self) -> int | None: ...

    @property
    def state(self) -> OrderState: ...

    @property
    def is_dry_run(self) -> bool: ...

    @property
    def is_external(self) -> bool: ...

    @property
    def trace_id(self) -> str | None: ...

    @property
    def signal_ids(self) -> tuple[str, ...]: ...  # every linked signal (N:M), link order

    @property
    def created_at(self) -> datetime: ...

    @property
    def submitted_at(self) -> datetime | None: ...

    @property
    def planned_notional(self) -> Decimal | None: ...  # qty x reference price when planned

    @property
    def signal_info(self) -> Mapping[str, Any] | None:
        """The originating signal's stored enrichment (strategy, confidence, amount, warm-up,
        market snapshot) when the read joined it (``locate``), else None."""
        ...


class OrderRepository(Protocol):
    """Repository bound to the current transaction (see `ports.uow.UnitOfWork`)."""

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
    ) -> tuple[StoredOrder, bool]:
        """Insert the intent row (idempotent by orderLinkId) and its signal links.

        Returns ``(row, created)``; when a row with this orderLinkId exists it is returned
        unchanged with ``created=False`` (a resumed or retried signal)."""
        ...

    async def get(self, order_link_id: str, *, for_update: bool = False) -> StoredOrder | None:
        """The order with this orderLinkId (row-locked until commit with ``for_update``)."""
        ...

    async def get_by_uuid(
        self, order_uuid: str, *, for_update: bool = False
    ) -> StoredOrder | None: ...

    async def get_by_order_id(
        self, order_id: str, *, for_update: bool = False
    ) -> StoredOrder | None: ...

    async def locate(
        self, order_id: str, order_link_id: str, *, for_update: bool = False
    ) -> StoredOrder | None:
        """The order with exchange id ``order_id``, else the one with ``order_link_id`` (empty
        ids match nothing), in one read; ``for_update`` locks only the order returned."""
        ...

    async def save(
        self,
        order: StoredOrder,
        state: OrderState,
        *,
        last_error_code: int | None = None,
        last_error: str | None = None,
    ) -> StoredOrder:
        """Persist ``state`` (status, exchange fields, fills summary) on ``order``'s row."""
        ...

    async def answer_untouched(
        self,
        order: StoredOrder,
        state: OrderState,
        *,
        events: Sequence[QueuedEvent],
        submitted_at: datetime,
    ) -> tuple[bool, str | None]:
        """The executor's answer in ONE statement, for an intent nobody has touched since it
        was written (still ``submitting``, no exchange id): ``state`` and ``events`` are
        stored together, or — when the row has moved on (the tracker applied the exchange's
        events first) — nothing is. Returns (stored, the exchange order id the row holds: the
        answer's when stored, else the one already there, None if none yet). Works without a
        transaction (``uow_factory(atomic=False)``); the call's audit row, recorded on the same
        unit of work just before, is written by the same statement, stored or not."""
        ...

    async def reset_intent(
        self, order: StoredOrder, state: OrderState, trace_id: str
    ) -> StoredOrder:
        """Reuse a ``failed`` intent (it never reached the exchange) for a retried signal:
        overwrite its parameters with ``state`` (status ``submitting``)."""
        ...

    async def add_link(
        self, link: SignalOrderLink, order_uuid: str, *, amend: RecordedAmend | None = None
    ) -> None:
        """Link another signal to an existing order (many-to-one amend); idempotent. An
        ``amend`` link carries its write-ahead record (``domain.amends``)."""
        ...

    async def link_relations(self, signal_id: str) -> frozenset[Relation]:
        """How the signal is linked to orders (its own and others')."""
        ...

    async def cancel_links(self, signal_id: str) -> Sequence[WrittenCancel]:
        """The orders the signal's plan cancels (written ahead since revision 0007), in link
        order."""
        ...

    async def mark_cancel_done(self, signal_id: str, order_uuid: str, at: datetime) -> None:
        """The exchange answered the signal's cancel of the order (done, or already gone)."""
        ...

    async def amend_links(self, signal_id: str) -> Sequence[RecordedAmend]:
        """The signal's ``amend`` links that carry a write-ahead record (revision 0006)."""
        ...

    async def mark_amend_landed(self, signal_id: str, order_uuid: str, at: datetime) -> None:
        """The exchange acknowledged the signal's amend of the order (same transaction as the
        recorded answer)."""
        ...

    async def remove_link(self, signal_id: str, order_uuid: str, relation: Relation) -> None:
        """Drop a link that turned out not to hold (an amend the exchange refused)."""
        ...

    async def for_signal(self, signal_id: str) -> Sequence[StoredOrder]:
        """Orders created by ``signal_id`` (leg order), then orders it is linked to (amended,
        cancelled); ``StoredOrder.signal_id`` tells them apart."""
        ...

    async def open_orders(
        self, category: Category, symbol: str, *, is_dry_run: bool
    ) -> Sequence[StoredOrder]:
        """Our non-terminal orders of the symbol (``submitting`` included: it may exist)."""
        ...

    async def all_open_orders(
        self, *, is_dry_run: bool, resting_only: bool = False
    ) -> Sequence[StoredOrder]:
        """Every non-terminal order (balance reservations across symbols). ``resting_only``
        leaves out acknowledged market/IOC/FOK orders: they never rest, whatever their row says
        until their final event is applied."""
        ...

    async def submitting(self, *, is_dry_run: bool | None = None) -> Sequence[StoredOrder]:
        """Every row still ``submitting`` (what recovery must resolve), oldest first."""
        ...

    async def orphaned_intents(self, *, is_dry_run: bool) -> Sequence[StoredOrder]:
        """The ``submitting`` rows whose signal is no longer in progress (its last attempt
        ended, e.g. ``failed`` with the create's outcome unknown): nobody will resume them
        until the signal is delivered again, oldest first."""
        ...

    async def add_notional(self, order_uuid: str, added: Decimal) -> None:
        """An amend added quantity: the order's planned notional grows by ``added``."""
        ...

    async def daily_volume(self, since: datetime, *, is_dry_run: bool) -> Decimal:
        """Opening notional (quote currency) of our orders created since ``since``: active
        orders whole, finished ones by the share that traded (the daily-volume risk limit)."""
        ...

    async def recent_order_times(
        self, category: Category, symbol: str, since: datetime, *, is_dry_run: bool
    ) -> tuple[datetime, ...]:
        """Creation times of our opening (not reduce-only, not refused) orders for the symbol
        since ``since`` (the orders-per-minute limit counts opening orders only)."""
        ...

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
        """One audit_log row (kind ``exchange_call``), written with the transaction's commit;
        without a transaction (``atomic=False``) by the next ``answer_untouched`` or, failing
        that, when the unit of work is left (also by an exception)."""
        ...
