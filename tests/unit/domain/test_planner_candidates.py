"""Which open orders the planner may act on.

Every open order of the account counts for reservations and exposure, but only our own orders
resting on the book (``pending``/``partially_filled``, ``OpenOrder.is_actionable``) may be
cancelled, amended or counted as our reduce-only cover. External orders (someone else's, adopted
by the tracker), conditional orders waiting for or just past their trigger
(``untriggered``/``triggered``) and ``submitting`` intents are never touched.

Also here: a market order asked to be post-only through ``time_in_force`` is rejected, and a
signal's TP/SL that no leg can carry (spot, reduce-only legs) is noted rather than lost silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

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
from order_manager.domain.orders import OrderState, OrderStatus
from order_manager.domain.planner import PendingLimitPolicy, PlannerConfig, plan, stale_orders
from order_manager.domain.plans import Amend, Cancel, CancelReason, LegIntent, Place, Plan
from order_manager.domain.positions import Position
from order_manager.domain.rejections import RejectCode
from order_manager.domain.signals import SignalType
from tests.unit.domain.conftest import NOW, book, btc, make_signal

D = Decimal
CONFIG = PlannerConfig()
RICH = {"USDT": D(100000), "BTC": D(10)}
NOT_ACTIONABLE = (OrderStatus.UNTRIGGERED, OrderStatus.TRIGGERED, OrderStatus.SUBMITTING)


def order(
    side: Side = Side.BUY,
    *,
    link: str = "om-old-1",
    qty: str = "0.010",
    price: str = "64000.0",
    filled: str = "0",
    status: OrderStatus = OrderStatus.PENDING,
    external: bool = False,
    reduce_only: bool = False,
    order_type: OrderType = OrderType.LIMIT,
    age: int = 10,
    idx: PositionIdx = PositionIdx.ONE_WAY,
    category: Category = Category.LINEAR,
) -> OpenOrder:
    notional = D(qty) * D(price)
    return OpenOrder(
        order_link_id=link,
        order_id=None if status is OrderStatus.SUBMITTING else "oid-" + link,
        category=category,
        symbol="BTCUSDT",
        side=side,
        order_type=order_type,
        qty=D(qty),
        price=D(price),
        filled_qty=D(filled),
        status=status,
        reduce_only=reduce_only,
        position_idx=idx,
        created_at=NOW - timedelta(seconds=age),
        reserve_coin="USDT",
        reserved=D(0) if reduce_only else notional,
        notional=notional,
        is_external=external,
    )


def account(*orders: OpenOrder, position: str = "0") -> AccountState:
    size = D(position)
    positions = (
        (Position(Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY, size, abs(size) * 60000),)
        if size
        else ()
    )
    return AccountState(balances=RICH, positions=positions, open_orders=orders)


def run(
    acct: AccountState,
    signal_kw: Mapping[str, object] | None = None,
    *,
    instrument: Instrument | None = None,
    config: PlannerConfig = CONFIG,
) -> Plan:
    signal = make_signal(**dict(signal_kw or {}))
    return plan(signal, acct, instrument or btc(), book(), config, NOW)


def targets(p: Plan) -> list[str]:
    return [a.order_link_id for a in p.exchange_actions if isinstance(a, Cancel | Amend)]


# ---------------------------------------------------------------------------- OpenOrder


def test_actionable_means_ours_and_pending_or_partially_filled() -> None:
    assert order().is_actionable
    assert order(status=OrderStatus.PARTIALLY_FILLED, filled="0.004").is_actionable
    assert not order(external=True).is_actionable
    for status in (*NOT_ACTIONABLE, OrderStatus.FILLED, OrderStatus.CANCELLED):
        assert not order(status=status).is_actionable, status
    assert not order(external=True).is_unfilled_resting_limit
    acct = account(order(link="ours"), order(link="theirs", external=True))
    assert [o.order_link_id for o in acct.actionable_orders_for(Category.LINEAR, "BTCUSDT")] == [
        "ours"
    ]
    assert len(acct.orders_for(Category.LINEAR, "BTCUSDT")) == 2


def test_from_state_carries_is_external() -> None:
    state = OrderState.submitting(
        order_link_id="ext-1",
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=D("0.010"),
        price=D("64000"),
        time_in_force=None,
        created_at=NOW,
    )
    live = replace(state, status=OrderStatus.PENDING, order_id="x1")
    assert OpenOrder.from_state(live, btc(), is_external=True).is_external
    assert not OpenOrder.from_state(live, btc()).is_external


def test_external_and_conditional_orders_still_reserve_and_count_as_exposure() -> None:
    ours = order(link="ours", qty="0.010", price="60000")
    theirs = order(link="theirs", qty="0.020", price="60000", external=True)
    stop = order(link="stop", qty="0.030", price="60000", status=OrderStatus.UNTRIGGERED)
    acct = account(ours, theirs, stop)
    assert acct.reserved("USDT") == D("3600")  # 600 + 1200 + 1800
    assert acct.available("USDT") == D(100000) - D("3600")
    assert acct.exposure() == D("3600")


# ---------------------------------------------------------------------------- cancels


def test_opposite_signal_cancels_only_our_pending_and_partially_filled_orders() -> None:
    acct = account(
        order(Side.SELL, link="ours-pending"),
        order(Side.SELL, link="ours-partial", status=OrderStatus.PARTIALLY_FILLED, filled="0.004"),
        order(Side.SELL, link="theirs", external=True),
        order(Side.SELL, link="theirs-partial", external=True, status=OrderStatus.PARTIALLY_FILLED),
        order(Side.SELL, link="stop", status=OrderStatus.UNTRIGGERED, reduce_only=True),
        order(Side.SELL, link="triggered", status=OrderStatus.TRIGGERED),
        order(Side.SELL, link="intent", status=OrderStatus.SUBMITTING),
    )
    p = run(acct)
    assert not p.is_rejected, p.rejection
    assert [(c.order_link_id, c.reason) for c in p.cancels] == [
        ("ours-pending", CancelReason.OPPOSITE_SIGNAL),
        ("ours-partial", CancelReason.OPPOSITE_SIGNAL),
    ]
    assert len(p.places) == 1


def test_market_signal_cancels_or_converts_only_our_same_side_limits() -> None:
    acct = account(
        order(link="ours", qty="0.010"),
        order(link="theirs", qty="0.100", external=True),
        order(link="cond", qty="0.200", status=OrderStatus.UNTRIGGERED),
    )
    market = {"confidence": D("0.9")}
    cancel = run(
        acct, market, config=replace(CONFIG, pending_limits_on_market=PendingLimitPolicy.CANCEL)
    )
    assert targets(cancel) == ["ours"]
    convert = run(
        acct, market, config=replace(CONFIG, pending_limits_on_market=PendingLimitPolicy.CONVERT)
    )
    assert targets(convert) == ["ours"]
    assert convert.places[0].qty == D("0.015") + D("0.010")  # only our remainder moves


def test_stale_sweep_never_cancels_external_or_conditional_orders() -> None:
    old = 3600
    orders = [
        order(link="ours", age=old),
        order(link="theirs", age=old, external=True),
        *(order(link=s.value, age=old, status=s) for s in NOT_ACTIONABLE),
    ]
    cancels = stale_orders(orders, NOW, timedelta(minutes=5))
    assert [c.order_link_id for c in cancels] == ["ours"]


# ---------------------------------------------------------------------------- amends


def test_amend_never_chooses_an_external_limit() -> None:
    # the external order is the newest: it must still not be picked
    acct = account(order(link="ours", age=20), order(link="theirs", age=1, external=True))
    (amend,) = run(acct).amends
    assert amend.order_link_id == "ours"
    only_theirs = run(account(order(link="theirs", external=True)))
    assert only_theirs.amends == () and len(only_theirs.places) == 1
    for status in NOT_ACTIONABLE:
        p = run(account(order(link="cond", status=status)))
        assert p.amends == () and len(p.places) == 1, status


# ---------------------------------------------------------------------------- reduce cover


def test_reduce_cover_ignores_external_and_conditional_reduce_only_orders() -> None:
    sell = {"signal_type": SignalType.SELL}
    foreign = (
        order(Side.SELL, link="theirs", qty="0.010", reduce_only=True, external=True),
        order(
            Side.SELL, link="stop", qty="0.010", reduce_only=True, status=OrderStatus.UNTRIGGERED
        ),
        order(
            Side.SELL, link="intent", qty="0.010", reduce_only=True, status=OrderStatus.SUBMITTING
        ),
    )
    p = run(account(*foreign, position="0.010"), sell)
    assert [(pl.qty, pl.reduce_only) for pl in p.places] == [(D("0.010"), True)]
    assert not any("already has reduce-only orders" in n for n in p.notes)
    assert p.cancels == ()  # same-side orders are not cancelled either
    # our own resting reduce-only order does cover part of the position
    ours = order(Side.SELL, link="ours", qty="0.006", reduce_only=True)
    mixed = run(account(*foreign, ours, position="0.010"), sell)
    assert [(pl.qty, pl.reduce_only) for pl in mixed.places] == [(D("0.004"), True)]


# ---------------------------------------------------------------------------- TIF, TP/SL


def test_market_order_with_post_only_time_in_force_is_rejected() -> None:
    for meta in (
        {"order_type": OrderType.MARKET, "time_in_force": TimeInForce.POST_ONLY},
        {"order_type": OrderType.MARKET, "post_only": True},
    ):
        p = run(account(), {"metadata": meta})
        assert p.rejection is not None and p.rejection.code is RejectCode.UNSUPPORTED_ORDER
        assert p.exchange_actions == ()
    # without an explicit market type, PostOnly still means a post-only limit order
    (place,) = run(account(), {"metadata": {"time_in_force": TimeInForce.POST_ONLY}}).places
    assert place.order_type is OrderType.LIMIT and place.post_only


def test_a_market_order_notes_a_time_in_force_it_cannot_apply() -> None:
    for tif in (TimeInForce.GTC, TimeInForce.FOK):
        p = run(account(), {"metadata": {"order_type": OrderType.MARKET, "time_in_force": tif}})
        (place,) = p.places
        assert place.time_in_force is TimeInForce.IOC  # Bybit: market orders are always IOC
        assert f"time_in_force {tif.value} not applied: market orders are IOC" in p.notes
    ioc = run(
        account(), {"metadata": {"order_type": OrderType.MARKET, "time_in_force": TimeInForce.IOC}}
    )
    assert not any("time_in_force" in note for note in ioc.notes)


def test_spot_tpsl_is_noted_not_attached() -> None:
    spot = btc(category=Category.SPOT)
    meta = {"category": Category.SPOT, "stop_loss": D("60000"), "take_profit": D("70000")}
    p = run(account(), {"metadata": meta}, instrument=spot)
    (place,) = p.places
    assert place.stop_loss is None and place.take_profit is None
    assert "stop_loss=60000, take_profit=70000 not attached: spot orders carry no TP/SL" in p.notes
    plain = run(account(), {"metadata": {"category": Category.SPOT}}, instrument=spot)
    assert not any("not attached" in n for n in plain.notes)
    # a config default is not noted on spot (it applies only where TP/SL attach)
    default = run(
        account(),
        {"metadata": {"category": Category.SPOT}},
        instrument=spot,
        config=replace(CONFIG, default_stop_loss_pct=D("2")),
    )
    assert not any("not attached" in n for n in default.notes)


def test_tpsl_on_a_reduce_only_signal_is_noted_not_attached() -> None:
    sell = {"signal_type": SignalType.SELL, "metadata": {"stop_loss": D("70000")}}
    p = run(account(position="0.010"), sell)
    (place,) = p.places
    assert place.reduce_only and place.stop_loss is None
    assert any(
        n == "stop_loss=70000 not attached: no opening leg (reduce-only legs carry no TP/SL)"
        for n in p.notes
    )


# ---------------------------------------------------------------------------- properties


OPEN_STATUSES = [
    OrderStatus.PENDING,
    OrderStatus.PARTIALLY_FILLED,
    *NOT_ACTIONABLE,
    OrderStatus.FILLED,
]


@st.composite
def open_orders(draw: st.DrawFn, mode: PositionMode) -> tuple[OpenOrder, ...]:
    count = draw(st.integers(0, 8))
    orders = []
    for i in range(count):
        side = draw(st.sampled_from(Side))
        status = draw(st.sampled_from(OPEN_STATUSES))
        qty_units = draw(st.integers(1, 200))
        filled_units = (
            draw(st.integers(0, qty_units - 1)) if status is OrderStatus.PARTIALLY_FILLED else 0
        )
        if mode is PositionMode.HEDGE:
            idx = draw(st.sampled_from([PositionIdx.HEDGE_LONG, PositionIdx.HEDGE_SHORT]))
        else:
            idx = PositionIdx.ONE_WAY
        orders.append(
            order(
                side,
                link=f"o-{i}",
                qty=str(D(qty_units) / 1000),
                filled=str(D(filled_units) / 1000),
                price=str(draw(st.integers(60000, 68000))),
                status=status,
                external=draw(st.booleans()),
                reduce_only=draw(st.booleans()),
                order_type=draw(
                    st.sampled_from([OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET])
                ),
                age=draw(st.integers(1, 1000)),
                idx=idx,
            )
        )
    return tuple(orders)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[AccountState, dict[str, object], PlannerConfig]:
    mode = draw(st.sampled_from(PositionMode))
    orders = draw(open_orders(mode))
    size = D(draw(st.integers(-50, 50))) / 1000
    if mode is PositionMode.HEDGE:
        positions = tuple(
            Position(Category.LINEAR, "BTCUSDT", idx, sign * abs(size), abs(size) * 60000)
            for idx, sign in ((PositionIdx.HEDGE_LONG, 1), (PositionIdx.HEDGE_SHORT, -1))
            if size
        )
    else:
        positions = (
            (Position(Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY, size, abs(size) * 60000),)
            if size
            else ()
        )
    meta: dict[str, object] = {}
    order_type = draw(st.sampled_from([None, OrderType.LIMIT, OrderType.MARKET]))
    if order_type is not None:
        meta["order_type"] = order_type
    if draw(st.integers(0, 3)) == 0:
        meta["reduce_only"] = True
    signal_kw: dict[str, object] = {
        "signal_type": draw(st.sampled_from([SignalType.BUY, SignalType.SELL])),
        "amount": D(draw(st.integers(10, 5000))),
        "confidence": draw(st.sampled_from([D("0.1"), D("0.9")])),
        "metadata": meta,
    }
    config = replace(
        CONFIG,
        position_mode=mode,
        cancel_opposite_orders=draw(st.booleans()),
        amend_resting_orders=draw(st.booleans()),
        pending_limits_on_market=draw(st.sampled_from(PendingLimitPolicy)),
        allow_position_flip=draw(st.booleans()),
    )
    acct = AccountState(balances=RICH, positions=positions, open_orders=orders)
    return acct, signal_kw, config


@settings(max_examples=400)
@given(scenarios())
def test_no_cancel_or_amend_ever_targets_a_foreign_or_conditional_order(
    scenario: tuple[AccountState, dict[str, object], PlannerConfig],
) -> None:
    acct, signal_kw, config = scenario
    p = run(acct, signal_kw, config=config)
    by_link = {o.order_link_id: o for o in acct.open_orders}
    for action in p.exchange_actions:
        if isinstance(action, Cancel):
            assert by_link[action.order_link_id].is_actionable
        elif isinstance(action, Amend):
            target = by_link[action.order_link_id]
            assert target.is_actionable and target.is_unfilled_resting_limit
            assert target.status is OrderStatus.PENDING and not target.is_external
        else:
            assert isinstance(action, Place)
    event("rejected" if p.is_rejected else f"{len(targets(p))} cancels/amends")
    # stronger: orders the planner may not act on are invisible to it. Removing them changes
    # nothing in the plan (actions, notes or rejection) - not even the reduce-only cover.
    mine = tuple(o for o in acct.open_orders if o.is_actionable)
    assert run(replace(acct, open_orders=mine), signal_kw, config=config) == p


@settings(max_examples=200)
@given(scenarios(), st.integers(1, 5000))
def test_reduce_legs_never_exceed_the_position_left_by_our_own_cover(
    scenario: tuple[AccountState, dict[str, object], PlannerConfig], max_age_seconds: int
) -> None:
    acct, signal_kw, config = scenario
    p = run(acct, signal_kw, config=config)
    for idx in {pl.position_idx for pl in p.places if pl.intent is LegIntent.REDUCE}:
        assert idx is not None
        held = abs(acct.position(Category.LINEAR, "BTCUSDT", idx).size)
        reducing = [
            pl for pl in p.places if pl.intent is LegIntent.REDUCE and pl.position_idx == idx
        ]
        side = reducing[0].side
        cover = sum(
            (
                o.remaining_qty
                for o in acct.open_orders
                if o.is_actionable and o.reduce_only and o.side is side and o.position_idx == idx
            ),
            D(0),
        )
        assert sum((pl.qty for pl in reducing), D(0)) <= max(D(0), held - cover)
    # the stale sweep obeys the same rule, whatever the age limit
    for cancel in stale_orders(acct.open_orders, NOW, timedelta(seconds=max_age_seconds)):
        assert next(
            o for o in acct.open_orders if o.order_link_id == cancel.order_link_id
        ).is_actionable
