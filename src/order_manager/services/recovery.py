"""Start-up recovery: resolve every write-ahead intent still ``submitting``.

A ``submitting`` row means "the create may have been sent, its answer was never committed" —
the process died between the intent commit and the answer, or the exchange's answer was lost and
every lookup failed. For each such row (of this gateway's kind: live or paper) the exchange is
asked for the orderLinkId:

* **found** → the order exists: ``acknowledge`` with its order id and apply the exchange's
  record (status, fills) through the state machine → ``created`` (and e.g. ``filled``) events;
* **not found, and the create's receive window has passed** (row age > ``recv_window`` + a
  margin: Bybit refuses a request whose timestamp is older than ``recv_window``, so a create
  still in flight can no longer land) → ``mark_failed``: provably never placed, the signal may
  be retried (a retry reuses the row and its orderLinkId);
* **not found, still inside the window**, or **the lookup failed** → left ``submitting`` for the
  next round (``run_until_settled`` waits for the window and asks again).

Every lookup is audited like any other exchange call. Nothing here places or cancels orders.

**At run time too** (``settle_orphans``, every ``ORDERMANAGER_INTENT_SETTLE_INTERVAL_SECONDS``
while the service runs): a signal whose create's outcome stayed unknown (answer lost, every
lookup failed) ends ``failed`` with its intent ``submitting``. Nobody resumes that intent until
the signal is delivered again — and a redelivery older than the signal's maximum age is refused
``stale_signal`` before any resume — so without this pass the row would stay ``submitting``
until the next start: an "open" order that reserves balance and exposure in every plan and is
shown active by the API, or a real exchange order that nobody adopted. The pass takes only the
intents of signals no longer in progress and resolves them as above, with two guards: the
signal's row is share-locked in the transaction that changes the intent (a claim of the signal
by a lane waits, and an intent whose signal was claimed meanwhile is left to that lane), and
"not found" counts as "never placed" only once the receive window has passed since the
signal's last attempt ended — a retry may have re-sent an old intent's create.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from order_manager.domain.orders import (
    OrderEvent,
    OrderStatus,
    acknowledge,
    apply_update,
    mark_failed,
)
from order_manager.services import events
from order_manager.services.audit import record_call
from order_manager.services.ports.exchange import ExchangeGateway
from order_manager.services.ports.orders import StoredOrder
from order_manager.services.ports.uow import UnitOfWorkFactory

log = structlog.get_logger("order_manager.services.recovery")

#: added to the exchange's receive window before an unfound intent is declared failed
DEFAULT_MARGIN = timedelta(seconds=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RecoveryReport:
    adopted: list[str] = field(default_factory=list)  # found on the exchange
    failed: list[str] = field(default_factory=list)  # provably never placed
    pending: list[str] = field(default_factory=list)  # still unknown (retry later)

    @property
    def settled(self) -> bool:
        return not self.pending


class Recovery:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        gateway: ExchangeGateway,
        *,
        margin: timedelta = DEFAULT_MARGIN,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.uow_factory = uow_factory
        self.gateway = gateway
        self.margin = margin
        self.clock = clock

    @property
    def window(self) -> timedelta:
        return timedelta(milliseconds=self.gateway.recv_window_ms) + self.margin

    async def run(self) -> RecoveryReport:
        """One pass over every ``submitting`` row (at start: no signal is in progress)."""
        async with self.uow_factory() as uow:
            rows = list(await uow.orders.submitting(is_dry_run=self.gateway.is_dry_run))
        return await self._pass(rows, orphans=False)

    async def settle_orphans(self) -> RecoveryReport:
        """One pass over the ``submitting`` rows of signals no longer in progress (run time)."""
        async with self.uow_factory() as uow:
            rows = list(await uow.orders.orphaned_intents(is_dry_run=self.gateway.is_dry_run))
        return await self._pass(rows, orphans=True)

    async def watch(self, interval: float) -> None:
        """``settle_orphans`` every ``interval`` seconds until cancelled."""
        log.info("recovery.watching", interval_seconds=interval, dry_run=self.gateway.is_dry_run)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.settle_orphans()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # tried again at the next interval
                log.exception("recovery.settle_failed", error=repr(exc))

    async def _pass(self, rows: list[StoredOrder], *, orphans: bool) -> RecoveryReport:
        report = RecoveryReport()
        for row in rows:
            await self._resolve(row, report, orphan=orphans)
        if rows:
            log.info(
                "recovery.pass",
                adopted=len(report.adopted),
                failed=len(report.failed),
                pending=len(report.pending),
                dry_run=self.gateway.is_dry_run,
                run_time=orphans,
            )
        return report

    async def run_until_settled(
        self, *, max_rounds: int = 10, pause: float | None = None
    ) -> RecoveryReport:
        """Repeat ``run`` until nothing is pending (waiting ``pause`` s, default the receive
        window, between rounds) or ``max_rounds`` passes were made."""
        total = RecoveryReport()
        for round_no in range(max_rounds):
            report = await self.run()
            total.adopted += report.adopted
            total.failed += report.failed
            total.pending = report.pending
            if report.settled or round_no + 1 == max_rounds:
                break
            await asyncio.sleep(self.window.total_seconds() if pause is None else pause)
        return total

    async def _resolve(self, row: StoredOrder, report: RecoveryReport, *, orphan: bool) -> None:
        state = row.state
        trace_id = row.trace_id or f"recovery-{state.order_link_id}"
        lookup = await self.gateway.find_order(
            state.category, state.symbol, state.order_link_id, trace_id=trace_id
        )
        now = self.clock()
        async with self.uow_factory() as uow:
            await record_call(
                uow.orders,
                lookup,
                trace_id=trace_id,
                signal_id=row.signal_id,
                order_uuid=row.uuid,
                order_link_id=state.order_link_id,
                is_dry_run=row.is_dry_run,
            )
            finished = None
            if orphan:
                # the signal's row first (share lock: a lane's claim of it waits for us)
                finished = await uow.signals.finished_at(row.signal_id) if row.signal_id else None
                if finished is None:
                    await uow.commit()  # claimed meanwhile: its lane resumes the intent
                    return
            locked = await uow.orders.get(state.order_link_id, for_update=True)
            if locked is None or locked.state.status is not OrderStatus.SUBMITTING:
                await uow.commit()  # resolved meanwhile (tracker event, resumed signal)
                return
            # a create may have been sent until the signal's last attempt ended
            since = locked.created_at if finished is None else max(locked.created_at, finished)
            produced: list[OrderEvent] = []
            current = locked.state
            if lookup.ok and lookup.order is not None:
                result = acknowledge(current, lookup.order.order_id, now)
                current = result.state
                produced += result.events
                result = apply_update(current, lookup.order)
                current = result.state
                produced += result.events
                report.adopted.append(state.order_link_id)
            elif lookup.ok and now - since > self.window:
                result = mark_failed(
                    current,
                    f"not on the exchange {self.window.total_seconds():g}s after the intent",
                    now,
                )
                current = result.state
                produced += result.events
                report.failed.append(state.order_link_id)
            else:
                report.pending.append(state.order_link_id)
            if current is not locked.state:
                saved = await uow.orders.save(locked, current)
                context = events.OrderContext(
                    order_uuid=saved.uuid,
                    signal_id=saved.signal_id,
                    is_dry_run=saved.is_dry_run,
                    submitted_at=saved.submitted_at,
                )
                for event in produced:
                    await events.publish_order_event(uow.outbox, event, context, trace_id=trace_id)
            await uow.commit()
