"""The executor: carry out an approved plan on the exchange, exactly once, with a paper trail.

Write-ahead rule. For every ``Place`` the intent row (status ``submitting``, the plan's
deterministic orderLinkId) and its ``signal_order_links`` are COMMITTED before the REST call, in
one transaction for the whole plan. Only then is the exchange called; each answer is committed
afterwards together with its outbox event(s), its audit row just before (a crash in between
leaves the call audited and the intent ``submitting``: the case below). The common answer — a
plain "created" for an intent nothing has touched — is one guarded statement
(``answer_untouched``: the state and its events are written only if the row is still the
untouched intent); anything else, or a row the tracker moved on first, is answered with the
row locked, through the state machine. A crash at any point therefore leaves one of:

* no intent → nothing was sent; the redelivered signal plans again (same orderLinkIds);
* an intent ``submitting`` → the create may or may not have reached the exchange; resuming (same
  signal redelivered) re-sends the create with the SAME orderLinkId — Bybit answers "duplicate"
  (110072) if the first one landed and the client returns that order — and recovery at start
  resolves any that remain by looking the orderLinkId up;
* an answered row → nothing to do.

Exchange answers, by the client's error taxonomy:

=====================================  ========================================================
ok                                      ``acknowledge`` (+ the exchange's record when fetched)
                                        → ``created`` event
insufficient funds / invalid / rejected  ``mark_rejected`` → ``rejected`` event; the leg is
                                        refused
unknown outcome / retryable              row stays ``submitting`` (recovery resolves it); the
                                        signal is ``failed`` and may be retried
auth                                     fatal: :class:`ExchangeAuthFailure`
=====================================  ========================================================

Amends (many-to-one) send absolute quantity/price. The signal's ``amend`` link is committed with
the write-ahead transaction and carries the amend's record (target, the order as planned from,
the added quantity and notional); the transaction that records the acknowledgement marks it
landed. A resumed signal settles an amend not marked landed from the exchange's current order
(``resume_amend``, rules in ``domain.amends``): landed → recorded; untouched and open → sent
now; closed → its quantity placed as the signal's own order; changed otherwise → refused, with
an error log. Neither lost nor doubled, and never overwriting someone else's change.
A successful amend updates the row's quantity/price and emits ``modified``; the exchange's later
order update then carries no change. Cancels are idempotent: "order not found" (110001) means it
is already gone. Their ``cancel`` links are written ahead too, just before the intents (one
autocommitted statement each: several orders' share locks in one transaction deadlocked with
the tracker), and marked done with the answer; a resumed signal sends the unanswered ones, and
a signal whose only links are cancels has not reached its intents and plans again.
``convert`` sends its cancels before the intents (a limit must be confirmed cancelled, and
untraded, before its quantity joins the market order): each converted limit's link carries the
converted quantity, so a re-planned signal carries what those limits left untraded over.
Cancels run first (they free margin), then amends, then places concurrently.
Every call is in ``audit_log`` with trace_id, request (never secrets), retCode and duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

import structlog
from prometheus_client import Counter

from order_manager.domain.amends import (
    AmendResolution,
    RecordedAmend,
    at_target,
    recorded,
    resolve,
)
from order_manager.domain.enums import Category, OrderType, PositionIdx, TimeInForce
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.orders import (
    OrderEvent,
    OrderEventType,
    OrderState,
    OrderStatus,
    acknowledge,
    apply_update,
    mark_rejected,
    untraded_after_cancel,
)
from order_manager.domain.plans import (
    Action,
    Amend,
    Cancel,
    CancelReason,
    LegIntent,
    LinkType,
    Place,
    Plan,
    Relation,
    SignalOrderLink,
    order_link_id,
    resumed_cancel,
)
from order_manager.domain.signals import TradingSignal
from order_manager.services import events
from order_manager.services.audit import record_call
from order_manager.services.ports.exchange import (
    CallReport,
    ExchangeErrorKind,
    ExchangeGateway,
)
from order_manager.services.ports.orders import StoredOrder
from order_manager.services.ports.outbox import EventWriter
from order_manager.services.ports.uow import UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger("order_manager.services.executor")

RESUMED = Counter(
    "om_resumed_work_total",
    "Work an earlier run of a signal wrote ahead and a resumed run settled: amend_landed "
    "(recorded), amend_send, amend_replace (placed as the signal's own order), amend_ambiguous "
    "(the order changed otherwise: neither — alert on it), amend_lookup_failed, cancel_sent, "
    "conversion_carried",
    ["outcome"],
)

#: a failed amend of these kinds may still have landed (a lost answer, or a retry of one that
#: had: Bybit answers the repeat "not modified"/"not exists"): the order is looked up first
_AMEND_VERIFY = frozenset(
    {
        ExchangeErrorKind.NOT_FOUND,
        ExchangeErrorKind.INVALID_REQUEST,
        ExchangeErrorKind.UNKNOWN_OUTCOME,
        ExchangeErrorKind.RETRYABLE,
    }
)
_REFUSED = frozenset(
    {
        ExchangeErrorKind.INSUFFICIENT_FUNDS,
        ExchangeErrorKind.INVALID_REQUEST,
        ExchangeErrorKind.REJECTED,
        ExchangeErrorKind.NOT_FOUND,
    }
)


class ExchangeAuthFailure(Exception):
    """The exchange refused our credentials: stop trading, alert loudly."""


T = TypeVar("T")


async def all_ended(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``calls`` concurrently and return their results once EVERY one has ended; then the
    first error, if any, is raised. (A plain ``gather`` raises at the first error while the
    other calls run on: the lane's retry of the signal would then run beside its own previous
    attempt's legs, and a crash test could not tell when the process had really stopped.)"""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast("list[T]", results)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LegResult:
    """What happened to one exchange action of the plan."""

    order_link_id: str
    action: str  # place | amend | cancel
    ok: bool
    order_id: str | None = None
    error_kind: str | None = None
    ret_code: int | None = None
    message: str = ""
    #: an amend that did not land (the exchange's order was looked up): its quantity may be
    #: placed as an order of its own
    replaceable: bool = False
    #: a cancel the exchange answered "not found": the order was already gone (filled or
    #: cancelled) — counted as done, but not a confirmation that this call removed it
    gone: bool = False

    @property
    def unresolved(self) -> bool:
        """The outcome is not known yet (intent left ``submitting``, or an amend whose order
        could not be looked up)."""
        return not self.ok and self.error_kind in (
            ExchangeErrorKind.UNKNOWN_OUTCOME,
            ExchangeErrorKind.RETRYABLE,
        )


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    legs: tuple[LegResult, ...]
    auth_failed: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def placed(self) -> tuple[LegResult, ...]:
        return tuple(leg for leg in self.legs if leg.ok and leg.action in ("place", "amend"))

    @property
    def refused(self) -> tuple[LegResult, ...]:
        return tuple(
            leg
            for leg in self.legs
            if not leg.ok and leg.action in ("place", "amend") and not leg.unresolved
        )

    @property
    def unresolved(self) -> tuple[LegResult, ...]:
        return tuple(
            leg for leg in self.legs if leg.unresolved and leg.action in ("place", "amend")
        )

    @property
    def failed_cancels(self) -> tuple[LegResult, ...]:
        """Cancels the exchange did not carry out (the order stays): reported with the
        signal, never a reason to fail it — its own orders stand."""
        return tuple(leg for leg in self.legs if leg.action == "cancel" and not leg.ok)


@dataclass(frozen=True, slots=True)
class SettledAmend:
    """An amend carried to its end: its leg, the order placed instead when it could not land,
    and what the signal's notes should say."""

    leg: LegResult
    fallback: LegResult | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    signal: TradingSignal
    trace_id: str
    market: MarketSnapshot | None = None

    @property
    def market_conditions(self) -> events.MarketConditions | None:
        if self.market is not None:
            return events.MarketConditions.from_snapshot(self.market)
        if self.signal.market_data_snapshot is not None:
            return events.MarketConditions.from_signal(self.signal.market_data_snapshot)
        return None

    @property
    def summary(self) -> events.SignalSummary:
        return events.SignalSummary.from_signal(self.signal)


def intent_state(action: Place, now: datetime) -> OrderState:
    return OrderState.submitting(
        order_link_id=action.order_link_id,
        category=action.category,
        symbol=action.symbol,
        side=action.side,
        order_type=action.order_type,
        qty=action.qty,
        price=action.price,
        time_in_force=action.time_in_force,
        created_at=now,
        reduce_only=action.reduce_only,
        position_idx=action.position_idx
        if action.position_idx is not None
        else PositionIdx.ONE_WAY,
        take_profit=action.take_profit,
        stop_loss=action.stop_loss,
    )


class Executor:
    """Executes plans against one gateway (live or paper) with the write-ahead rule."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        gateway: ExchangeGateway,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.uow_factory = uow_factory
        self.gateway = gateway
        self.clock = clock

    @property
    def is_dry_run(self) -> bool:
        return self.gateway.is_dry_run

    # ------------------------------------------------------------------ write-ahead
    async def write_intents(
        self, plan: Plan, ctx: ExecutionContext
    ) -> tuple[list[tuple[Place, StoredOrder]], set[str]]:
        """Commit every place intent and link of ``plan`` in one transaction (the cancels'
        links are written before it: ``_write_cancels_ahead``).

        Returns the places still to send (new, still ``submitting``, or a ``failed`` intent
        reused) and the orderLinkIds of amends this signal had already linked (an earlier run:
        ``execute`` settles them from their write-ahead record).

        The common plan — one place, nothing to amend — is a single statement (the intent and
        its link, ``add_intent``), atomic by itself: it runs without BEGIN/COMMIT
        (``atomic=False``, two round trips fewer). Anything more needs the transaction: split
        children must all exist or none (a resumed signal re-sends the intents it finds and
        never plans again)."""
        now = self.clock()
        links = plan.links
        to_send: list[tuple[Place, StoredOrder]] = []
        linked_amends: set[str] = set()
        single = (
            len(plan.places) <= 1
            and not plan.amends
            and all(
                sum(link.order_link_id == place.order_link_id for link in links) <= 1
                for place in plan.places
            )
        )
        async with self.uow_factory(atomic=not single) as uow:
            for place in plan.places:
                own = [link for link in links if link.order_link_id == place.order_link_id]
                row, created = await uow.orders.add_intent(
                    intent_state(place, now),
                    signal_id=plan.signal_id,
                    leg=place.leg,
                    trace_id=ctx.trace_id,
                    is_dry_run=self.is_dry_run,
                    links=own,
                    notional=place.notional,
                )
                if created or row.state.status is OrderStatus.SUBMITTING:
                    to_send.append((place, row))
                elif row.state.status is OrderStatus.FAILED and row.is_dry_run == self.is_dry_run:
                    row = await uow.orders.reset_intent(row, intent_state(place, now), ctx.trace_id)
                    to_send.append((place, row))
            for amend in plan.amends:
                target = await uow.orders.get(amend.order_link_id)
                if target is None:
                    continue
                if plan.signal_id in target.signal_ids:
                    linked_amends.add(amend.order_link_id)
                    continue
                record = recorded(amend, plan.signal_id)
                for link in links:
                    if (
                        link.order_link_id == amend.order_link_id
                        and link.relation is Relation.AMEND
                    ):
                        await uow.orders.add_link(link, target.uuid, amend=record)
            await uow.commit()
        return to_send, linked_amends

    async def _write_cancels_ahead(self, plan: Plan) -> None:
        """The plan's cancel links, committed before the intents (and under ``convert`` before
        the cancels go out: each converted limit's link carries the quantity the plan converts,
        ``allocated_qty``, for a redelivered signal to carry over). One autocommitted statement
        per link, never one transaction: each link's foreign key share-locks the order it
        cancels, and a transaction holding several such locks deadlocks with the tracker or the
        reconciler locking the same orders in another order (seen in the sync-concurrency
        test). Links are idempotent (``ON CONFLICT DO NOTHING``). A run that dies between
        them and the intents has only cancel links: its redelivery plans again (the
        processor), it never resumes intents without their cancels."""
        if not plan.cancels:
            return
        converting = plan.converted_qty > 0
        async with self.uow_factory(atomic=False) as uow:
            for cancel in plan.cancels:
                target = await uow.orders.get(cancel.order_link_id)
                if target is None:
                    continue
                converted = (
                    cancel.remaining_qty
                    if converting and cancel.reason is CancelReason.REPLACED_BY_MARKET
                    else Decimal(0)
                )
                link = SignalOrderLink(
                    plan.signal_id,
                    cancel.order_link_id,
                    LinkType.ONE_TO_ONE,
                    Relation.CANCEL,
                    0,
                    converted,
                )
                await uow.orders.add_link(link, target.uuid)

    # ------------------------------------------------------------------ run
    async def execute(self, plan: Plan, ctx: ExecutionContext) -> ExecutionResult:
        if plan.is_rejected:
            raise ValueError("a rejected plan is never executed")
        legs: list[LegResult] = []
        notes: list[str] = []
        auth_failed = False
        cancel_first = plan.converted_qty > 0
        await self._write_cancels_ahead(plan)
        if cancel_first:
            # convert: the cancels go first, and the opening legs keep only the quantity the
            # cancelled limits left untraded by the exchange's word (each looked up after its
            # cancel): a limit that filled meanwhile ("not found"), the part of one that
            # traded before the cancel, or a refused cancel must not be traded a second time.
            # A crash between the cancels and the intents: the redelivered signal plans again
            # (the processor), and a limit its first run cancelled — "not found" now — is
            # looked up the same way.
            cancels = await self._cancel_all(plan, ctx)
            untraded = await self._untraded(plan, cancels, ctx)
            plan = _keep_untraded_conversions(plan, untraded, notes)
        to_send, linked_amends = await self.write_intents(plan, ctx)
        if not cancel_first:
            cancels = await self._cancel_all(plan, ctx)
        legs += cancels
        fallbacks: list[LegResult] = []
        first_free_leg = max((p.leg for p in plan.places), default=0) + 1
        records: dict[str, RecordedAmend] = {}
        if linked_amends:
            async with self.uow_factory(atomic=False) as uow:
                records = {r.order_link_id: r for r in await uow.orders.amend_links(plan.signal_id)}
        for amend in plan.amends:
            if amend.order_link_id in linked_amends:
                # an earlier run of this signal linked it: settle THAT amend, never this
                # run's re-computed one (it may have landed and moved the order already)
                record = records.get(amend.order_link_id)
                if record is None or record.landed:
                    notes.append(f"amend {amend.order_link_id} already recorded for this signal")
                    legs.append(LegResult(amend.order_link_id, "amend", True, amend.order_id))
                    continue
                settled = await self.resume_amend(record, ctx, first_free_leg + len(fallbacks))
            else:
                settled = await self._settle_amend(
                    amend, plan.signal_id, ctx, first_free_leg + len(fallbacks)
                )
            legs.append(settled.leg)
            notes += settled.notes
            if settled.fallback is not None:
                fallbacks.append(settled.fallback)
        legs += fallbacks
        sending = {place.order_link_id for place, _ in to_send}
        for place in plan.places:
            if place.order_link_id not in sending:
                notes.append(f"{place.order_link_id} already answered: not sent again")
        # reduce legs first, answered, then the opening legs (docs/decisions.md §7): in a
        # one-way flip the opening sell must not reach the exchange before the closing one
        reducing = [(p, row) for p, row in to_send if p.reduce_only]
        opening = [(p, row) for p, row in to_send if not p.reduce_only]
        for group in (reducing, opening):
            legs += await all_ended(self._place(p, row, ctx) for p, row in group)
        # legs answered in an earlier run of this signal count as placed
        if len(sending) < len(plan.places):
            async with self.uow_factory() as uow:
                for place in plan.places:
                    if place.order_link_id in sending:
                        continue
                    row = await uow.orders.get(place.order_link_id)
                    if row is not None:
                        legs.append(_leg_from_row(row))
        auth_failed = any(leg.error_kind == ExchangeErrorKind.AUTH for leg in legs)
        return ExecutionResult(tuple(legs), auth_failed, tuple(notes))

    async def resend(self, action: Place, row: StoredOrder, ctx: ExecutionContext) -> LegResult:
        """Send a stored intent again (resumed signal). Safe: same orderLinkId, so the exchange
        answers "duplicate" and the existing order is returned if the first send landed. A
        ``failed`` intent (recovery proved it never reached the exchange) is reset first."""
        if row.state.status is OrderStatus.FAILED:
            async with self.uow_factory() as uow:
                row = await uow.orders.reset_intent(
                    row, intent_state(action, self.clock()), ctx.trace_id
                )
                await uow.commit()
        return await self._place(action, row, ctx)

    # ------------------------------------------------------------------ place
    async def _place(self, action: Place, row: StoredOrder, ctx: ExecutionContext) -> LegResult:
        report = await self.gateway.place(action, trace_id=ctx.trace_id)
        now = self.clock()
        if not _untouched_answer_applies(report, row):
            await self._answer_locked(report, action, ctx, now, audited=False)
        elif not await self._answer_untouched(report, action, row, ctx, now):
            await self._answer_locked(report, action, ctx, now, audited=True)
        if not report.ok:
            log.warning(
                "executor.place_failed",
                order_link_id=action.order_link_id,
                error_kind=report.error_kind,
                ret_code=report.ret_code,
                message=report.message,
                trace_id=ctx.trace_id,
            )
        return LegResult(
            action.order_link_id,
            "place",
            report.ok,
            report.order_id,
            report.error_kind,
            report.ret_code,
            report.message,
        )

    async def _answer_untouched(
        self,
        report: CallReport,
        action: Place,
        row: StoredOrder,
        ctx: ExecutionContext,
        now: datetime,
    ) -> bool:
        """The common answer — "created" (with the order as the answer showed it, if it did),
        for an intent nothing has touched since this lane wrote it — in ONE autocommitted
        statement instead of a locked transaction of five: the call's audit row, and the
        acknowledged state with its events only if the row is still the untouched intent
        (``answer_untouched``).
        True when the row holds the answer's order id afterwards — stored by us, or by the
        tracker that applied the exchange's own events first (the acknowledgement then adds
        nothing, exactly as ``acknowledge`` answers "duplicate" on the locked path). False:
        the caller answers on the locked path (the audit row is written)."""
        assert report.order_id is not None
        result = acknowledge(row.state, report.order_id, now)
        state, produced = result.state, list(result.events)
        if report.order is not None:  # the order as the answer showed it (paper, duplicate)
            result = apply_update(state, report.order)
            state, produced = result.state, produced + list(result.events)
        queued = events.EventQueue()
        await self._publish(queued, row, produced, ctx, submitted_at=row.submitted_at or now)
        async with self.uow_factory(atomic=False) as uow:
            await self._audit(uow, report, ctx, row.uuid, action.order_link_id)
            stored, held = await uow.orders.answer_untouched(
                row, state, events=queued.events, submitted_at=now
            )
        # the order object, if any, must still be applied to the row the tracker moved on
        return stored or (held == report.order_id and report.order is None)

    async def _answer_locked(
        self,
        report: CallReport,
        action: Place,
        ctx: ExecutionContext,
        now: datetime,
        *,
        audited: bool,
    ) -> None:
        """Any answer, on the order's row locked: the state machine decides from what is
        stored now (a refusal, a duplicate's fetched order, a row the tracker moved on)."""
        async with self.uow_factory() as uow:
            locked = await uow.orders.get(action.order_link_id, for_update=True)
            assert locked is not None
            if not audited:
                await self._audit(uow, report, ctx, locked.uuid, action.order_link_id)
            state = locked.state
            produced: list[OrderEvent] = []
            error_code: int | None = None
            if report.ok and report.order_id:
                result = acknowledge(state, report.order_id, now)
                state = result.state
                produced += result.events
                if report.order is not None:
                    result = apply_update(state, report.order)
                    state = result.state
                    produced += result.events
            elif report.error_kind in _REFUSED:
                code = str(report.ret_code) if report.ret_code is not None else "rejected"
                result = mark_rejected(state, code, report.message, now)
                state = result.state
                produced += result.events
                error_code = report.ret_code
            if state is not locked.state:
                saved = await uow.orders.save(
                    locked,
                    state,
                    last_error_code=error_code,
                    last_error=None if report.ok else report.message,
                )
                await self._publish(uow.outbox, saved, produced, ctx)
            await uow.commit()

    # ------------------------------------------------------------------ amend
    async def _settle_amend(
        self, amend: Amend, signal_id: str, ctx: ExecutionContext, free_leg: int
    ) -> SettledAmend:
        """Send the amend; one that did not land (the order filled, vanished or refused it)
        becomes the signal's own order (leg ``free_leg``) instead of losing its quantity."""
        leg = await self._amend(amend, signal_id, ctx)
        if not leg.replaceable:
            return SettledAmend(leg)
        return await self._replace(amend, signal_id, ctx, free_leg, leg)

    async def _replace(
        self, amend: Amend, signal_id: str, ctx: ExecutionContext, free_leg: int, leg: LegResult
    ) -> SettledAmend:
        fallback = await self._replace_amend(amend, signal_id, ctx, free_leg)
        if fallback is None:
            return SettledAmend(leg)
        note = (
            f"amend of {amend.order_link_id} refused ({leg.message}): "
            f"placed {fallback.order_link_id} instead"
        )
        return SettledAmend(leg, fallback, (note,))

    async def resume_amend(
        self, record: RecordedAmend, ctx: ExecutionContext, free_leg: int
    ) -> SettledAmend:
        """Settle an amend an earlier run of the signal linked but never saw acknowledged
        (``domain.amends``): the exchange's current order decides — landed (recorded now),
        still as planned from (sent now), closed (its quantity placed as the signal's own
        order) or changed by something else (refused: neither sent nor placed)."""
        link_id = record.order_link_id
        async with self.uow_factory(atomic=False) as uow:
            row = await uow.orders.get(link_id)
        if row is None:  # pragma: no cover - a link always references an existing row
            return SettledAmend(LegResult(link_id, "amend", False, None, "rejected", None, "gone"))
        state = row.state
        amend = record.amend(state.order_id, state.category, state.symbol, state.side)
        lookup = await self.gateway.find_order(
            state.category, state.symbol, link_id, trace_id=ctx.trace_id
        )
        await self._audit_alone(lookup, ctx, link_id, row.uuid)
        if not lookup.ok:
            RESUMED.labels("amend_lookup_failed").inc()
            return SettledAmend(
                LegResult(
                    link_id,
                    "amend",
                    False,
                    state.order_id,
                    ExchangeErrorKind.UNKNOWN_OUTCOME.value,
                    lookup.ret_code,
                    f"resumed amend: the order lookup failed ({lookup.message})",
                )
            )
        decision = resolve(record, lookup.order)
        RESUMED.labels(f"amend_{decision.value}").inc()
        log.info(
            "executor.amend_resumed",
            order_link_id=link_id,
            signal_id=record.signal_id,
            decision=decision.value,
            trace_id=ctx.trace_id,
        )
        if decision is AmendResolution.SEND:
            return await self._settle_amend(amend, record.signal_id, ctx, free_leg)
        if decision is AmendResolution.LANDED:
            await self._record_amend(amend, record.signal_id, ctx, [], landed=True)
            return SettledAmend(LegResult(link_id, "amend", True, state.order_id))
        if decision is AmendResolution.REPLACE:
            refused = LegResult(
                link_id,
                "amend",
                False,
                state.order_id,
                ExchangeErrorKind.NOT_FOUND.value,
                None,
                "resumed amend: the order can no longer be amended",
                replaceable=True,
            )
            return await self._replace(amend, record.signal_id, ctx, free_leg, refused)
        found = lookup.order
        assert found is not None  # an order the exchange does not know resolves to REPLACE
        log.error(
            "executor.amend_outcome_ambiguous",
            order_link_id=link_id,
            signal_id=record.signal_id,
            planned_from=f"{record.previous_qty}@{record.previous_price}",
            target=f"{record.target_qty}@{record.target_price}",
            exchange=f"{found.qty}@{found.price}",
            trace_id=ctx.trace_id,
        )
        message = (
            f"resumed amend: the order is at {found.qty}@{found.price}, neither as planned "
            f"from ({record.previous_qty}@{record.previous_price}) nor at the target "
            f"({record.target_qty}@{record.target_price}): not sent, not replaced"
        )
        return SettledAmend(
            LegResult(link_id, "amend", False, state.order_id, "ambiguous", None, message)
        )

    async def _audit_alone(
        self,
        report: CallReport,
        ctx: ExecutionContext,
        order_link_id: str,
        order_uuid: str | None = None,
    ) -> None:
        """The call's audit row in a transaction of its own (the order's uuid looked up when
        not given)."""
        async with self.uow_factory() as uow:
            if order_uuid is None:
                row = await uow.orders.get(order_link_id)
                order_uuid = row.uuid if row else None
            await self._audit(uow, report, ctx, order_uuid, order_link_id)
            await uow.commit()

    async def _amend(self, action: Amend, signal_id: str, ctx: ExecutionContext) -> LegResult:
        """Amend, then record. A failed amend that may have landed is checked against the
        exchange's order (by orderLinkId) before anything else happens: at the target quantity
        (and price) it DID land — recorded as done, never replaced (replacing would double the
        signal's quantity); otherwise it is ``replaceable``; when the lookup fails too, the
        leg stays unresolved (the signal fails retryable, nothing is replaced)."""
        report = await self.gateway.amend(action, trace_id=ctx.trace_id)
        landed = report.ok
        lookup: CallReport | None = None
        if not report.ok and report.error_kind in _AMEND_VERIFY:
            lookup = await self.gateway.find_order(
                action.category, action.symbol, action.order_link_id, trace_id=ctx.trace_id
            )
            landed = lookup.ok and at_target(action, lookup.order)
        reports = [report] if lookup is None else [report, lookup]
        await self._record_amend(action, signal_id, ctx, reports, landed=landed)
        if landed:
            if not report.ok:
                log.warning(
                    "executor.amend_landed_despite_error",
                    order_link_id=action.order_link_id,
                    error_kind=report.error_kind,
                    ret_code=report.ret_code,
                    trace_id=ctx.trace_id,
                )
            return LegResult(
                action.order_link_id, "amend", True, report.order_id or action.order_id
            )
        if lookup is not None and not lookup.ok:
            return LegResult(
                action.order_link_id,
                "amend",
                False,
                action.order_id,
                ExchangeErrorKind.UNKNOWN_OUTCOME.value,
                report.ret_code,
                f"{report.message}; the order lookup failed too ({lookup.message}): not replaced",
            )
        return LegResult(
            action.order_link_id,
            "amend",
            False,
            report.order_id or action.order_id,
            report.error_kind,
            report.ret_code,
            report.message,
            replaceable=lookup is not None,
        )

    async def _record_amend(
        self,
        action: Amend,
        signal_id: str,
        ctx: ExecutionContext,
        reports: Sequence[CallReport],
        *,
        landed: bool,
    ) -> None:
        """The calls' audit rows and, when the amend landed, in the same transaction: the
        row's new quantity/price with its ``modified`` event, the added notional and the
        signal's amend link marked landed."""
        async with self.uow_factory() as uow:
            locked = await uow.orders.get(action.order_link_id, for_update=True)
            order_uuid = locked.uuid if locked else None
            for report in reports:
                await self._audit(uow, report, ctx, order_uuid, action.order_link_id)
            if landed and locked is not None:
                before = locked.state
                after = replace(
                    before,
                    qty=action.qty,
                    price=action.price if action.price is not None else before.price,
                    updated_at=self.clock(),
                )
                change = {
                    name: (_fmt(getattr(before, name)), _fmt(getattr(after, name)))
                    for name in ("qty", "price")
                    if getattr(before, name) != getattr(after, name)
                }
                saved = await uow.orders.save(locked, after)
                if action.added_notional > 0:  # today's volume counts the added part too
                    await uow.orders.add_notional(locked.uuid, action.added_notional)
                await uow.orders.mark_amend_landed(signal_id, locked.uuid, self.clock())
                if change:
                    event = OrderEvent(OrderEventType.MODIFIED, after, before, modification=change)
                    await self._publish(uow.outbox, saved, [event], ctx)
            await uow.commit()

    async def _replace_amend(
        self, amend: Amend, signal_id: str, ctx: ExecutionContext, leg: int
    ) -> LegResult | None:
        """Place the quantity a refused amend would have added as a new limit order (its own
        leg and orderLinkId, the resting order's time in force), moving the signal's link."""
        prefix = amend.order_link_id.split("-", 1)[0]
        try:
            link_id = order_link_id(prefix, signal_id, leg)
        except ValueError:
            return None
        async with self.uow_factory() as uow:
            target = await uow.orders.get(amend.order_link_id)
            if target is None or amend.price is None:
                return None
            state = target.state
            place = Place(
                leg=leg,
                order_link_id=link_id,
                category=amend.category,
                symbol=amend.symbol,
                side=amend.side,
                order_type=OrderType.LIMIT,
                qty=amend.added_qty,
                price=amend.price,
                time_in_force=state.time_in_force or TimeInForce.GTC,
                reduce_only=False,
                post_only=state.time_in_force is TimeInForce.POST_ONLY,
                position_idx=state.position_idx if amend.category.has_positions else None,
                intent=LegIntent.OPEN,
                reference_price=amend.price,
                notional=amend.added_notional,
            )
            link = SignalOrderLink(
                signal_id, link_id, LinkType.ONE_TO_ONE, Relation.CREATE, leg, place.qty
            )
            await uow.orders.remove_link(signal_id, target.uuid, Relation.AMEND)
            row, created = await uow.orders.add_intent(
                intent_state(place, self.clock()),
                signal_id=signal_id,
                leg=leg,
                trace_id=ctx.trace_id,
                is_dry_run=self.is_dry_run,
                links=[link],
                notional=place.notional,
            )
            await uow.commit()
        if not created and row.state.status is not OrderStatus.SUBMITTING:
            return _leg_from_row(row)
        return await self._place(place, row, ctx)

    # ------------------------------------------------------------------ cancel
    async def _cancel_all(self, plan: Plan, ctx: ExecutionContext) -> list[LegResult]:
        return await all_ended(self._cancel(c, plan.signal_id, ctx) for c in plan.cancels)

    async def resume_cancels(
        self, signal_id: str, order_link_ids: Sequence[str], ctx: ExecutionContext
    ) -> list[LegResult]:
        """Send the cancels an earlier run of the signal wrote ahead and never saw answered
        (concurrently, as a plan's cancels go). An order our store already knows closed needs
        none: its link is marked done."""
        async with self.uow_factory(atomic=False) as uow:
            pending = [await uow.orders.get(link_id) for link_id in order_link_ids]
        cancels: list[Cancel] = []
        for row in pending:
            if row is None:  # pragma: no cover - a link always references an existing row
                continue
            if row.state.status.is_terminal:
                async with self.uow_factory() as uow:
                    await uow.orders.mark_cancel_done(signal_id, row.uuid, self.clock())
                    await uow.commit()
                continue
            cancels.append(resumed_cancel(row.state, ctx.signal.side))
            RESUMED.labels("cancel_sent").inc()
        return await all_ended(self._cancel(c, signal_id, ctx) for c in cancels)

    async def _cancel(self, action: Cancel, signal_id: str, ctx: ExecutionContext) -> LegResult:
        """Send the cancel and record its answer; its link was written ahead
        (``_write_cancels_ahead``) and is marked done when the order is cancelled or gone."""
        report = await self.gateway.cancel(action, trace_id=ctx.trace_id)
        gone = report.error_kind == ExchangeErrorKind.NOT_FOUND
        async with self.uow_factory() as uow:
            locked = await uow.orders.get(action.order_link_id, for_update=True)
            await self._audit(
                uow, report, ctx, locked.uuid if locked else None, action.order_link_id
            )
            if locked is not None and (report.ok or gone):
                await uow.orders.mark_cancel_done(signal_id, locked.uuid, self.clock())
                if report.order is not None:
                    result = apply_update(locked.state, report.order)
                    if result.applied:
                        saved = await uow.orders.save(locked, result.state)
                        await self._publish(uow.outbox, saved, list(result.events), ctx)
            await uow.commit()
        return LegResult(
            action.order_link_id,
            "cancel",
            report.ok or gone,
            report.order_id or action.order_id,
            None if gone else report.error_kind,
            report.ret_code,
            report.message,
            gone=gone,
        )

    async def _untraded(
        self, plan: Plan, cancels: Sequence[LegResult], ctx: ExecutionContext
    ) -> list[Decimal]:
        """Per cancel of the plan: the quantity of a converted limit that will never trade
        (``domain.orders.untraded_after_cancel``, from an audited lookup of the order after
        its cancel); zero for other cancels, refused ones, and when the lookup fails."""
        untraded: list[Decimal] = []
        for cancel, leg in zip(plan.cancels, cancels, strict=True):
            if cancel.reason is not CancelReason.REPLACED_BY_MARKET or not leg.ok:
                untraded.append(Decimal(0))
                continue
            untraded.append(
                await self.untraded_of(
                    cancel.category,
                    cancel.symbol,
                    cancel.order_link_id,
                    cancel.remaining_qty,
                    ctx,
                )
            )
        return untraded

    async def untraded_of(
        self,
        category: Category,
        symbol: str,
        order_link_id: str,
        planned: Decimal,
        ctx: ExecutionContext,
    ) -> Decimal:
        """What a cancelled order left untraded (at most ``planned``), by an audited lookup of
        it on the exchange (``domain.orders.untraded_after_cancel``; 0 if the lookup fails)."""
        lookup = await self.gateway.find_order(
            category, symbol, order_link_id, trace_id=ctx.trace_id
        )
        await self._audit_alone(lookup, ctx, order_link_id)
        found = lookup.order if lookup.ok else None
        return untraded_after_cancel(found, planned)

    # ------------------------------------------------------------------ helpers
    async def _audit(
        self,
        uow: UnitOfWork,
        report: CallReport,
        ctx: ExecutionContext,
        order_uuid: str | None,
        order_link_id: str,
    ) -> None:
        await record_call(
            uow.orders,
            report,
            trace_id=ctx.trace_id,
            signal_id=ctx.signal.signal_id,
            order_uuid=order_uuid,
            order_link_id=order_link_id,
            is_dry_run=self.is_dry_run,
        )

    async def _publish(
        self,
        writer: EventWriter,
        row: StoredOrder,
        produced: Sequence[OrderEvent],
        ctx: ExecutionContext,
        *,
        submitted_at: datetime | None = None,
    ) -> None:
        context = events.OrderContext(
            order_uuid=row.uuid,
            signal_id=row.signal_id,
            is_dry_run=row.is_dry_run,
            submitted_at=submitted_at or row.submitted_at,
        )
        for event in produced:
            await events.publish_order_event(
                writer,
                event,
                context,
                trace_id=ctx.trace_id,
                market=ctx.market_conditions,
                signal=ctx.summary,
            )


def _untouched_answer_applies(report: CallReport, row: StoredOrder) -> bool:
    """A "created" for an intent as this lane wrote it: ``Executor._answer_untouched``."""
    return (
        report.ok
        and bool(report.order_id)
        and row.state.status is OrderStatus.SUBMITTING
        and not row.state.order_id
    )


def _keep_untraded_conversions(plan: Plan, untraded: Sequence[Decimal], notes: list[str]) -> Plan:
    """The plan with its opening legs shrunk by the converted quantity its limits did not leave
    untraded (filled before the cancel, in part or whole, or not confirmed cancelled; taken
    from the last opening leg backwards; a leg left at zero, or under the instrument's
    minimums, is dropped — its link goes with it)."""
    unconfirmed = sum(
        (
            cancel.remaining_qty - kept
            for cancel, kept in zip(plan.cancels, untraded, strict=True)
            if cancel.reason is CancelReason.REPLACED_BY_MARKET
        ),
        Decimal(0),
    )
    excess = min(unconfirmed, plan.converted_qty)
    if excess == 0:
        return plan
    notes.append(f"convert: {excess} not added (traded, or not confirmed cancelled)")
    instrument = plan.instrument
    places: dict[str, Place | None] = {}
    for place in reversed(plan.places):
        if excess == 0 or place.reduce_only or place.intent is not LegIntent.OPEN:
            continue
        cut = min(excess, place.qty)
        excess -= cut
        left = place.qty - cut
        keep = left > 0 and (
            instrument is None or instrument.meets_minimums(left, place.reference_price)
        )
        notional = place.notional * left / place.qty  # the same price, less quantity
        places[place.order_link_id] = replace(place, qty=left, notional=notional) if keep else None
    actions: list[Action] = []
    for action in plan.actions:
        if isinstance(action, Place) and action.order_link_id in places:
            changed = places[action.order_link_id]
            if changed is not None:
                actions.append(changed)
        else:
            actions.append(action)
    # links follow the actions (Plan.links is derived from them)
    return replace(plan, actions=tuple(actions), converted_qty=Decimal(0))


def _fmt(value: object) -> str | None:
    return None if value is None else str(value)


def _leg_from_row(row: StoredOrder) -> LegResult:
    state = row.state
    ok = state.status not in (OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.SUBMITTING)
    kind = None
    if state.status is OrderStatus.REJECTED:
        kind = ExchangeErrorKind.REJECTED.value
    elif state.status is OrderStatus.SUBMITTING:
        kind = ExchangeErrorKind.UNKNOWN_OUTCOME.value
    return LegResult(
        state.order_link_id,
        "place",
        ok,
        state.order_id,
        kind,
        None,
        state.reject_message or "",
    )
