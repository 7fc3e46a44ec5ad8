"""Port: what the services need from an exchange (live Bybit or the in-process paper exchange).

Adapters may not import services, so every type crossing this port is a domain type, a builtin,
or a structural ``Protocol`` declared here that the adapter's own dataclasses satisfy.

Two styles, on purpose:

* **Writes** (``place``/``amend``/``cancel``) and the order lookup never raise for exchange
  reasons: they return a report (``CallReport``) carrying everything the audit log needs —
  action, the wire request (never secrets), retCode, error kind, message, duration — whether the
  call succeeded or not. The executor decides from ``error_kind`` (values of
  ``ExchangeErrorKind``): insufficient funds / invalid request / rejected → the order is
  rejected; unknown outcome / retryable → the intent stays ``submitting`` (recovery resolves
  it); auth → fatal.
* **Reads** for planning (instrument, market, balances, positions) raise builtin exceptions the
  services can catch without knowing the adapter: ``ConnectionError`` (transient: exchange
  unreachable, retries exhausted), ``PermissionError`` (authentication: fatal), ``LookupError``
  (unknown instrument). ``market`` returns ``None`` when no data fresher than the staleness
  limit exists — a stale book never prices an order.

``place`` is idempotent by ``Place.order_link_id``: calling it again for the same intent (after a
timeout or a crash) never creates a second order — the exchange answers "duplicate" and the
gateway returns the existing order (``outcome == "existing"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.orders import ExchangeOrderUpdate
from order_manager.domain.plans import Amend, Cancel, Place
from order_manager.domain.positions import Position


class ExchangeErrorKind(StrEnum):
    """``CallReport.error_kind`` values (adapters return the plain strings)."""

    RETRYABLE = "retryable"  # transient, retries exhausted, the call had no effect
    UNKNOWN_OUTCOME = "unknown_outcome"  # the call may have taken effect: resolve by link id
    INSUFFICIENT_FUNDS = "insufficient_funds"  # e.g. 110007
    INVALID_REQUEST = "invalid_request"  # parameters / order or position state
    NOT_FOUND = "not_found"  # the order is gone (110001): reconcile
    AUTH = "auth"  # key/signature/permission: fatal
    REJECTED = "rejected"  # any other business refusal


class CreateOutcome(StrEnum):
    CREATED = "created"  # this call placed it
    EXISTING = "existing"  # an earlier call had placed it (duplicate orderLinkId)
    RECOVERED = "recovered"  # an attempt's outcome was unknown; found by orderLinkId


class CallReport(Protocol):
    """One exchange call as the caller and the audit log see it."""

    @property
    def action(self) -> str: ...  # "order.create", "order.amend", "order.cancel", "order.get"

    @property
    def request(self) -> Mapping[str, object]: ...  # wire parameters, no secrets

    @property
    def ok(self) -> bool: ...

    @property
    def ret_code(self) -> int | None: ...  # the exchange's retCode (0 on success)

    @property
    def error_kind(self) -> str | None: ...  # an ExchangeErrorKind value when not ok

    @property
    def message(self) -> str: ...  # retMsg or the error text ("OK" on success)

    @property
    def duration_ms(self) -> float: ...

    @property
    def attempts(self) -> int: ...

    @property
    def order_id(self) -> str | None: ...  # exchange order id when known

    @property
    def order(self) -> ExchangeOrderUpdate | None: ...  # the exchange's record when fetched


class PlaceReport(CallReport, Protocol):
    @property
    def outcome(self) -> str | None: ...  # a CreateOutcome value when ok


class ExchangeGateway(Protocol):
    """One exchange account. ``is_dry_run`` is True for the paper exchange."""

    @property
    def is_dry_run(self) -> bool: ...

    @property
    def recv_window_ms(self) -> int:
        """How long after sending a create the exchange may still accept it (Bybit
        ``recv_window``); recovery waits this long before declaring an unfound intent failed."""
        ...

    # -- writes: never raise for exchange reasons --------------------------------------------
    async def place(self, action: Place, *, trace_id: str) -> PlaceReport: ...

    async def amend(self, action: Amend, *, trace_id: str) -> CallReport: ...

    async def cancel(self, action: Cancel, *, trace_id: str) -> CallReport: ...

    async def find_order(
        self, category: Category, symbol: str, order_link_id: str, *, trace_id: str
    ) -> CallReport:
        """Look an order up by orderLinkId: ``ok`` and ``order`` set when found, ``ok`` with
        ``order is None`` when the exchange does not know it, not ``ok`` when the lookup
        itself failed (then nothing may be concluded)."""
        ...

    # -- reads for planning: raise ConnectionError / PermissionError / LookupError ------------
    async def instrument(self, category: Category, symbol: str) -> Instrument: ...

    async def market(self, category: Category, symbol: str) -> MarketSnapshot | None: ...

    async def balances(self, *, trace_id: str) -> Mapping[str, Decimal]:
        """Available balance per coin before our open-order reservations (see
        ``domain.account.AccountState.balances``)."""
        ...

    async def positions(
        self, category: Category, symbol: str, *, trace_id: str, include_others: bool = False
    ) -> tuple[Position, ...]:
        """The symbol's positions; with ``include_others`` every position of the category the
        exchange can list in the same call (linear: all USDT-settled ones) — for the total
        exposure limit. Callers pick the symbol's own with ``AccountState.position``."""
        ...

    async def leverage(self, category: Category, symbol: str) -> Decimal:
        """The symbol's leverage (margin = notional / leverage); 1 when unknown."""
        ...
