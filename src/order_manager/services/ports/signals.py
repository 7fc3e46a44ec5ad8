"""Port: the signals table — one row per signal_id, the FR-019 deduplication state.

States: ``received`` → ``processing`` → ``executed`` | ``rejected`` | ``failed``.

* ``claim`` runs at the start of handling a valid signal, inside a unit of work, and decides what
  the delivery is:
  - a new signal_id → row inserted, ``processing``, ``attempts`` = 1 (``received`` is the
    state of a row before it is claimed; since the claim happens in the transaction that
    records the receipt, it is never observable from outside);
  - ``failed`` (an earlier attempt failed transiently) → ``processing`` again, ``attempts`` + 1;
  - ``processing`` or ``received`` (a crash left it unfinished; the delivery is a redelivery) →
    resumed: ``processing``, ``attempts`` + 1;
  - ``executed`` / ``rejected`` → nothing changes; the delivery is a duplicate to drop.
  The row is locked (``FOR UPDATE``) for the rest of the transaction.
* ``SignalStore`` (optional): ``claim`` and ``finish`` outside any unit of work, each one
  autocommitted statement. The intake uses it where no other row or event has to commit with
  the change (claiming; ``executed``/``failed`` outcomes), which saves the BEGIN/COMMIT round
  trips on the hot path; rejections (row + ``signal_rejected`` event) still go through a unit of
  work.
* ``finish`` records the outcome (status, reason, dry-run flag, ``completed_at``).
* ``record_malformed`` records a dead-lettered message whose signal_id could be read, as
  ``rejected`` with its reason — unless that signal_id already has a row (an earlier valid
  delivery's outcome is never overwritten by a garbled copy).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from order_manager.domain.signals import TradingSignal

FINAL_STATUSES = frozenset({"executed", "rejected"})
RESUMABLE_STATUSES = frozenset({"received", "processing", "failed"})


class SignalClaim(Protocol):
    @property
    def previous_status(self) -> str | None:
        """The status before this claim (None: the signal is new)."""
        ...

    @property
    def status(self) -> str:
        """The status after this claim (``processing``, or the final status of a duplicate)."""
        ...

    @property
    def attempts(self) -> int: ...

    @property
    def is_duplicate(self) -> bool:
        """True when the signal already has a final outcome: drop the delivery."""
        ...


class SignalRepository(Protocol):
    """Repository bound to the current transaction (see `ports.uow.UnitOfWork`)."""

    async def claim(
        self, signal: TradingSignal, *, raw_body: str, trace_id: str, is_dry_run: bool
    ) -> SignalClaim: ...

    async def finish(
        self,
        signal_id: str,
        *,
        status: str,
        reason_code: str | None = None,
        reason_message: str | None = None,
        is_dry_run: bool | None = None,
    ) -> None: ...

    async def record_malformed(
        self,
        signal_id: str,
        *,
        raw_body: str,
        reason_code: str,
        reason_message: str,
        trace_id: str,
    ) -> bool:
        """Insert a ``rejected`` row for a dead-lettered message; False when one existed."""
        ...

    async def status_of(self, signal_id: str) -> str | None: ...

    async def finished_at(self, signal_id: str) -> datetime | None:
        """When the signal's last attempt ended, with its row share-locked for the rest of the
        transaction (a claim of it waits); None while an attempt is in progress, or no row."""
        ...


class SignalStore(Protocol):
    """``claim``/``finish`` as single autocommitted statements (no unit of work)."""

    async def claim(
        self, signal: TradingSignal, *, raw_body: str, trace_id: str, is_dry_run: bool
    ) -> SignalClaim: ...

    async def finish(
        self,
        signal_id: str,
        *,
        status: str,
        reason_code: str | None = None,
        reason_message: str | None = None,
        is_dry_run: bool | None = None,
    ) -> None: ...
