"""The planner: one validated signal + account state + instrument + fresh market -> a ``Plan``.

Pure and deterministic: the same inputs always give the same plan (and so the same
orderLinkIds). Every rule below is a decision recorded in ``docs/decisions.md``.

Order type (``_choose_order_type``), first match wins:
  1. ``metadata.order_type`` overrides everything;
  2. ``metadata.limit_price`` / ``post_only`` / ``time_in_force=PostOnly`` imply limit;
  3. warm-up signals use limit (``warmup_uses_limit``), so bootstrap noise never pays the spread;
  4. ``metadata.urgency`` ``high`` -> market, ``low`` -> limit;
  5. confidence >= ``market_confidence_threshold`` **and** fresh spread (ask - bid, compared to
     the mid in bps) <= ``market_max_spread_bps`` -> market; otherwise limit.

Prices always come from the fresh book (``MarketSnapshot`` no older than
``market_data_max_age``; stale or crossed data -> reject, nothing is priced from the signal's
advisory snapshot). A limit buy is anchored at the best bid and improved by
``limit_price_offset_bps`` towards the ask, but never closer than one tick to it (a sell
mirrors this), so computed limit orders always rest as maker orders; ``metadata.limit_price``
is used as given. Buy prices round down to the tick, sell prices up.

Time in force: market -> IOC (Bybit's rule; a market order asked to be post-only, by
``metadata.post_only`` or ``metadata.time_in_force=PostOnly``, is rejected
``unsupported_order``; asked for GTC/FOK, it gets a plan note); ``metadata.time_in_force``
for limits; post-only (``metadata.post_only`` or ``post_only_limits``) -> ``PostOnly``;
otherwise ``limit_time_in_force`` (GTC).

Quantity: ``amount`` is quote currency unless ``amount_unit`` says ``base`` (sells without
``amount_unit`` use ``sell_amount_unit``). Quote amounts are converted at the order's reference
price (the limit price, or the touch a market order takes: ask for buys, bid for sells), then
rounded **down** to ``qty_step``, so qty x price never exceeds the amount. Below
``min_order_qty`` or ``min_notional`` -> reject (never rounded up: that would spend more than
asked).

Position logic (derivatives; spot has no positions):
  * same direction as the position (or flat) -> scale-in: an opening leg;
  * opposite direction -> a ``reduceOnly`` leg up to the position size not yet covered by our
    resting reduce-only orders (ours and ``pending``/``partially_filled`` only: external
    orders, conditional orders and ``submitting`` intents do not cover; the whole position
    when the amount covers it); the remainder flips the position only with
    ``allow_position_flip``, otherwise it is dropped (noted);
  * opening a short needs ``allow_short``; ``metadata.reduce_only`` keeps only reducing legs;
  * hedge mode (linear only; inverse always runs one-way): longs live in positionIdx 1,
    shorts in 2; a buy first reduces a short (idx 2), a sell first reduces a long (idx 1);
    ``metadata.position_idx`` picks the book explicitly.

Resting orders of the symbol: only ``OpenOrder.is_actionable`` ones (our own, ``pending`` or
``partially_filled``) are candidates for any cancel or amend below; external orders, conditional
orders (``untriggered``/``triggered``) and ``submitting`` intents are never touched (they still
count for reservations and exposure in risk):
  * opposite-side open orders are cancelled (``cancel_opposite_orders``): the newest signal
    expresses the current view;
  * a same-side **limit** signal amends the newest unfilled resting limit order (quantity
    added, price moved to the fresh price) instead of placing another one (many-to-one), when
    the sum still fits one order (``amend_resting_orders``);
  * a same-side **market** signal treats resting limits per ``pending_limits_on_market``:
    ``keep`` (default), ``cancel`` them, or ``convert`` (cancel and add their remaining
    quantity to the market order).

Splitting: a leg larger than one order may be is split into equal children (qty_step units,
remainder spread one step at a time over the first children; children sum exactly to the
parent). One order may be at most ``maxOrderQty`` (limit) / ``maxMktOrderQty`` (market), at
most ``max_order_notional`` (opening legs), and for market orders at most
``max_book_depth_share`` of the opposite side's depth. More than ``max_split_orders`` opening
children -> reject, or cap the quantity when ``reduce_instead_of_reject``. All children are
placed at once (no time slicing).

TP/SL: ``metadata.stop_loss``/``take_profit`` (or ``default_stop_loss_pct``/
``default_take_profit_pct`` of the reference price) are attached to opening legs (exchange-
native, so they survive our outages); they must lie on the right side of the reference price.
A signal with TP/SL never amends a resting order (it places its own, carrying them). Spot
orders carry no TP/SL and reduce-only legs cannot: a signal's own stop_loss/take_profit that
nothing carries is not attached and the plan notes it.

Public API: ``PlannerConfig``, ``PendingLimitPolicy``, ``plan(signal, account, instrument,
market, config, now) -> Plan``, ``stale_orders(open_orders, now, max_age) -> tuple[Cancel, ...]``
(actionable orders only), ``split_quantity(qty, cap, step, max_parts) -> tuple[Decimal, ...]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from order_manager.domain.account import AccountState, OpenOrder
from order_manager.domain.enums import (
    Category,
    OrderType,
    PositionIdx,
    PositionMode,
    Side,
    TimeInForce,
)
from order_manager.domain.instruments import Instrument
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.money import BPS, ONE, ZERO, floor_to_step
from order_manager.domain.plans import (
    Action,
    Amend,
    Cancel,
    CancelReason,
    LegIntent,
    Place,
    Plan,
    cancel_of,
    order_link_id,
)
from order_manager.domain.rejections import RejectCode, Rejection
from order_manager.domain.signals import AmountUnit, TradingSignal, Urgency


class PendingLimitPolicy(StrEnum):
    KEEP = "keep"
    CANCEL = "cancel"
    CONVERT = "convert"


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """Planner parameters; the shell maps ``ORDERMANAGER_*`` settings onto these fields."""

    order_link_id_prefix: str = "om"
    position_mode: PositionMode = PositionMode.ONE_WAY
    market_confidence_threshold: Decimal = Decimal("0.75")
    market_max_spread_bps: Decimal = Decimal("10")
    limit_price_offset_bps: Decimal = Decimal("1")
    limit_time_in_force: TimeInForce = TimeInForce.GTC
    post_only_limits: bool = False
    max_slippage_bps: Decimal | None = Decimal("50")
    max_order_notional: Decimal | None = Decimal("10000")
    max_book_depth_share: Decimal | None = Decimal("0.25")
    max_split_orders: int = 5
    sell_amount_unit: AmountUnit = AmountUnit.QUOTE
    allow_short: bool = True
    allow_position_flip: bool = False
    min_confidence: Decimal = ZERO
    market_data_max_age: timedelta = field(default=timedelta(seconds=5))
    amend_resting_orders: bool = True
    cancel_opposite_orders: bool = True
    pending_limits_on_market: PendingLimitPolicy = PendingLimitPolicy.KEEP
    warmup_uses_limit: bool = True
    default_stop_loss_pct: Decimal | None = None
    default_take_profit_pct: Decimal | None = None
    reduce_instead_of_reject: bool = False

    def __post_init__(self) -> None:
        if self.max_split_orders < 1:
            raise ValueError("max_split_orders must be at least 1")
        order_link_id(self.order_link_id_prefix, "x", 1)  # validates the prefix


class _Refused(Exception):
    def __init__(self, code: RejectCode, message: str, **details: str) -> None:
        super().__init__(message)
        self.rejection = Rejection(code, message, details)


@dataclass(frozen=True, slots=True)
class _Intent:
    kind: LegIntent
    side: Side
    qty: Decimal  # unrounded, instrument qty unit
    position_idx: PositionIdx | None


# ---------------------------------------------------------------------------- helpers


def split_quantity(
    qty: Decimal, cap: Decimal, step: Decimal, max_parts: int | None = None
) -> tuple[Decimal, ...]:
    """Split ``qty`` (a multiple of ``step``) into the fewest near-equal parts <= ``cap``.

    Parts are multiples of ``step``, differ by at most one step, and sum exactly to ``qty``.
    Raises ValueError when ``cap`` is below one step or more than ``max_parts`` are needed.
    """
    cap = floor_to_step(cap, step)
    if cap <= 0:
        raise ValueError("cap below one quantity step")
    units = int(qty / step)
    cap_units = int(cap / step)
    parts = max(1, -(-units // cap_units))
    if max_parts is not None and parts > max_parts:
        raise ValueError(f"needs {parts} orders, more than {max_parts}")
    base, extra = divmod(units, parts)
    return tuple((base + (1 if i < extra else 0)) * step for i in range(parts))


def _pct(price: Decimal, pct: Decimal, sign: int) -> Decimal:
    return price * (ONE + sign * pct / 100)


def _choose_order_type(
    signal: TradingSignal, market: MarketSnapshot, config: PlannerConfig
) -> tuple[OrderType, str]:
    meta = signal.metadata
    if meta.order_type is not None:
        return meta.order_type, f"metadata.order_type={meta.order_type.value}"
    if meta.limit_price is not None:
        return OrderType.LIMIT, "metadata.limit_price given"
    if meta.post_only or meta.time_in_force is TimeInForce.POST_ONLY:
        return OrderType.LIMIT, "post-only requested"
    if signal.is_warmup and config.warmup_uses_limit:
        return OrderType.LIMIT, "warm-up signal"
    if meta.urgency is Urgency.HIGH:
        return OrderType.MARKET, "urgency high"
    if meta.urgency is Urgency.LOW:
        return OrderType.LIMIT, "urgency low"
    spread = market.spread_bps
    if signal.confidence >= config.market_confidence_threshold:
        if spread <= config.market_max_spread_bps:
            return OrderType.MARKET, (
                f"confidence {signal.confidence} >= {config.market_confidence_threshold} "
                f"and spread {spread:.2f}bps <= {config.market_max_spread_bps}bps"
            )
        return OrderType.LIMIT, f"spread {spread:.2f}bps > {config.market_max_spread_bps}bps"
    return OrderType.LIMIT, (
        f"confidence {signal.confidence} < {config.market_confidence_threshold}"
    )


def _limit_price(
    signal: TradingSignal,
    side: Side,
    instrument: Instrument,
    market: MarketSnapshot,
    config: PlannerConfig,
) -> Decimal:
    if signal.metadata.limit_price is not None:
        price = instrument.round_price(signal.metadata.limit_price, side)
    else:
        tick = instrument.tick_size
        factor = config.limit_price_offset_bps / BPS
        if side is Side.BUY:
            target = market.best_bid * (ONE + factor)
            ceiling = max(market.best_bid, market.best_ask - tick)
            price = instrument.round_price(min(target, ceiling), side)
        else:
            target = market.best_ask * (ONE - factor)
            floor = min(market.best_ask, market.best_bid + tick)
            price = instrument.round_price(max(target, floor), side)
    if price <= 0:
        raise _Refused(RejectCode.UNSUPPORTED_ORDER, "limit price rounds to zero")
    return price


def _time_in_force(
    signal: TradingSignal, order_type: OrderType, config: PlannerConfig
) -> tuple[TimeInForce, bool]:
    meta = signal.metadata
    if order_type is OrderType.MARKET:
        if meta.post_only or meta.time_in_force is TimeInForce.POST_ONLY:
            raise _Refused(RejectCode.UNSUPPORTED_ORDER, "a market order cannot be post-only")
        return TimeInForce.IOC, False
    post_only = bool(meta.post_only) or meta.time_in_force is TimeInForce.POST_ONLY
    if meta.time_in_force is not None and not post_only:
        return meta.time_in_force, False
    if post_only or (config.post_only_limits and meta.time_in_force is None):
        return TimeInForce.POST_ONLY, True
    return config.limit_time_in_force, False


def _requested_qty(
    signal: TradingSignal, instrument: Instrument, price: Decimal, config: PlannerConfig
) -> Decimal:
    unit = signal.amount_unit
    if unit is None:
        unit = config.sell_amount_unit if signal.side is Side.SELL else AmountUnit.QUOTE
    if unit is AmountUnit.BASE:
        return instrument.qty_from_base_amount(signal.amount, price)
    return instrument.base_qty_for(signal.amount, price)


def _intents(
    signal: TradingSignal,
    account: AccountState,
    instrument: Instrument,
    qty: Decimal,
    config: PlannerConfig,
    notes: list[str],
) -> list[_Intent]:
    side = signal.side
    meta = signal.metadata
    only_reduce = bool(meta.reduce_only)
    if instrument.category is Category.SPOT:
        if only_reduce:
            notes.append("reduce_only ignored: spot has no positions")
        return [_Intent(LegIntent.OPEN if side is Side.BUY else LegIntent.REDUCE, side, qty, None)]
    category, symbol = instrument.category, instrument.symbol

    def open_leg(amount: Decimal, idx: PositionIdx) -> _Intent:
        if side is Side.SELL and not config.allow_short:
            raise _Refused(RejectCode.SHORT_NOT_ALLOWED, "opening a short position is disabled")
        return _Intent(LegIntent.OPEN, side, amount, idx)

    # only our own live orders cover the position: an external reduce-only order is someone
    # else's close, and an untriggered stop or a submitting intent may never trade
    covering = account.actionable_orders_for(category, symbol)

    def free_to_reduce(held: Decimal, idx: PositionIdx) -> Decimal:
        """Position not yet covered by our resting reduce-only orders on the same side."""
        resting = sum(
            (
                o.remaining_qty
                for o in covering
                if o.reduce_only and o.side is side and o.position_idx == idx
            ),
            ZERO,
        )
        if resting:
            notes.append(f"{min(resting, held)} of the position already has reduce-only orders")
        return max(ZERO, held - resting)

    def reduce_leg(held: Decimal, idx: PositionIdx) -> list[_Intent]:
        free = min(qty, free_to_reduce(held, idx))
        return [_Intent(LegIntent.REDUCE, side, free, idx)] if free > 0 else []

    def against(position_size: Decimal, idx: PositionIdx, open_idx: PositionIdx) -> list[_Intent]:
        held = abs(position_size)
        legs = reduce_leg(held, idx)
        remainder = qty - held
        if remainder > 0:
            if only_reduce:
                notes.append(f"reduce_only: {remainder} beyond the position not opened")
            elif config.allow_position_flip:
                notes.append(f"flip: {remainder} opens the opposite side")
                legs.append(open_leg(remainder, open_idx))
            else:
                notes.append(f"flip disabled: {remainder} beyond the position dropped")
        if not legs:
            raise _Refused(
                RejectCode.NO_POSITION_TO_REDUCE,
                "the position is already covered by resting reduce-only orders",
            )
        return legs

    # only linear (USDT perpetual) books can be in hedge mode on Bybit: inverse runs one-way
    if config.position_mode is PositionMode.ONE_WAY or category is not Category.LINEAR:
        if meta.position_idx not in (None, PositionIdx.ONE_WAY):
            raise _Refused(
                RejectCode.POSITION_MODE_MISMATCH,
                f"position_idx {meta.position_idx} in one-way mode",
            )
        size = account.position(category, symbol).size
        if size != 0 and (size > 0) != (side is Side.BUY):
            return against(size, PositionIdx.ONE_WAY, PositionIdx.ONE_WAY)
        if only_reduce:
            raise _Refused(
                RejectCode.NO_POSITION_TO_REDUCE, "reduce_only with no position to reduce"
            )
        return [open_leg(qty, PositionIdx.ONE_WAY)]

    # hedge mode
    if meta.position_idx is PositionIdx.ONE_WAY:
        raise _Refused(RejectCode.POSITION_MODE_MISMATCH, "position_idx 0 in hedge mode")
    own_idx = PositionIdx.for_hedge(side)
    other_idx = PositionIdx.for_hedge(side.opposite)
    other = account.position(category, symbol, other_idx).size
    if meta.position_idx is own_idx:
        if only_reduce:
            raise _Refused(RejectCode.NO_POSITION_TO_REDUCE, "reduce_only on the opening book")
        return [open_leg(qty, own_idx)]
    if meta.position_idx is other_idx or only_reduce or other != 0:
        if other == 0:
            raise _Refused(RejectCode.NO_POSITION_TO_REDUCE, "no opposite position to reduce")
        if meta.position_idx is other_idx:
            legs = reduce_leg(abs(other), other_idx)
            if not legs:
                raise _Refused(
                    RejectCode.NO_POSITION_TO_REDUCE,
                    "the position is already covered by resting reduce-only orders",
                )
            return legs
        return against(other, other_idx, own_idx)
    return [open_leg(qty, own_idx)]


def _check_minimums(qty: Decimal, price: Decimal, instrument: Instrument, reduce: bool) -> None:
    """Exchange minimums; reduce-only legs are exempt from the minimum notional."""
    if qty <= 0 or qty < instrument.min_order_qty:
        raise _Refused(
            RejectCode.BELOW_MIN_QTY,
            f"quantity {qty} is below the minimum {instrument.min_order_qty}",
            qty=str(qty),
            min_order_qty=str(instrument.min_order_qty),
        )
    notional = instrument.notional(qty, price)
    if not reduce and notional < instrument.min_notional:
        raise _Refused(
            RejectCode.BELOW_MIN_NOTIONAL,
            f"order value {notional} is below the minimum {instrument.min_notional}",
            notional=str(notional),
            min_notional=str(instrument.min_notional),
        )


def _child_cap(
    kind: LegIntent,
    side: Side,
    order_type: OrderType,
    price: Decimal,
    instrument: Instrument,
    market: MarketSnapshot,
    config: PlannerConfig,
) -> Decimal:
    cap = instrument.max_qty_for(order_type)
    if kind is LegIntent.OPEN and config.max_order_notional is not None:
        cap = min(cap, instrument.base_qty_for(config.max_order_notional, price))
    depth = market.depth_against(side)
    if order_type is OrderType.MARKET and config.max_book_depth_share and depth:
        cap = min(cap, depth * config.max_book_depth_share)
    return floor_to_step(cap, instrument.qty_step)


def _tpsl(
    signal: TradingSignal,
    side: Side,
    price: Decimal,
    instrument: Instrument,
    config: PlannerConfig,
) -> tuple[Decimal | None, Decimal | None]:
    meta = signal.metadata
    sign = 1 if side is Side.BUY else -1
    stop = meta.stop_loss
    if stop is None and config.default_stop_loss_pct is not None:
        stop = _pct(price, config.default_stop_loss_pct, -sign)
    take = meta.take_profit
    if take is None and config.default_take_profit_pct is not None:
        take = _pct(price, config.default_take_profit_pct, sign)
    # round away from the price: a long's stop down, its target up (short: mirrored)
    if stop is not None:
        stop = instrument.round_price(stop, side)
        if (stop - price) * sign >= 0 or stop <= 0:
            raise _Refused(
                RejectCode.INVALID_TPSL,
                f"stop_loss {stop} must be {'below' if sign > 0 else 'above'} {price}",
            )
    if take is not None:
        take = instrument.round_price(take, side.opposite)
        if (take - price) * sign <= 0:
            raise _Refused(
                RejectCode.INVALID_TPSL,
                f"take_profit {take} must be {'above' if sign > 0 else 'below'} {price}",
            )
    return stop, take


# ---------------------------------------------------------------------------- plan


def plan(
    signal: TradingSignal,
    account: AccountState,
    instrument: Instrument,
    market: MarketSnapshot | None,
    config: PlannerConfig,
    now: datetime,
    *,
    carried_conversion: Decimal = ZERO,
) -> Plan:
    """Decide what to do for ``signal``. Never raises for business reasons: refusals are a
    rejected ``Plan``. ``carried_conversion``: under ``convert``, untraded quantity of limits an
    earlier run of this signal already cancelled (it died before writing its intents) — added
    to the market order like the limits converted now; the signal stays a market order (its
    first run chose one: only market signals convert)."""
    notes: list[str] = []
    try:
        return _plan(signal, account, instrument, market, config, now, notes, carried_conversion)
    except _Refused as refused:
        return Plan.rejected(signal.signal_id, refused.rejection, tuple(notes))


def _plan(
    signal: TradingSignal,
    account: AccountState,
    instrument: Instrument,
    market: MarketSnapshot | None,
    config: PlannerConfig,
    now: datetime,
    notes: list[str],
    carried_conversion: Decimal = ZERO,
) -> Plan:
    market = _plannable(signal, instrument, market, config, now)
    side = signal.side
    order_type, tif, post_only = _order_type(signal, market, config, carried_conversion, notes)
    price = (
        _limit_price(signal, side, instrument, market, config)
        if order_type is OrderType.LIMIT
        else None
    )
    reference = price if price is not None else market.touch(side)
    requested = _requested_qty(signal, instrument, reference, config)
    intents = _intents(signal, account, instrument, requested, config, notes)

    # cancel and amend candidates: our own pending/partially filled orders only (never an
    # external order, a conditional order waiting for its trigger, or a submitting intent)
    resting = account.actionable_orders_for(instrument.category, instrument.symbol)
    same_side = [o for o in resting if o.side is side and not o.reduce_only]
    cancels, intents, converted = _cancels_and_conversion(
        side, order_type, resting, same_side, intents, config, carried_conversion, notes
    )

    # TP/SL are validated up front (a bad one rejects the signal) and attach to opening legs;
    # a signal carrying them places its own order rather than amending one without them.
    stop: Decimal | None = None
    take: Decimal | None = None
    opening_side = next((i.side for i in intents if i.kind is LegIntent.OPEN), None)
    if opening_side is not None and instrument.category.has_positions:
        stop, take = _tpsl(signal, opening_side, reference, instrument, config)
    else:
        _note_tpsl_not_attached(signal, instrument, notes)
    can_amend = config.amend_resting_orders and stop is None and take is None

    amends: list[Amend] = []
    places: list[tuple[_Intent, Decimal]] = []
    for intent in intents:
        qty = instrument.round_qty(intent.qty)
        reduce_only = intent.kind is LegIntent.REDUCE and instrument.category.has_positions
        try:
            _check_minimums(qty, reference, instrument, reduce_only)
        except _Refused:
            if len(intents) > 1 and intent.kind is LegIntent.OPEN and places:
                notes.append(f"remainder {qty} below exchange minimums: dropped")
                continue
            raise
        amend = None
        if intent.kind is LegIntent.OPEN and order_type is OrderType.LIMIT and can_amend:
            amend = _amend(intent, qty, price, same_side, instrument, market, config)
        if amend is not None:
            notes.append(f"amend {amend.order_link_id}: +{amend.added_qty} (many-to-one)")
            amends.append(amend)
        else:
            places.append((intent, qty))

    template = _LegTemplate(
        signal, instrument, market, config, order_type, price, tif, post_only, reference, take, stop
    )
    place_actions = _place_actions(places, template, notes)
    actions: tuple[Action, ...] = (*cancels, *amends, *place_actions)
    if not amends and not place_actions:
        raise _Refused(RejectCode.BELOW_MIN_QTY, "nothing left to place")
    return Plan(
        signal_id=signal.signal_id,
        actions=actions,
        instrument=instrument,
        order_type=order_type,
        reference_price=reference,
        notes=tuple(notes),
        converted_qty=converted,
    )


def _plannable(
    signal: TradingSignal,
    instrument: Instrument,
    market: MarketSnapshot | None,
    config: PlannerConfig,
    now: datetime,
) -> MarketSnapshot:
    """The signal can be planned now: its instrument trades, its confidence and expiry allow
    it, and the book is usable and fresh (returned). Refuses otherwise."""
    if instrument.symbol != signal.asset or signal.category_or(instrument.category) is not (
        instrument.category
    ):
        raise ValueError("instrument does not match the signal")
    if not instrument.is_trading:
        raise _Refused(RejectCode.ASSET_NOT_TRADING, f"{instrument.symbol} is not trading")
    if signal.confidence < config.min_confidence:
        raise _Refused(
            RejectCode.CONFIDENCE_BELOW_MINIMUM,
            f"confidence {signal.confidence} < {config.min_confidence}",
        )
    if signal.metadata.expires_at is not None and now >= signal.metadata.expires_at:
        raise _Refused(RejectCode.SIGNAL_EXPIRED, "signal expired before planning")
    if market is None or not market.is_usable:
        raise _Refused(RejectCode.MARKET_DATA_UNAVAILABLE, f"no usable book for {signal.asset}")
    if not market.is_fresh(now, config.market_data_max_age):
        raise _Refused(
            RejectCode.MARKET_DATA_STALE,
            f"book is {market.age(now).total_seconds():.3f}s old",
            max_age_seconds=f"{config.market_data_max_age.total_seconds():g}",
        )
    return market


def _order_type(
    signal: TradingSignal,
    market: MarketSnapshot,
    config: PlannerConfig,
    carried_conversion: Decimal,
    notes: list[str],
) -> tuple[OrderType, TimeInForce, bool]:
    """Order type (noted with its reason), time in force and post-only."""
    order_type, why = _choose_order_type(signal, market, config)
    if carried_conversion > 0 and order_type is not OrderType.MARKET:
        # the first run of this signal chose a market order (only market signals convert) and
        # already cancelled the limits it converts: a fresher book must not strand them
        order_type, why = OrderType.MARKET, f"carrying a conversion ({why} otherwise)"
    notes.append(f"{order_type.value}: {why}")
    tif, post_only = _time_in_force(signal, order_type, config)
    asked = signal.metadata.time_in_force
    if order_type is OrderType.MARKET and asked is not None and asked is not TimeInForce.IOC:
        notes.append(f"time_in_force {asked.value} not applied: market orders are IOC")
    return order_type, tif, post_only


def _cancels_and_conversion(
    side: Side,
    order_type: OrderType,
    resting: Iterable[OpenOrder],
    same_side: Iterable[OpenOrder],
    intents: list[_Intent],
    config: PlannerConfig,
    carried_conversion: Decimal,
    notes: list[str],
) -> tuple[list[Cancel], list[_Intent], Decimal]:
    """Cancels of opposite resting orders (``cancel_opposite_orders``) and, for a market
    signal, of same-side resting limits (``pending_limits_on_market``); under ``convert`` their
    remaining quantity (plus ``carried_conversion``) joins the opening legs. Returns the
    cancels, the intents and the converted quantity."""
    cancels: list[Cancel] = []
    converted = ZERO
    if config.cancel_opposite_orders:
        cancels += [
            cancel_of(o, CancelReason.OPPOSITE_SIGNAL) for o in resting if o.side is not side
        ]
    if order_type is not OrderType.MARKET or (
        config.pending_limits_on_market is PendingLimitPolicy.KEEP
    ):
        return cancels, intents, converted
    limits = [o for o in same_side if o.order_type is OrderType.LIMIT]
    cancels += [cancel_of(o, CancelReason.REPLACED_BY_MARKET) for o in limits]
    if config.pending_limits_on_market is PendingLimitPolicy.CONVERT:
        extra = sum((o.remaining_qty for o in limits), carried_conversion)
        intents = [
            _Intent(i.kind, i.side, i.qty + extra, i.position_idx)
            if i.kind is LegIntent.OPEN
            else i
            for i in intents
        ]
        if extra:
            converted = extra
            notes.append(f"convert: {extra} from cancelled resting limits added")
    return cancels, intents, converted


@dataclass(frozen=True, slots=True)
class _LegTemplate:
    """What every placed leg of one plan shares."""

    signal: TradingSignal
    instrument: Instrument
    market: MarketSnapshot
    config: PlannerConfig
    order_type: OrderType
    price: Decimal | None
    tif: TimeInForce
    post_only: bool
    reference: Decimal
    take_profit: Decimal | None
    stop_loss: Decimal | None


def _place_actions(
    places: list[tuple[_Intent, Decimal]], t: _LegTemplate, notes: list[str]
) -> list[Place]:
    """The ``Place`` actions, reducing legs first, each split into children no larger than its
    cap (``_child_cap``); legs numbered from 1 across the plan (the orderLinkId's leg)."""
    instrument, config = t.instrument, t.config
    slippage = None
    if t.order_type is OrderType.MARKET:
        slippage = t.signal.metadata.max_slippage_bps
        if slippage is None:
            slippage = config.max_slippage_bps
    actions: list[Place] = []
    for intent, qty in sorted(places, key=lambda p: p[0].kind is LegIntent.OPEN):
        opening = intent.kind is LegIntent.OPEN
        reduce_only = not opening and instrument.category.has_positions
        children = _children(intent, qty, t, notes)
        for child in children:
            _check_minimums(child, t.reference, instrument, reduce_only)
        for index, child in enumerate(children, start=1):
            leg = len(actions) + 1
            actions.append(
                Place(
                    leg=leg,
                    order_link_id=order_link_id(
                        config.order_link_id_prefix, t.signal.signal_id, leg
                    ),
                    category=instrument.category,
                    symbol=instrument.symbol,
                    side=intent.side,
                    order_type=t.order_type,
                    qty=child,
                    price=t.price,
                    time_in_force=t.tif,
                    reduce_only=reduce_only,
                    post_only=t.post_only,
                    position_idx=intent.position_idx,
                    intent=intent.kind,
                    reference_price=t.reference,
                    notional=instrument.notional(child, t.reference),
                    take_profit=t.take_profit if opening else None,
                    stop_loss=t.stop_loss if opening else None,
                    slippage_tolerance_bps=slippage,
                    split_index=index,
                    split_count=len(children),
                )
            )
    return actions


def _children(
    intent: _Intent, qty: Decimal, t: _LegTemplate, notes: list[str]
) -> tuple[Decimal, ...]:
    """``qty`` split into children of at most the leg's cap; an opening leg needing more than
    ``max_split_orders`` children is refused — or capped with ``reduce_instead_of_reject``."""
    instrument, config = t.instrument, t.config
    cap = _child_cap(
        intent.kind, intent.side, t.order_type, t.reference, instrument, t.market, config
    )
    if cap < instrument.min_order_qty or cap <= 0:
        raise _Refused(
            RejectCode.TOO_MANY_LEGS,
            f"largest allowed child order {cap} is below the minimum quantity",
        )
    opening = intent.kind is LegIntent.OPEN
    max_parts = config.max_split_orders if opening else None
    try:
        children = split_quantity(qty, cap, instrument.qty_step, max_parts)
    except ValueError as exc:
        if not (opening and config.reduce_instead_of_reject):
            raise _Refused(RejectCode.TOO_MANY_LEGS, f"order of {qty} {exc}") from exc
        qty = cap * config.max_split_orders
        notes.append(f"capped to {qty} ({config.max_split_orders} orders of {cap})")
        children = split_quantity(qty, cap, instrument.qty_step, max_parts)
    if len(children) > 1:
        notes.append(f"split {qty} into {len(children)} orders of at most {cap}")
    return children


def _note_tpsl_not_attached(
    signal: TradingSignal, instrument: Instrument, notes: list[str]
) -> None:
    """A signal's own stop_loss/take_profit that no leg can carry is noted, never lost
    silently: spot orders here carry no TP/SL, and reduce-only legs cannot (Bybit forbids
    it). The ``default_*_pct`` settings are not noted: they apply only where TP/SL attach."""
    meta = signal.metadata
    given = [
        f"{name}={value}"
        for name, value in (("stop_loss", meta.stop_loss), ("take_profit", meta.take_profit))
        if value is not None
    ]
    if not given:
        return
    why = (
        "spot orders carry no TP/SL"
        if not instrument.category.has_positions
        else "no opening leg (reduce-only legs carry no TP/SL)"
    )
    notes.append(f"{', '.join(given)} not attached: {why}")


def _amend(
    intent: _Intent,
    qty: Decimal,
    price: Decimal | None,
    same_side: Iterable[OpenOrder],
    instrument: Instrument,
    market: MarketSnapshot,
    config: PlannerConfig,
) -> Amend | None:
    candidates = [
        o
        for o in same_side
        if o.is_unfilled_resting_limit and o.position_idx == (intent.position_idx or 0)
    ]
    if not candidates or price is None:
        return None
    target = max(candidates, key=lambda o: (o.created_at, o.order_link_id))
    total = target.qty + qty
    cap = _child_cap(
        LegIntent.OPEN, intent.side, OrderType.LIMIT, price, instrument, market, config
    )
    if total > cap:
        return None
    return Amend(
        order_link_id=target.order_link_id,
        order_id=target.order_id,
        category=target.category,
        symbol=target.symbol,
        side=target.side,
        qty=total,
        price=price,
        previous_qty=target.qty,
        previous_price=target.price,
        added_qty=qty,
        reference_price=price,
        added_notional=instrument.notional(qty, price),
    )


def stale_orders(
    open_orders: Iterable[OpenOrder], now: datetime, max_age: timedelta
) -> tuple[Cancel, ...]:
    """Our resting orders older than ``max_age`` -> cancels (a partial fill keeps its filled
    part). Only ``is_actionable`` orders qualify: never an external order, a conditional order
    waiting for its trigger, or a ``submitting`` intent."""
    return tuple(
        cancel_of(o, CancelReason.STALE)
        for o in open_orders
        if o.is_actionable and now - o.created_at > max_age
    )
