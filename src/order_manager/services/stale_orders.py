"""Stale-order sweeper: cancel our resting orders older than the stale-order timeout.

Spec FR-005.8 ("automatic cancellation of stale orders"); the decision is in docs/decisions.md
§7. Every ``interval`` seconds, the orders of this service's mode (live, or paper in dry-run)
that

* are ours (not ``is_external``: an order placed by someone else is not ours to cancel),
* rest on the book (``pending`` or ``partially_filled``, with an exchange order id: not
  ``submitting`` — that is recovery's —, not a conditional order waiting for its trigger, not a
  market/IOC/FOK order, which never rests), and
* were created more than ``max_age`` ago (``ORDERMANAGER_STALE_ORDER_TIMEOUT_SECONDS``)

are cancelled through the same ``ExchangeGateway.cancel`` the executor uses, reason ``stale``
(``domain.planner.stale_orders`` decides). A partially filled order keeps its fill; the exchange
cancels the remainder. Every call is audited (``audit_log``, kind ``exchange_call``). The
``cancelled`` state and its event come from the exchange's stream through the tracker, as for
every cancel; an order the exchange no longer knows (already filled or cancelled) is left to
the tracker and the reconciler, and logged.

A sweep racing a signal's lane is safe: an amend of an order the sweep has just cancelled is
refused by the exchange and the executor places the signal's quantity as an order of its own.
A failing sweep (database or exchange down) is logged and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter

from order_manager.domain.account import OpenOrder
from order_manager.domain.planner import stale_orders
from order_manager.domain.plans import Cancel
from order_manager.services.audit import record_call
from order_manager.services.ports.exchange import ExchangeErrorKind, ExchangeGateway
from order_manager.services.ports.orders import StoredOrder
from order_manager.services.ports.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)

STALE_CANCELS = Counter(
    "om_stale_order_cancels_total",
    "Cancels sent for stale resting orders, by result (ok, gone, failed)",
    ["result"],
)


@dataclass(slots=True)
class SweepReport:
    checked: int = 0
    cancelled: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class StaleOrderSweeper:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        gateway: ExchangeGateway,
        *,
        max_age: timedelta,
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow_factory = uow_factory
        self._gateway = gateway
        self._max_age = max_age
        self._interval = interval
        self._clock = clock

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        log.info(
            "stale-order sweeper running",
            max_age_seconds=self._max_age.total_seconds(),
            interval_seconds=self._interval,
            dry_run=self._gateway.is_dry_run,
        )
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried at the next interval
                log.exception("stale-order sweep failed", error=repr(exc))

    async def sweep(self) -> SweepReport:
        """One pass: cancel every stale resting order of ours (see the module docstring)."""
        report = SweepReport()
        async with self._uow_factory(atomic=False) as uow:
            rows = await uow.orders.all_open_orders(
                is_dry_run=self._gateway.is_dry_run, resting_only=True
            )
        # takers never rest (`resting_only`); of the rest, only ours on the book qualify
        # (`OpenOrder.is_actionable`: not external, pending or partially filled)
        candidates: list[OpenOrder] = []
        for row in rows:
            try:
                instrument = await self._gateway.instrument(row.state.category, row.state.symbol)
            except LookupError:
                continue  # an instrument no longer listed: the reconciler reports the order
            order = OpenOrder.from_state(
                row.state, instrument, signal_ids=row.signal_ids, is_external=row.is_external
            )
            if order.is_actionable:
                candidates.append(order)
        report.checked = len(candidates)
        by_link = {row.state.order_link_id: row for row in rows}
        for cancel in stale_orders(candidates, self._clock(), self._max_age):
            await self._cancel(cancel, by_link[cancel.order_link_id], report)
        if report.cancelled or report.gone or report.failed:
            log.info(
                "stale orders swept",
                cancelled=report.cancelled,
                gone=report.gone,
                failed=report.failed,
            )
        return report

    async def _cancel(self, action: Cancel, row: StoredOrder, report: SweepReport) -> None:
        trace_id = row.trace_id or uuid.uuid4().hex
        result = await self._gateway.cancel(action, trace_id=trace_id)
        async with self._uow_factory(atomic=False) as uow:
            await record_call(
                uow.orders,
                result,
                trace_id=trace_id,
                signal_id=row.signal_id,
                order_uuid=row.uuid,
                order_link_id=action.order_link_id,
                is_dry_run=row.is_dry_run,
                extra={"reason": action.reason.value},
            )
        link = action.order_link_id
        if result.ok:
            report.cancelled.append(link)
            STALE_CANCELS.labels("ok").inc()
            log.info("stale order cancelled", order_link_id=link, trace_id=trace_id)
        elif result.error_kind == ExchangeErrorKind.NOT_FOUND:
            report.gone.append(link)
            STALE_CANCELS.labels("gone").inc()
            log.info("stale order already gone on the exchange", order_link_id=link)
        else:
            report.failed[link] = f"{result.ret_code}: {result.message}"
            STALE_CANCELS.labels("failed").inc()
            log.warning(
                "stale order cancel refused",
                order_link_id=link,
                ret_code=result.ret_code,
                message=result.message,
            )
