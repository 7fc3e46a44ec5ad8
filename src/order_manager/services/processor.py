"""The signal processor: account state → plan → risk → execution → outcome (``SignalProcessor``).

For one validated signal (the intake has deduplicated it, applied the warm-up policy — a
warm-up signal under ``dry_run`` arrives at the paper processor — and holds its per-symbol lane):

1. **Resume**: when the signal already owns order rows (a redelivery after a crash, or a retry
   after ``failed``), it is NOT planned again — re-planning would see its own orders and could
   amend or duplicate them. Intents still ``submitting`` are re-sent with their stored
   parameters and orderLinkId (the exchange dedupes), answered rows are reported as they are.
   Only a signal whose every intent is ``failed`` (proved never to have reached the exchange)
   plans afresh, reusing those rows.
2. **Account state**: balances and positions from the exchange (the gateway), our own
   non-terminal orders from the database (their reservations, amend/cancel candidates), our
   recent order times for the orders-per-minute limit, today's opening volume for the
   daily-volume limit (UTC day; each order's planned notional, the traded share once it is
   finished — ``OrderRepository.daily_volume``), the symbol's leverage.
3. **Instrument** and a **fresh market snapshot** (``None`` when stale → the planner refuses
   ``market_data_stale``/``market_data_unavailable``; prices never come from the signal).
4. ``domain.planner.plan`` → ``domain.risk.check`` → a rejected plan returns
   ``SignalRejected`` and makes no exchange call at all.
5. ``Executor.execute`` (write-ahead intents, audit, events) → outcome:

   * any leg with an unknown outcome → ``SignalFailed(retryable=True)`` (intents stay
     ``submitting``; a retry resumes them, recovery resolves them at start);
   * authentication refused → ``SignalFailed(retryable=False)`` and a loud log;
   * at least one order placed or amended → ``SignalExecuted`` (refused sibling legs listed in
     ``partial_failures``);
   * every leg refused by the exchange (e.g. 110007 with the balance check off) →
     ``SignalRejected(exchange_rejected)`` with the exchange's retCode and message.

Exchange reads that fail transiently (``ConnectionError``) give ``SignalFailed(retryable)``;
nothing was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

import structlog
from prometheus_client import Counter

from order_manager.domain.account import AccountState, Commitment, OpenOrder
from order_manager.domain.amends import RecordedAmend
from order_manager.domain.enums import Category, OrderType, TimeInForce
from order_manager.domain.instruments import Instrument
from order_manager.domain.orders import OrderStatus, untraded_in_store
from order_manager.domain.planner import PlannerConfig, plan
from order_manager.domain.plans import LegIntent, Place, Relation, WrittenCancel
from order_manager.domain.positions import Position
from order_manager.domain.rejections import RejectCode, Rejection
from order_manager.domain.risk import RATE_WINDOW, RiskLimits, check, commitment
from order_manager.domain.signals import TradingSignal
from order_manager.services.executor import (
    RESUMED,
    ExecutionContext,
    ExecutionResult,
    Executor,
    LegResult,
)
from order_manager.services.in_flight import InFlightPlans
from order_manager.services.ports.exchange import ExchangeGateway
from order_manager.services.ports.orders import StoredOrder
from order_manager.services.ports.processing import (
    SignalExecuted,
    SignalFailed,
    SignalOutcome,
    SignalRejected,
)
from order_manager.services.ports.uow import UnitOfWorkFactory
from order_manager.services.store_freshness import StoreFreshness

log = structlog.get_logger("order_manager.services.processor")

ACCOUNT_READS = Counter(
    "om_account_reads_total",
    "Where a signal's balances and positions came from: store (the tracker's), store_behind "
    "(store configured, our taker's fill not applied in time: REST), exchange (REST)",
    ["source"],
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def trading_day_start(now: datetime) -> datetime:
    """Start of the trading day for the daily-volume limit: UTC midnight (Bybit's day)."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class TradingSwitch:
    """The operator's pause switch (``POST /api/v1/trading/pause|resume``): while paused, risk
    drops opening legs; reducing legs still go through."""

    paused: bool = False


class AccountSource(StrEnum):
    """Where balances and positions for planning come from.

    ``exchange`` (default): REST per signal — authoritative even when our event stream lags.
    ``store`` (``ORDERMANAGER_ACCOUNT_SOURCE=store``): the tracker's wallet and position store
    (kept from the private stream), read with our orders — two REST round trips fewer per
    signal. Used only while the store is trusted (``StoreFreshness``: the private stream is up
    and no gap reconciliation is pending). While an acknowledged market/IOC order of the
    symbol has no final event yet (its fill may be missing) the lane waits for the tracker's
    next commits (``store_wait``) and reads again; the exchange is asked when that time runs
    out, when the store is not trusted, or when it has no wallet yet. Needs the tracker.
    The paper exchange answers both from memory, so dry-run always uses it directly."""

    EXCHANGE = "exchange"
    STORE = "store"


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    limits: RiskLimits = field(default_factory=RiskLimits)
    account_source: AccountSource = AccountSource.EXCHANGE
    #: category of a signal without ``metadata.category`` (``ORDERMANAGER_CATEGORY``)
    default_category: Category = Category.LINEAR
    #: ``store``: how long a lane waits for the tracker to apply the final event of the
    #: symbol's acknowledged taker before asking the exchange instead (seconds)
    store_wait: float = 0.25


@dataclass(frozen=True, slots=True)
class _Stored:
    existing: list[StoredOrder]
    open_rows: Sequence[StoredOrder]
    recent: tuple[datetime, ...]
    balances: Mapping[str, Decimal] | None = None
    positions: tuple[Position, ...] | None = None
    #: opening notional traded today (only read when the daily-volume limit is on)
    daily_volume: Decimal = Decimal(0)
    #: False while an acknowledged market/IOC order of the symbol still waits for its final
    #: event: its fill may be missing from the tracker's store
    store_current: bool = True


def place_from_row(row: StoredOrder) -> Place:
    """The stored intent as the ``Place`` that created it (to re-send it unchanged)."""
    state = row.state
    price = state.price or Decimal(0)
    return Place(
        leg=row.leg or 1,
        order_link_id=state.order_link_id,
        category=state.category,
        symbol=state.symbol,
        side=state.side,
        order_type=state.order_type,
        qty=state.qty,
        price=state.price,
        time_in_force=state.time_in_force
        or (TimeInForce.IOC if state.order_type is OrderType.MARKET else TimeInForce.GTC),
        reduce_only=state.reduce_only,
        post_only=False,
        position_idx=state.position_idx if state.category.has_positions else None,
        intent=LegIntent.REDUCE if state.reduce_only else LegIntent.OPEN,
        reference_price=price,
        notional=state.qty * price,
        take_profit=state.take_profit,
        stop_loss=state.stop_loss,
    )


class Processor:
    """``SignalProcessor`` over one exchange gateway (live Bybit or the paper exchange)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        gateway: ExchangeGateway,
        config: ProcessorConfig | None = None,
        *,
        switch: TradingSwitch | None = None,
        clock: Callable[[], datetime] = utc_now,
        freshness: StoreFreshness | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        #: ``store``: whether the tracker's store is trusted, and its commits to wait for
        #: (without one from the wiring: trusted, and no commit ever comes — a lane behind
        #: asks the exchange once ``store_wait`` has passed)
        self.freshness = freshness or StoreFreshness()
        self.gateway = gateway
        self.config = config or ProcessorConfig()
        self.switch = switch or TradingSwitch()
        self.clock = clock
        self.executor = Executor(uow_factory, gateway, clock=clock)
        #: approved plans of concurrent lanes that an account snapshot may not show yet
        self.in_flight = InFlightPlans()

    @property
    def is_dry_run(self) -> bool:
        return self.gateway.is_dry_run

    async def process(
        self, signal: TradingSignal, trace_id: str, *, is_new: bool = False
    ) -> SignalOutcome:
        log.debug("processor.start", signal_id=signal.signal_id, trace_id=trace_id)
        try:
            outcome = await self._process(signal, trace_id, is_new=is_new)
        except PermissionError as error:
            log.error("processor.exchange_auth_failed", error=str(error), trace_id=trace_id)
            return SignalFailed("exchange_auth", str(error), False, self.is_dry_run)
        except ConnectionError as error:
            log.warning("processor.exchange_unavailable", error=str(error), trace_id=trace_id)
            return SignalFailed("exchange_unavailable", str(error), True, self.is_dry_run)
        log.info(
            "processor.outcome",
            signal_id=signal.signal_id,
            status=outcome.status,
            trace_id=trace_id,
            dry_run=self.is_dry_run,
        )
        return outcome

    async def _process(
        self, signal: TradingSignal, trace_id: str, *, is_new: bool
    ) -> SignalOutcome:
        with self.in_flight.snapshot() as began:  # before the first account read
            return await self._plan_and_execute(signal, trace_id, is_new=is_new, began=began)

    async def _plan_and_execute(
        self, signal: TradingSignal, trace_id: str, *, is_new: bool, began: int
    ) -> SignalOutcome:
        category, symbol = signal.category_or(self.config.default_category), signal.asset
        try:
            instrument = await self.gateway.instrument(category, symbol)
        except LookupError as error:
            return SignalRejected(
                Rejection(RejectCode.UNKNOWN_ASSET, str(error), {"asset": symbol}),
                self.is_dry_run,
            )
        # every read is independent: one round trip of wall time instead of five
        if self._store_usable():
            stored, market = await asyncio.gather(
                self._current_store(signal, instrument, is_new=is_new),
                self.gateway.market(category, symbol),
            )
            if stored.store_current:
                ACCOUNT_READS.labels("store").inc()
                balances = stored.balances or await self._balances(trace_id)
                positions = stored.positions or ()
            else:  # fills of our own taker orders may not be in the store yet: ask the exchange
                ACCOUNT_READS.labels("store_behind").inc()
                balances, positions = await asyncio.gather(
                    self._balances(trace_id),
                    self.gateway.positions(
                        category, symbol, trace_id=trace_id, include_others=True
                    ),
                )
        else:
            ACCOUNT_READS.labels("exchange").inc()
            stored, market, balances, positions = await asyncio.gather(
                self._stored(signal, instrument, is_new=is_new),
                self.gateway.market(category, symbol),
                self._balances(trace_id),
                self.gateway.positions(category, symbol, trace_id=trace_id, include_others=True),
            )
        existing, rows, recent = stored.existing, stored.open_rows, stored.recent
        own = [row for row in existing if row.signal_id == signal.signal_id]
        carried = Decimal(0)
        if existing:
            retry_all_failed = bool(own) and all(r.state.status is OrderStatus.FAILED for r in own)
            if not retry_all_failed and await self._wrote_ahead(signal, own):
                return await self._resume(signal, trace_id, existing)
            # planned again: a conversion an earlier run already cancelled is carried over
            carried = await self._carried_conversion(signal, trace_id, rows)

        leverage = await self.gateway.leverage(category, symbol)
        account = await self._account(
            instrument, balances, positions, leverage, rows, recent, stored.daily_volume
        )
        # from here to the hold, no await: no other lane approves against the same headroom
        unseen = self.in_flight.unseen(began)
        account = account.with_commitments(unseen)
        now = self.clock()
        planned = plan(
            signal,
            account,
            instrument,
            market,
            self.config.planner,
            now,
            carried_conversion=carried,
        )
        decision = check(planned, account, self.config.limits, now)
        notes = tuple(planned.notes) + tuple(decision.notes)
        if not decision.approved:
            rejection = decision.rejection or planned.rejection
            assert rejection is not None
            if unseen:  # say so: the refusal may come from plans approved a moment ago
                notes += (_counted(unseen),)
                log.info(
                    "processor.refused_with_concurrent_plans",
                    signal_id=signal.signal_id,
                    code=rejection.code.value,
                    counted=notes[-1],
                    trace_id=trace_id,
                )
            return SignalRejected(rejection, self.is_dry_run, notes)
        ctx = ExecutionContext(signal, trace_id, market)
        with self.in_flight.holding(commitment(decision.plan, account, now)):
            result = await self.executor.execute(decision.plan, ctx)
        return self._outcome(result, notes + result.notes)

    # ------------------------------------------------------------------ account state
    def _store_usable(self) -> bool:
        """``store`` configured, a live exchange (the paper exchange answers from memory) and
        nothing known to be missing from the store (``StoreFreshness.trusted``)."""
        if self.config.account_source is not AccountSource.STORE or self.gateway.is_dry_run:
            return False
        return self.freshness.trusted

    async def _current_store(
        self, signal: TradingSignal, instrument: Instrument, *, is_new: bool
    ) -> _Stored:
        """The store's account state; while an acknowledged taker of the symbol still waits for
        its final event, wait for the tracker's next commit of the symbol and read again — up to
        ``store_wait``. The result may still be behind (``store_current`` False): the caller
        then asks the exchange."""
        freshness = self.freshness
        deadline = asyncio.get_running_loop().time() + self.config.store_wait
        while True:
            version = freshness.version
            stored = await self._stored(signal, instrument, with_account=True, is_new=is_new)
            if not freshness.trusted:  # the stream dropped meanwhile: the read may lack events
                return replace(stored, store_current=False)
            if stored.store_current:
                return stored
            remaining = deadline - asyncio.get_running_loop().time()
            if not await freshness.wait_commit(version, remaining, instrument.symbol):
                return stored

    async def _balances(self, trace_id: str) -> Mapping[str, Decimal]:
        """The wallet, read only when a check needs it: the balance check, or the order size
        ratio (a share of the available balance). With both off no wallet call is made per
        signal (the spec's "disabling the balance check reduces API calls"); Bybit still
        refuses what the account cannot pay (110007)."""
        limits = self.config.limits
        if not limits.enable_balance_check and limits.max_order_size_ratio is None:
            return {}
        return await self.gateway.balances(trace_id=trace_id)

    async def _stored(
        self,
        signal: TradingSignal,
        instrument: Instrument,
        *,
        with_account: bool = False,
        is_new: bool = False,
    ) -> _Stored:
        """This signal's existing orders (none to look for when the claim is ``is_new``), our
        open orders, our recent order times (and with ``with_account`` the tracker's balances
        and positions). Plain reads of committed rows, no transaction (``atomic=False``: no
        BEGIN/ROLLBACK round trips): this signal's lane is the only writer of its symbol's new
        orders, and a tracker update landing between two reads is no different from one
        landing just after them."""
        now = self.clock()
        since = now - RATE_WINDOW
        dry = self.is_dry_run
        async with self.uow_factory(atomic=False) as uow:
            existing = [] if is_new else list(await uow.orders.for_signal(signal.signal_id))
            # the store path also needs the symbol's acknowledged takers (below): one read of
            # every open order serves both
            every = await uow.orders.all_open_orders(is_dry_run=dry, resting_only=not with_account)
            rows = [row for row in every if not _settled_taker(row)]
            recent: tuple[datetime, ...] = ()
            if self.config.limits.max_orders_per_minute_per_symbol is not None:
                recent = await uow.orders.recent_order_times(
                    instrument.category, instrument.symbol, since, is_dry_run=dry
                )
            volume = Decimal(0)
            if self.config.limits.max_daily_volume is not None:
                volume = await uow.orders.daily_volume(trading_day_start(now), is_dry_run=dry)
            if not with_account:
                return _Stored(existing, rows, recent, daily_volume=volume)
            if any(
                _settled_taker(row)
                and row.state.category is instrument.category
                and row.state.symbol == instrument.symbol
                for row in every
            ):
                return _Stored(existing, rows, recent, store_current=False, daily_volume=volume)
            balances = await uow.tracking.available_balances(is_dry_run=dry)
            books = await uow.tracking.positions(is_dry_run=dry)
        # every position of the category: the symbol's for planning, all for total exposure
        positions = tuple(b.position for b in books if b.position.category is instrument.category)
        # another symbol's acknowledged taker is in the store's book only once the tracker
        # applied its fill — in the transaction that also fills its row: until then the row
        # counts (reservation, exposure), at the notional it was planned at
        return _Stored(
            existing, every, recent, dict(balances) or None, positions, daily_volume=volume
        )

    async def _account(
        self,
        instrument: Instrument,
        balances: Mapping[str, Decimal],
        positions: tuple[Position, ...],
        leverage: Decimal,
        rows: Sequence[StoredOrder],
        recent: tuple[datetime, ...],
        daily_volume: Decimal = Decimal(0),
    ) -> AccountState:
        category, symbol = instrument.category, instrument.symbol
        instruments: dict[tuple[Category, str], Instrument] = {(category, symbol): instrument}
        open_orders: list[OpenOrder] = []
        for row in rows:  # acknowledged takers: only from the store (`_stored`)
            key = (row.state.category, row.state.symbol)
            if key not in instruments:
                try:
                    instruments[key] = await self.gateway.instrument(*key)
                except LookupError:
                    continue
            lev = leverage if key == (category, symbol) else Decimal(1)
            open_orders.append(
                OpenOrder.from_state(
                    row.state,
                    instruments[key],
                    leverage=lev,
                    reference_price=_planned_price(row),
                    signal_ids=row.signal_ids,
                    is_external=row.is_external,
                )
            )
        return AccountState(
            balances=balances,
            positions=positions,
            open_orders=tuple(open_orders),
            recent_order_times={symbol: recent},
            daily_volume=daily_volume,
            leverage={symbol: leverage},
            trading_paused=self.switch.paused,
        )

    # ------------------------------------------------------------------ resume
    async def _carried_conversion(
        self,
        signal: TradingSignal,
        trace_id: str,
        open_rows: Sequence[StoredOrder],
    ) -> Decimal:
        """An earlier run of this ``convert`` signal cancelled limits and died before writing
        its intents. A limit still open in our store is converted again by the new plan (its
        cancel comes back "not found", its lookup says what it left untraded); one our store
        already knows closed is not a candidate any more, so what it left untraded (by the
        store's final record of it, at most what that run converted) is carried into the new
        plan. (Until the eighth session that was an exchange lookup; a restarted dry-run's new
        paper exchange knows no closed order of the old one, and the quantity was lost.)"""
        async with self.uow_factory(atomic=False) as uow:
            written = await uow.orders.cancel_links(signal.signal_id)
            still_open = {row.state.order_link_id for row in open_rows}
            closed = [
                (cancel, await uow.orders.get(cancel.order_link_id))
                for cancel in written
                if cancel.converted_qty > 0 and cancel.order_link_id not in still_open
            ]
        if not closed:
            return Decimal(0)
        carried = sum(
            (
                untraded_in_store(row.state, cancel.converted_qty)
                for cancel, row in closed
                if row is not None
            ),
            Decimal(0),
        )
        if carried > 0:
            RESUMED.labels("conversion_carried").inc()
        log.info(
            "processor.conversion_carried_over",
            signal_id=signal.signal_id,
            carried=str(carried),
            trace_id=trace_id,
        )
        return carried

    async def _wrote_ahead(self, signal: TradingSignal, own: list[StoredOrder]) -> bool:
        """Did an earlier run of the signal get past its write-ahead commit? Its own orders or
        an amend link say so. Orders it is linked to only by cancels do not: under
        ``pending_limits_on_market_signal=convert`` the cancels go out before the intents, and
        a run that died in between must plan again — not be reported executed with nothing
        placed."""
        if own:
            return True
        async with self.uow_factory(atomic=False) as uow:
            relations = await uow.orders.link_relations(signal.signal_id)
        return relations != {Relation.CANCEL}

    async def _resume(
        self, signal: TradingSignal, trace_id: str, rows: list[StoredOrder]
    ) -> SignalOutcome:
        """Finish a signal that already has order rows, without planning it again."""
        own = [row for row in rows if row.signal_id == signal.signal_id]
        legs: list[LegResult] = []
        notes: list[str] = ["resumed: not planned again"]
        pending = [
            row for row in own if row.state.status in (OrderStatus.SUBMITTING, OrderStatus.FAILED)
        ]
        unsettled: list[RecordedAmend] = []
        cancels: Sequence[WrittenCancel] = ()
        if len(own) < len(rows):  # linked to other orders: amends to settle, cancels to send?
            async with self.uow_factory(atomic=False) as uow:
                amends = await uow.orders.amend_links(signal.signal_id)
                cancels = await uow.orders.cancel_links(signal.signal_id)
            unsettled = [link for link in amends if not link.landed]
        unsent = [c.order_link_id for c in cancels if not c.done]
        cancelled = {c.order_link_id for c in cancels}
        if pending or unsettled or unsent:
            market = await self.gateway.market(rows[0].state.category, signal.asset)
            ctx = ExecutionContext(signal, trace_id, market)
            # as a plan runs: cancels first (they free margin), then places and amends
            legs += await self.executor.resume_cancels(signal.signal_id, unsent, ctx)
            for row in pending:
                legs.append(await self.executor.resend(place_from_row(row), row, ctx))
            free_leg = max((row.leg or 0 for row in own), default=0) + 1
            for link in unsettled:
                settled = await self.executor.resume_amend(link, ctx, free_leg)
                legs.append(settled.leg)
                notes += settled.notes
                if settled.fallback is not None:
                    legs.append(settled.fallback)
                    free_leg += 1
        sent = {leg.order_link_id for leg in legs}
        async with self.uow_factory() as uow:
            for row in rows:
                if row.state.order_link_id in sent or row.state.order_link_id in cancelled:
                    continue
                fresh = await uow.orders.get(row.state.order_link_id)
                if fresh is None:
                    continue
                if fresh.signal_id != signal.signal_id:
                    legs.append(
                        LegResult(fresh.state.order_link_id, "amend", True, fresh.state.order_id)
                    )
                else:
                    legs.append(_row_leg(fresh))
        result = ExecutionResult(tuple(legs), notes=tuple(notes))
        return self._outcome(result, result.notes)

    # ------------------------------------------------------------------ outcome
    def _outcome(self, result: ExecutionResult, notes: tuple[str, ...]) -> SignalOutcome:
        dry = self.is_dry_run
        if result.auth_failed:
            return SignalFailed("exchange_auth", "the exchange refused our credentials", False, dry)
        if result.unresolved:
            first = result.unresolved[0]
            return SignalFailed(
                "exchange_outcome_unknown",
                f"{len(result.unresolved)} order(s) without a definite answer "
                f"(first {first.order_link_id}: {first.message}); recovery resolves them",
                True,
                dry,
            )
        placed = result.placed
        if placed:
            return SignalExecuted(
                order_link_ids=tuple(leg.order_link_id for leg in placed),
                order_ids=tuple(leg.order_id for leg in placed if leg.order_id),
                is_dry_run=dry,
                partial_failures={
                    leg.order_link_id: leg.message for leg in result.refused + result.failed_cancels
                },
                notes=notes,
            )
        refused = result.refused
        if refused:
            first = refused[0]
            details: Mapping[str, str] = {
                "order_link_id": first.order_link_id,
                "ret_code": str(first.ret_code) if first.ret_code is not None else "",
                "error_kind": first.error_kind or "",
            }
            return SignalRejected(
                Rejection(RejectCode.EXCHANGE_REJECTED, first.message, details), dry, notes
            )
        return SignalRejected(
            Rejection(RejectCode.BELOW_MIN_QTY, "nothing was sent to the exchange"), dry, notes
        )


def _counted(unseen: Sequence[Commitment]) -> str:
    orders = sum(len(c.orders) for c in unseen)
    notional = sum((o.notional for c in unseen for o in c.orders), Decimal(0))
    return (
        f"risk counted {orders} order(s) of {len(unseen)} concurrent signal(s) not yet in the"
        f" account state read ({notional} notional)"
    )


def _planned_price(row: StoredOrder) -> Decimal | None:
    """The price a market order was planned at (its planned notional over its quantity), so it
    reserves and counts like a priced one; None for inverse rows, whose notional is in
    contracts and says nothing of the price."""
    state, notional = row.state, row.planned_notional
    if state.category is Category.INVERSE or not notional or not state.qty:
        return None
    return notional / state.qty


def _settled_taker(row: StoredOrder) -> bool:
    """An acknowledged market/IOC/FOK order is never resting: by the time the exchange answered
    it has filled (the exchange's position shows it) or been cancelled, even if its final event
    is not applied yet. Planning must not cancel, amend or count it against the position again
    (that would double the reduce-only cover and cancel orders that are already gone)."""
    state = row.state
    immediate = state.order_type is OrderType.MARKET or state.time_in_force in (
        TimeInForce.IOC,
        TimeInForce.FOK,
    )
    return immediate and state.order_id is not None


def _row_leg(row: StoredOrder) -> LegResult:
    state = row.state
    if state.status is OrderStatus.REJECTED:
        return LegResult(
            state.order_link_id, "place", False, None, "rejected", None, state.reject_message or ""
        )
    if state.status is OrderStatus.FAILED:
        return LegResult(
            state.order_link_id, "place", False, None, "retryable", None, state.reject_message or ""
        )
    return LegResult(state.order_link_id, "place", True, state.order_id)
