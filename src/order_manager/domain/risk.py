"""Risk checks: plan + account state + limits -> approved, adjusted (with reasons) or rejected.

Pure; ``now`` is passed in for the orders-per-minute window. Only **opening** exposure is ever
limited: reduce-only legs (and spot sells, which shrink holdings) that shrink exposure are
always allowed, even while trading is paused or a limit is exceeded, and cancels go through
whenever any order action remains. A plan that ends up with no order action is rejected as a
whole, so a rejected plan makes no exchange call at all.

Checks on the opening notional ``N`` of a plan (opening legs + quantity added by amends), in
quote currency at the plan's reference price:

==========================  ================================================================
``trading_paused``          account switch: opening legs dropped (``trading_paused``)
orders per minute           ``max_orders_per_minute_per_symbol``: recent placements of the
                            symbol (``recent_order_times``, last 60 s) + new opening legs
``max_order_notional``      per exchange order (the planner splits below it; safety net)
``max_order_size_ratio``    ``N`` <= ratio x available quote balance (after reservations)
``max_position_notional``   same-direction position (at mark) + our resting same-side orders
                            of the symbol + ``N``
``max_total_exposure``      ``AccountState.exposure()`` + ``N``
``max_daily_volume``        ``AccountState.daily_volume`` + ``N``
balance check               when ``enable_balance_check``: margin ``N / leverage`` plus
                            ``fee_rate x N`` must fit the available balance of the margin coin
                            (quote for linear and spot buys, base for inverse) minus what our
                            open orders reserve; spot sells need the base coin they sell
==========================  ================================================================

When ``N`` exceeds the tightest bound: with ``reduce_instead_of_reject`` every opening leg (and
amend addition) is scaled down by the same factor, rounded down to ``qty_step``, and legs that
fall under the exchange minimums are dropped (verdict ``adjusted``); otherwise the opening legs
are refused. Every exceeded limit is noted; the reported code is the most fundamental one
(balance, then position, exposure, ratio, daily volume). Off limits are ``None``.

The account-wide limits (balance, order-size ratio, total exposure, daily volume) are only as
exact as ``account``: the shell adds the ``commitment`` of every approved plan of a concurrent
signal that its snapshot may not show yet (``AccountState.with_commitments``).

Public API: ``RiskLimits``, ``RiskVerdict``, ``RiskDecision``, ``check(plan, account, limits,
now) -> RiskDecision``, ``commitment(plan, account, now) -> Commitment``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from order_manager.domain.account import AccountState, Commitment, OpenOrder
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.instruments import Instrument
from order_manager.domain.money import ONE, ZERO
from order_manager.domain.orders import OrderState
from order_manager.domain.plans import Action, Amend, Cancel, LegIntent, Place, Plan
from order_manager.domain.rejections import RejectCode, Rejection

RATE_WINDOW = timedelta(minutes=1)
#: When several limits are exceeded, the reported reason is the first of these.
_PRIORITY = (
    RejectCode.INSUFFICIENT_BALANCE,
    RejectCode.MAX_POSITION_SIZE,
    RejectCode.MAX_TOTAL_EXPOSURE,
    RejectCode.MAX_ORDER_SIZE_RATIO,
    RejectCode.MAX_DAILY_VOLUME,
)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Risk parameters (quote currency); the shell maps ``ORDERMANAGER_*`` settings here."""

    enable_balance_check: bool = True
    max_order_notional: Decimal | None = Decimal("10000")
    max_position_notional: Decimal | None = Decimal("50000")
    max_total_exposure: Decimal | None = Decimal("100000")
    max_order_size_ratio: Decimal | None = Decimal("0.5")
    max_daily_volume: Decimal | None = None
    max_orders_per_minute_per_symbol: int | None = 30
    reduce_instead_of_reject: bool = False
    fee_rate: Decimal = Decimal("0.001")


class RiskVerdict(StrEnum):
    APPROVED = "approved"
    ADJUSTED = "adjusted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    verdict: RiskVerdict
    plan: Plan
    notes: tuple[str, ...] = ()
    #: set when rejected, and for adjusted plans the limit that caused the adjustment
    rejection: Rejection | None = None

    @property
    def approved(self) -> bool:
        return self.verdict is not RiskVerdict.REJECTED


@dataclass(frozen=True, slots=True)
class _Bound:
    code: RejectCode
    allowed: Decimal
    message: str


def _opening(plan: Plan) -> tuple[list[Place], list[Amend]]:
    return [p for p in plan.places if p.intent is LegIntent.OPEN], list(plan.amends)


def _notional(places: list[Place], amends: list[Amend]) -> Decimal:
    return sum((p.notional for p in places), ZERO) + sum((a.added_notional for a in amends), ZERO)


def _bounds(
    plan: Plan,
    instrument: Instrument,
    account: AccountState,
    limits: RiskLimits,
    side: Side,
    position_idx: PositionIdx | None,
) -> list[_Bound]:
    price = plan.reference_price or ZERO
    bounds: list[_Bound] = []
    quote, base = instrument.quote_coin, instrument.base_coin
    if limits.max_order_size_ratio is not None:
        balance = (
            max(ZERO, account.available(quote))
            if instrument.category is not Category.INVERSE
            else max(ZERO, account.available(base)) * price
        )
        bounds.append(
            _Bound(
                RejectCode.MAX_ORDER_SIZE_RATIO,
                limits.max_order_size_ratio * balance,
                f"order size above {limits.max_order_size_ratio} of the available balance",
            )
        )
    if limits.max_position_notional is not None:
        if instrument.category is Category.SPOT:
            held = account.balances.get(base, ZERO) * price
        else:
            pos = account.position(
                instrument.category, instrument.symbol, position_idx or PositionIdx.ONE_WAY
            )
            same_direction = pos.size != 0 and (pos.size > 0) == (side is Side.BUY)
            held = pos.notional(pos.mark_price or price) if same_direction else ZERO
        resting = sum(
            (
                o.notional
                for o in account.orders_for(instrument.category, instrument.symbol)
                if o.side is side and not o.reduce_only
            ),
            ZERO,
        )
        bounds.append(
            _Bound(
                RejectCode.MAX_POSITION_SIZE,
                limits.max_position_notional - held - resting,
                f"position would exceed {limits.max_position_notional}",
            )
        )
    if limits.max_total_exposure is not None:
        bounds.append(
            _Bound(
                RejectCode.MAX_TOTAL_EXPOSURE,
                limits.max_total_exposure - account.exposure(),
                f"total exposure would exceed {limits.max_total_exposure}",
            )
        )
    if limits.max_daily_volume is not None:
        bounds.append(
            _Bound(
                RejectCode.MAX_DAILY_VOLUME,
                limits.max_daily_volume - account.daily_volume,
                f"daily volume would exceed {limits.max_daily_volume}",
            )
        )
    if limits.enable_balance_check:
        leverage = account.leverage_for(instrument.symbol)
        if instrument.category is Category.SPOT:
            per_notional = ONE + limits.fee_rate
            available = account.available(quote)
        elif instrument.category is Category.INVERSE:
            per_notional = ONE / leverage + limits.fee_rate
            available = account.available(base) * price
        else:
            per_notional = ONE / leverage + limits.fee_rate
            available = account.available(quote)
        bounds.append(
            _Bound(
                RejectCode.INSUFFICIENT_BALANCE,
                max(ZERO, available) / per_notional,
                "available balance (minus open-order reservations) is insufficient",
            )
        )
    return bounds


def _scale(
    places: list[Place], amends: list[Amend], factor: Decimal, instrument: Instrument
) -> tuple[list[Place], list[Amend]]:
    new_places = []
    for place in places:
        qty = instrument.round_qty(place.qty * factor)
        if instrument.meets_minimums(qty, place.reference_price):
            new_places.append(
                replace(place, qty=qty, notional=instrument.notional(qty, place.reference_price))
            )
    new_amends = []
    for amend in amends:
        added = instrument.round_qty(amend.added_qty * factor)
        if added > 0:
            new_amends.append(
                replace(
                    amend,
                    qty=amend.previous_qty + added,
                    added_qty=added,
                    added_notional=instrument.notional(added, amend.reference_price),
                )
            )
    return new_places, new_amends


class _Problems:
    """The exceeded limits of one check: every one noted, the first one reported."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.first: Rejection | None = None

    def add(self, code: RejectCode, message: str, **details: str) -> None:
        self.notes.append(f"{code.value}: {message}")
        if self.first is None:
            self.first = Rejection(code, message, details)


def check(plan: Plan, account: AccountState, limits: RiskLimits, now: datetime) -> RiskDecision:
    """Apply every limit to ``plan``; see the module docstring for the rules."""
    if plan.is_rejected:
        return RiskDecision(RiskVerdict.REJECTED, plan, plan.notes, plan.rejection)
    instrument = plan.instrument
    if instrument is None or plan.reference_price is None:
        raise ValueError("an executable plan carries its instrument and reference price")
    problems = _Problems()
    places, amends = _opening(plan)
    reducing = [p for p in plan.places if p.intent is LegIntent.REDUCE]
    original = (tuple(places), tuple(amends), tuple(reducing))

    reducing = _spot_sell_balance(reducing, instrument, account, limits, problems)
    if (places or amends) and account.trading_paused:
        problems.add(RejectCode.TRADING_PAUSED, "trading is paused: only reducing orders allowed")
        places, amends = [], []
    places = _orders_per_minute(places, instrument, account, limits, now, problems)
    places = _max_order_size(places, instrument, limits, problems)
    places, amends = _account_bounds(plan, places, amends, instrument, account, limits, problems)
    return _decision(plan, places, amends, reducing, original, problems)


def _spot_sell_balance(
    reducing: list[Place],
    instrument: Instrument,
    account: AccountState,
    limits: RiskLimits,
    problems: _Problems,
) -> list[Place]:
    """Spot sells spend the base coin: with the balance check on, they must fit it."""
    if not (limits.enable_balance_check and instrument.category is Category.SPOT and reducing):
        return reducing
    selling = sum((p.qty for p in reducing), ZERO)
    available = account.available(instrument.base_coin)
    if selling <= available:
        return reducing
    problems.add(
        RejectCode.INSUFFICIENT_BALANCE,
        f"selling {selling} {instrument.base_coin} but {available} available",
        required=str(selling),
        available=str(available),
    )
    if limits.reduce_instead_of_reject and available > 0:
        return _scale(reducing, [], available / selling, instrument)[0]
    return []


def _orders_per_minute(
    places: list[Place],
    instrument: Instrument,
    account: AccountState,
    limits: RiskLimits,
    now: datetime,
    problems: _Problems,
) -> list[Place]:
    limit = limits.max_orders_per_minute_per_symbol
    if not places or limit is None:
        return places
    recent = sum(
        1 for t in account.recent_order_times.get(instrument.symbol, ()) if now - t < RATE_WINDOW
    )
    room = max(0, limit - recent)
    if len(places) <= room:
        return places
    problems.add(
        RejectCode.RATE_LIMITED,
        f"{recent} orders for {instrument.symbol} in the last minute (max {limit})",
        recent=str(recent),
        limit=str(limit),
    )
    return places[:room] if limits.reduce_instead_of_reject else []


def _max_order_size(
    places: list[Place], instrument: Instrument, limits: RiskLimits, problems: _Problems
) -> list[Place]:
    cap = limits.max_order_notional
    if cap is None:
        return places
    kept: list[Place] = []
    for place in places:
        if place.notional <= cap:
            kept.append(place)
            continue
        problems.add(RejectCode.MAX_ORDER_SIZE, f"order value {place.notional} above {cap}")
        if limits.reduce_instead_of_reject:
            kept += _scale([place], [], cap / place.notional, instrument)[0]
    return sorted(kept, key=lambda p: p.leg)


def _account_bounds(
    plan: Plan,
    places: list[Place],
    amends: list[Amend],
    instrument: Instrument,
    account: AccountState,
    limits: RiskLimits,
    problems: _Problems,
) -> tuple[list[Place], list[Amend]]:
    """Position, exposure, ratio, daily volume and balance bounds on the opening notional:
    every exceeded one noted (most fundamental first); scaled to the tightest or refused."""
    requested = _notional(places, amends)
    if requested <= 0:
        return places, amends
    side = places[0].side if places else amends[0].side
    idx = places[0].position_idx if places else None
    bounds = _bounds(plan, instrument, account, limits, side, idx)
    violated = [b for b in bounds if b.allowed < requested]
    if not violated:
        return places, amends
    for bound in sorted(violated, key=lambda b: _PRIORITY.index(b.code)):
        allowed = max(ZERO, bound.allowed)
        problems.add(
            bound.code,
            f"{bound.message} (requested {requested}, allowed {allowed})",
            requested=str(requested),
            allowed=str(allowed),
        )
    tightest = min(violated, key=lambda b: b.allowed)
    if limits.reduce_instead_of_reject and tightest.allowed > 0:
        return _scale(places, amends, tightest.allowed / requested, instrument)
    return [], []


def _decision(
    plan: Plan,
    places: list[Place],
    amends: list[Amend],
    reducing: list[Place],
    original: tuple[tuple[Place, ...], tuple[Amend, ...], tuple[Place, ...]],
    problems: _Problems,
) -> RiskDecision:
    """Rejected when no order action is left, approved when nothing changed, else the plan
    with the surviving (and scaled) actions, in their order, cancels kept."""
    notes = tuple(problems.notes)
    if not places and not amends and not reducing:
        rejection = problems.first or Rejection(RejectCode.BELOW_MIN_QTY, "nothing left to place")
        return RiskDecision(
            RiskVerdict.REJECTED,
            Plan.rejected(plan.signal_id, rejection, plan.notes + notes),
            notes,
            rejection,
        )
    if (tuple(places), tuple(amends), tuple(reducing)) == original:
        return RiskDecision(RiskVerdict.APPROVED, plan, notes)
    by_leg = {p.leg: p for p in (*places, *reducing)}
    amend_by_link = {a.order_link_id: a for a in amends}
    survivors: list[Action] = []
    for action in plan.actions:
        if isinstance(action, Cancel):
            survivors.append(action)
        elif isinstance(action, Amend) and action.order_link_id in amend_by_link:
            survivors.append(amend_by_link[action.order_link_id])
        elif isinstance(action, Place) and action.leg in by_leg:
            survivors.append(by_leg[action.leg])
    adjusted = replace(plan, actions=tuple(survivors), notes=plan.notes + notes)
    return RiskDecision(RiskVerdict.ADJUSTED, adjusted, notes, problems.first)


def commitment(plan: Plan, account: AccountState, now: datetime) -> Commitment:
    """What an approved ``plan`` is about to hold on the exchange, as our open orders will show
    it once its intents are written: every leg that reserves or adds exposure (reduce-only legs
    do neither) at its price — a market leg at the plan's reference price — and the quantity
    each amend adds, at the amend's price; reservations at the symbol's leverage in
    ``account``. ``opening_notional`` is what the plan adds to today's volume."""
    instrument = plan.instrument
    if instrument is None or plan.is_rejected:
        return Commitment((), ZERO)
    leverage = account.leverage_for(instrument.symbol)

    def planned(
        leg: Place | Amend, order_type: OrderType, qty: Decimal, tif: TimeInForce | None
    ) -> OpenOrder:
        idx = leg.position_idx if isinstance(leg, Place) else None
        state = OrderState.submitting(
            order_link_id=leg.order_link_id,
            category=leg.category,
            symbol=leg.symbol,
            side=leg.side,
            order_type=order_type,
            qty=qty,
            price=leg.price,
            time_in_force=tif,
            created_at=now,
            position_idx=idx or PositionIdx.ONE_WAY,
        )
        return OpenOrder.from_state(
            state, instrument, leverage=leverage, reference_price=leg.reference_price
        )

    orders = [
        planned(p, p.order_type, p.qty, p.time_in_force) for p in plan.places if not p.reduce_only
    ]
    orders += [planned(a, OrderType.LIMIT, a.added_qty, None) for a in plan.amends]
    return Commitment(tuple(orders), plan.opening_notional)
