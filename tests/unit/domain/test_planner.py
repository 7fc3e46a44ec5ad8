from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, event, given, settings
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
from order_manager.domain.money import floor_to_step, is_multiple
from order_manager.domain.orders import OrderStatus
from order_manager.domain.planner import (
    PendingLimitPolicy,
    PlannerConfig,
    plan,
    split_quantity,
    stale_orders,
)
from order_manager.domain.plans import (
    Amend,
    Cancel,
    CancelReason,
    LegIntent,
    LinkType,
    Place,
    Plan,
    Reject,
    Relation,
    order_link_id,
    parse_order_link_id,
    signal_token,
)
from order_manager.domain.positions import Position
from order_manager.domain.rejections import RejectCode
from order_manager.domain.signals import AmountUnit, SignalType, Urgency
from tests.unit.domain.conftest import NOW, SIGNAL_ID, book, btc, make_signal

D = Decimal
CONFIG = PlannerConfig()
EMPTY = AccountState(balances={"USDT": D(100000)})


def run(
    signal_kw: Mapping[str, object] | None = None,
    *,
    account: AccountState = EMPTY,
    instrument: Instrument | None = None,
    market: object = "default",
    **config: object,
) -> Plan:
    snapshot = book() if market == "default" else market
    return plan(
        make_signal(**dict(signal_kw or {})),
        account,
        instrument or btc(),
        snapshot,  # type: ignore[arg-type]
        replace(CONFIG, **config),  # type: ignore[arg-type]
        NOW,
    )


def only_place(p: Plan) -> Place:
    assert not p.is_rejected, p.rejection
    (place,) = p.places
    return place


def rejected_code(p: Plan) -> RejectCode:
    assert p.rejection is not None, p.actions
    assert p.exchange_actions == ()
    return p.rejection.code


def long(size: str, idx: PositionIdx = PositionIdx.ONE_WAY) -> AccountState:
    pos = Position(Category.LINEAR, "BTCUSDT", idx, D(size), abs(D(size)) * 60000)
    return AccountState(balances={"USDT": D(100000)}, positions=(pos,))


def resting(
    side: Side = Side.BUY,
    *,
    qty: str = "0.010",
    price: str = "64000.0",
    filled: str = "0",
    status: OrderStatus = OrderStatus.PENDING,
    link: str = "om-old-1",
    age: int = 10,
    order_type: OrderType = OrderType.LIMIT,
    reduce_only: bool = False,
) -> OpenOrder:
    return OpenOrder(
        order_link_id=link,
        order_id="oid-" + link,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=side,
        order_type=order_type,
        qty=D(qty),
        price=D(price),
        filled_qty=D(filled),
        status=status,
        reduce_only=reduce_only,
        position_idx=PositionIdx.ONE_WAY,
        created_at=NOW - timedelta(seconds=age),
        reserve_coin="USDT",
        reserved=D(qty) * D(price),
        notional=D(qty) * D(price),
    )


# ---------------------------------------------------------------------------- order type


@pytest.mark.parametrize(
    ("signal_kw", "market", "expected"),
    [
        ({"confidence": D("0.8")}, book(), OrderType.MARKET),
        ({"confidence": D("0.75")}, book(), OrderType.MARKET),
        ({"confidence": D("0.74")}, book(), OrderType.LIMIT),
        ({"confidence": D("0.9")}, book("64000", "64100"), OrderType.LIMIT),  # 15.6 bps
        ({"confidence": D("0.1"), "metadata": {"urgency": Urgency.HIGH}}, book(), OrderType.MARKET),
        ({"confidence": D("0.9"), "metadata": {"urgency": Urgency.LOW}}, book(), OrderType.LIMIT),
        ({"confidence": D("0.9"), "is_warmup": True}, book(), OrderType.LIMIT),
        (
            {"confidence": D("0.1"), "metadata": {"order_type": OrderType.MARKET}},
            book(),
            OrderType.MARKET,
        ),
        (
            {"confidence": D("0.9"), "metadata": {"order_type": OrderType.LIMIT}},
            book(),
            OrderType.LIMIT,
        ),
        (
            {"confidence": D("0.9"), "metadata": {"limit_price": D("64000")}},
            book(),
            OrderType.LIMIT,
        ),
        ({"confidence": D("0.9"), "metadata": {"post_only": True}}, book(), OrderType.LIMIT),
    ],
)
def test_order_type_selection(
    signal_kw: dict[str, object], market: object, expected: OrderType
) -> None:
    place = only_place(run(signal_kw, market=market))
    assert place.order_type is expected
    if expected is OrderType.MARKET:
        assert place.price is None and place.time_in_force is TimeInForce.IOC
        assert place.slippage_tolerance_bps == D(50)
    else:
        assert place.price is not None


def test_market_buy_quantity_from_quote_amount_at_the_ask() -> None:
    p = run({"confidence": D("0.9")})
    place = only_place(p)
    assert place.qty == D("0.015")  # 1000 / 64250.1 = 0.01556 -> down to the step
    assert place.reference_price == D("64250.1")
    assert place.notional <= D(1000)
    assert place.order_link_id == order_link_id("om", SIGNAL_ID, 1)
    assert place.reduce_only is False and place.position_idx is PositionIdx.ONE_WAY
    assert p.links[0].link_type is LinkType.ONE_TO_ONE


def test_limit_price_joins_the_bid_when_the_spread_is_one_tick() -> None:
    place = only_place(run())
    assert place.price == D("64250.0")
    assert place.time_in_force is TimeInForce.GTC and not place.post_only


def test_limit_price_offset_inside_a_wide_spread_and_rounding_sides() -> None:
    buy = only_place(run(market=book("64000", "64100")))
    assert buy.price == D("64006.4")  # 64000 * 1.0001 = 64006.4
    sell = only_place(run({"signal_type": SignalType.SELL}, market=book("64000", "64100.05")))
    # 64100.05 * 0.9999 = 64093.639995 -> sell rounds up to the tick
    assert sell.price == D("64093.7")
    assert is_multiple(sell.price, D("0.1"))


def test_metadata_limit_price_tif_and_post_only() -> None:
    place = only_place(
        run({"metadata": {"limit_price": D("63999.97"), "time_in_force": TimeInForce.IOC}})
    )
    assert place.price == D("63999.9") and place.time_in_force is TimeInForce.IOC
    post = only_place(run({"metadata": {"post_only": True}}))
    assert post.time_in_force is TimeInForce.POST_ONLY and post.post_only
    assert only_place(run(post_only_limits=True)).time_in_force is TimeInForce.POST_ONLY
    bad = run({"metadata": {"order_type": OrderType.MARKET, "post_only": True}})
    assert rejected_code(bad) is RejectCode.UNSUPPORTED_ORDER


def test_market_data_must_be_fresh_and_usable() -> None:
    assert rejected_code(run(market=book(age_seconds=6))) is RejectCode.MARKET_DATA_STALE
    assert rejected_code(run(market=None)) is RejectCode.MARKET_DATA_UNAVAILABLE
    assert rejected_code(run(market=book("64100", "64000"))) is RejectCode.MARKET_DATA_UNAVAILABLE
    assert not run(market=book(age_seconds=5)).is_rejected


def test_minimums_reject_never_round_up() -> None:
    assert rejected_code(run({"amount": D("30")})) is RejectCode.BELOW_MIN_QTY  # 0.00046 BTC
    cheap = btc(min_notional=D("100"), min_order_qty=D("0.001"))
    p = run({"amount": D("99")}, instrument=cheap, market=book("60000", "60000.1"))
    assert rejected_code(p) is RejectCode.BELOW_MIN_NOTIONAL
    assert p.rejection is not None and p.rejection.details["min_notional"] == "100"


def test_other_refusals() -> None:
    assert rejected_code(run({"confidence": D("0.1")}, min_confidence=D("0.2"))) is (
        RejectCode.CONFIDENCE_BELOW_MINIMUM
    )
    expired = run({"metadata": {"expires_at": NOW}})
    assert rejected_code(expired) is RejectCode.SIGNAL_EXPIRED
    from order_manager.domain.instruments import InstrumentStatus

    closed = run(instrument=btc(status=InstrumentStatus.CLOSED))
    assert rejected_code(closed) is RejectCode.ASSET_NOT_TRADING
    with pytest.raises(ValueError):
        run({"asset": "ETHUSDT"})


def test_base_amount_units() -> None:
    sell = only_place(
        run(
            {"signal_type": SignalType.SELL, "amount": D("0.0123")},
            sell_amount_unit=AmountUnit.BASE,
        )
    )
    assert sell.qty == D("0.012")
    explicit = only_place(run({"amount": D("0.1"), "amount_unit": AmountUnit.BASE}))
    assert explicit.qty == D("0.100")


# ---------------------------------------------------------------------------- splitting


def test_large_signal_splits_by_max_order_notional() -> None:
    p = run({"amount": D("25000")})
    places = p.places
    assert [pl.qty for pl in places] == [D("0.130"), D("0.130"), D("0.129")]
    assert sum(pl.qty for pl in places) == floor_to_step(D(25000) / D("64250.0"), D("0.001"))
    assert [pl.leg for pl in places] == [1, 2, 3]
    assert len({pl.order_link_id for pl in places}) == 3
    assert all(pl.split_count == 3 for pl in places)
    assert all(pl.notional <= D(10000) for pl in places)
    assert {link.link_type for link in p.links} == {LinkType.ONE_TO_MANY}
    assert {link.relation for link in p.links} == {Relation.SPLIT}


def test_too_many_legs_rejects_or_caps() -> None:
    assert rejected_code(run({"amount": D("60000")})) is RejectCode.TOO_MANY_LEGS
    capped = run({"amount": D("60000")}, reduce_instead_of_reject=True)
    assert len(capped.places) == 5
    assert sum(p.qty for p in capped.places) == D("0.155") * 5


def test_market_orders_split_by_book_depth_and_market_max_qty() -> None:
    p = run({"confidence": D("0.9")}, market=book(ask_depth="0.04"))
    assert [pl.qty for pl in p.places] == [D("0.008"), D("0.007")]  # cap 0.01 = 25% of 0.04
    small = btc(max_market_qty=D("0.010"))
    q = run({"confidence": D("0.9")}, instrument=small)
    assert [pl.qty for pl in q.places] == [D("0.008"), D("0.007")]
    tiny = run({"confidence": D("0.9")}, market=book(ask_depth="0.002"))
    assert rejected_code(tiny) is RejectCode.TOO_MANY_LEGS


@given(
    st.integers(min_value=1, max_value=10**7),
    st.integers(min_value=1, max_value=10**5),
    st.sampled_from([D("0.001"), D("0.01"), D("1"), D("0.5")]),
)
def test_split_children_sum_to_the_parent(units: int, cap_units: int, step: Decimal) -> None:
    assume(units <= cap_units * 1000)
    qty = units * step
    children = split_quantity(qty, cap_units * step, step)
    assert sum(children, D(0)) == qty
    assert all(0 < c <= cap_units * step and is_multiple(c, step) for c in children)
    assert max(children) - min(children) <= step
    assert len(children) == -(-units // cap_units)


# ---------------------------------------------------------------------------- positions


def test_sell_while_long_reduces_only() -> None:
    p = run({"signal_type": SignalType.SELL, "confidence": D("0.9")}, account=long("0.010"))
    place = only_place(p)
    assert place.reduce_only and place.intent is LegIntent.REDUCE and place.qty == D("0.010")
    assert place.side is Side.SELL
    assert p.links[0].relation is Relation.REDUCE
    assert any("flip disabled" in n for n in p.notes)


def test_partial_scale_out_and_flip() -> None:
    part = only_place(
        run({"signal_type": SignalType.SELL, "amount": D("300")}, account=long("0.010"))
    )
    assert part.reduce_only and part.qty == D("0.004")  # 300 / 64250.1 -> 0.004
    flip = run({"signal_type": SignalType.SELL}, account=long("0.010"), allow_position_flip=True)
    reduce, opening = flip.places
    assert reduce.reduce_only and reduce.qty == D("0.010") and reduce.leg == 1
    assert not opening.reduce_only and opening.qty == D("0.005") and opening.leg == 2
    assert opening.intent is LegIntent.OPEN
    tiny = run(
        {"signal_type": SignalType.SELL, "amount": D("660")},
        account=long("0.010"),
        allow_position_flip=True,
    )
    assert [p.qty for p in tiny.places] == [D("0.010")]  # 0.00027 remainder dropped
    assert any("below exchange minimums" in n for n in tiny.notes)


def test_buy_while_long_scales_in_and_shorts_need_permission() -> None:
    place = only_place(run(account=long("0.010")))
    assert place.intent is LegIntent.OPEN and not place.reduce_only
    short = only_place(run({"signal_type": SignalType.SELL}))
    assert short.intent is LegIntent.OPEN and short.side is Side.SELL
    refused = run({"signal_type": SignalType.SELL}, allow_short=False)
    assert rejected_code(refused) is RejectCode.SHORT_NOT_ALLOWED
    no_pos = run({"metadata": {"reduce_only": True}})
    assert rejected_code(no_pos) is RejectCode.NO_POSITION_TO_REDUCE
    keep = run(
        {"signal_type": SignalType.SELL, "metadata": {"reduce_only": True}},
        account=long("0.010"),
        allow_position_flip=True,
    )
    assert [p.qty for p in keep.places] == [D("0.010")]


def test_hedge_mode_books() -> None:
    opened = only_place(run(position_mode=PositionMode.HEDGE))
    assert opened.position_idx is PositionIdx.HEDGE_LONG and not opened.reduce_only
    sell_flat = only_place(run({"signal_type": SignalType.SELL}, position_mode=PositionMode.HEDGE))
    assert sell_flat.position_idx is PositionIdx.HEDGE_SHORT and not sell_flat.reduce_only
    account = long("0.010", PositionIdx.HEDGE_LONG)
    close = only_place(
        run({"signal_type": SignalType.SELL}, account=account, position_mode=PositionMode.HEDGE)
    )
    assert close.position_idx is PositionIdx.HEDGE_LONG and close.reduce_only
    explicit = only_place(
        run(
            {"signal_type": SignalType.SELL, "metadata": {"position_idx": PositionIdx.HEDGE_SHORT}},
            account=account,
            position_mode=PositionMode.HEDGE,
        )
    )
    assert explicit.position_idx is PositionIdx.HEDGE_SHORT and not explicit.reduce_only
    wrong = run(
        {"metadata": {"position_idx": PositionIdx.ONE_WAY}}, position_mode=PositionMode.HEDGE
    )
    assert rejected_code(wrong) is RejectCode.POSITION_MODE_MISMATCH
    one_way = run({"metadata": {"position_idx": PositionIdx.HEDGE_LONG}})
    assert rejected_code(one_way) is RejectCode.POSITION_MODE_MISMATCH
    nothing = run(
        {"metadata": {"position_idx": PositionIdx.HEDGE_SHORT}}, position_mode=PositionMode.HEDGE
    )  # buy on the short book = reduce a short that does not exist
    assert rejected_code(nothing) is RejectCode.NO_POSITION_TO_REDUCE


def test_inverse_runs_one_way_even_when_hedge_mode_is_configured() -> None:
    """Only linear books can be in hedge mode on Bybit: an inverse signal opens on index 0,
    and an explicit hedge index is refused before Bybit would answer 10001."""
    inverse = btc(category=Category.INVERSE)
    hedge = replace(CONFIG, position_mode=PositionMode.HEDGE)
    opened = only_place(
        plan(
            make_signal(metadata={"category": Category.INVERSE}), EMPTY, inverse, book(), hedge, NOW
        )
    )
    assert opened.position_idx is PositionIdx.ONE_WAY
    explicit = plan(
        make_signal(
            metadata={"category": Category.INVERSE, "position_idx": PositionIdx.HEDGE_LONG}
        ),
        EMPTY,
        inverse,
        book(),
        hedge,
        NOW,
    )
    assert rejected_code(explicit) is RejectCode.POSITION_MODE_MISMATCH


def test_spot_has_no_positions_or_reduce_only() -> None:
    spot = btc(category=Category.SPOT, min_notional=D("5"))
    p = plan(
        make_signal(signal_type=SignalType.SELL, metadata={"category": Category.SPOT}),
        EMPTY,
        spot,
        book(),
        CONFIG,
        NOW,
    )
    place = only_place(p)
    assert place.position_idx is None and not place.reduce_only
    assert place.take_profit is None


# ---------------------------------------------------------------------------- resting orders


def test_opposite_resting_orders_are_cancelled() -> None:
    account = AccountState(
        balances={"USDT": D(100000)},
        open_orders=(
            resting(Side.SELL, link="om-s-1"),
            resting(Side.SELL, link="om-s-2", status=OrderStatus.PARTIALLY_FILLED, filled="0.004"),
            resting(Side.SELL, link="om-s-3", status=OrderStatus.FILLED),
        ),
    )
    p = run(account=account)
    cancels = p.cancels
    assert [c.order_link_id for c in cancels] == ["om-s-1", "om-s-2"]
    assert all(c.reason is CancelReason.OPPOSITE_SIGNAL for c in cancels)
    assert cancels[1].remaining_qty == D("0.006")
    assert isinstance(p.actions[0], Cancel) and isinstance(p.actions[-1], Place)
    assert [link.relation for link in p.links] == [
        Relation.CREATE,
        Relation.CANCEL,
        Relation.CANCEL,
    ]
    assert run(account=account, cancel_opposite_orders=False).cancels == ()


def test_same_side_limit_signal_amends_the_resting_order() -> None:
    account = AccountState(
        balances={"USDT": D(100000)},
        open_orders=(resting(link="om-a-1", age=20), resting(link="om-a-2", age=5)),
    )
    p = run(account=account)
    assert p.places == ()
    (amend,) = p.amends
    assert isinstance(amend, Amend)
    assert amend.order_link_id == "om-a-2"  # the newest
    assert amend.previous_qty == D("0.010") and amend.added_qty == D("0.015")
    assert amend.qty == D("0.025") and amend.price == D("64250.0")
    assert p.links[0].link_type is LinkType.MANY_TO_ONE
    assert p.links[0].relation is Relation.AMEND and p.links[0].allocated_qty == D("0.015")
    assert p.opening_notional == D("0.015") * D("64250.0")
    # partially filled or unconfirmed orders are not amended
    for order in (
        resting(status=OrderStatus.PARTIALLY_FILLED, filled="0.001"),
        replace(resting(), order_id=None, status=OrderStatus.SUBMITTING),
    ):
        other = run(account=AccountState(balances={"USDT": D(1)}, open_orders=(order,)))
        assert other.amends == () and len(other.places) == 1
    assert run(account=account, amend_resting_orders=False).amends == ()


def test_amend_only_when_the_sum_fits_one_order() -> None:
    account = AccountState(open_orders=(resting(qty="0.150"),))
    p = run(account=account)
    assert p.amends == () and len(p.places) == 1


def test_pending_limits_when_a_market_signal_arrives() -> None:
    account = AccountState(open_orders=(resting(qty="0.010"),))
    kw: dict[str, object] = {"confidence": D("0.9")}
    keep = run(kw, account=account)
    assert keep.cancels == () and only_place(keep).qty == D("0.015")
    cancel = run(kw, account=account, pending_limits_on_market=PendingLimitPolicy.CANCEL)
    assert [c.reason for c in cancel.cancels] == [CancelReason.REPLACED_BY_MARKET]
    assert cancel.places[0].qty == D("0.015")
    convert = run(kw, account=account, pending_limits_on_market=PendingLimitPolicy.CONVERT)
    assert convert.places[0].qty == D("0.025")
    # the executor places the converted part only for limits whose cancel is confirmed
    assert convert.converted_qty == D("0.010") and cancel.converted_qty == 0


def test_a_conversion_carried_over_from_a_crashed_run_joins_the_market_order() -> None:
    """The signal's first run cancelled a 0.010 limit and died before its intents; the limit is
    closed now (no candidate), its untraded 0.010 is carried in. Only under convert."""
    kw: dict[str, object] = {"confidence": D("0.9")}
    signal = make_signal(**kw)

    def planned(policy: PendingLimitPolicy, account: AccountState = EMPTY) -> Plan:
        config = replace(CONFIG, pending_limits_on_market=policy)
        return plan(signal, account, btc(), book(), config, NOW, carried_conversion=D("0.010"))

    convert = planned(PendingLimitPolicy.CONVERT)
    assert only_place(convert).qty == D("0.025") and convert.cancels == ()
    assert convert.converted_qty == D("0.010")
    both = planned(PendingLimitPolicy.CONVERT, AccountState(open_orders=(resting(qty="0.005"),)))
    assert both.places[0].qty == D("0.030") and both.converted_qty == D("0.015")
    assert only_place(planned(PendingLimitPolicy.KEEP)).qty == D("0.015")


def test_a_carried_conversion_keeps_the_signal_a_market_order() -> None:
    """Its first run chose market; the fresher book would say limit now (low confidence)."""
    signal = make_signal(confidence=D("0.1"))
    config = replace(CONFIG, pending_limits_on_market=PendingLimitPolicy.CONVERT)
    fresh = plan(signal, EMPTY, btc(), book(), config, NOW)
    assert only_place(fresh).order_type is OrderType.LIMIT
    carried = plan(signal, EMPTY, btc(), book(), config, NOW, carried_conversion=D("0.010"))
    place = only_place(carried)
    assert place.order_type is OrderType.MARKET and place.qty == D("0.025")
    assert any("carrying a conversion" in note for note in carried.notes)


def test_stale_orders() -> None:
    orders = [resting(link="old", age=600), resting(link="new", age=10)]
    cancels = stale_orders(orders, NOW, timedelta(minutes=5))
    assert [c.order_link_id for c in cancels] == ["old"]
    assert cancels[0].reason is CancelReason.STALE


# ---------------------------------------------------------------------------- TP / SL


def test_tpsl_attached_to_opening_legs_only() -> None:
    place = only_place(
        run({"metadata": {"stop_loss": D("60000.05"), "take_profit": D("70000.01")}})
    )
    assert place.stop_loss == D("60000.0") and place.take_profit == D("70000.1")
    bad = run({"metadata": {"stop_loss": D("65000")}})
    assert rejected_code(bad) is RejectCode.INVALID_TPSL
    bad_tp = run({"signal_type": SignalType.SELL, "metadata": {"take_profit": D("65000")}})
    assert rejected_code(bad_tp) is RejectCode.INVALID_TPSL
    default = only_place(run(default_stop_loss_pct=D("2"), default_take_profit_pct=D("4")))
    assert default.stop_loss == D("62965.0") and default.take_profit == D("66820.0")
    reduce = only_place(
        run({"signal_type": SignalType.SELL}, account=long("0.010"), default_stop_loss_pct=D("2"))
    )
    assert reduce.stop_loss is None


# ---------------------------------------------------------------------------- link ids


def test_order_link_ids() -> None:
    first = order_link_id("om", SIGNAL_ID, 1)
    assert first == order_link_id("om", SIGNAL_ID, 1)
    assert first != order_link_id("om", SIGNAL_ID, 2)
    longest = order_link_id("abcdefgh", SIGNAL_ID, 9999)
    assert len(longest) <= 36 and re.fullmatch(r"[0-9A-Za-z_-]+", longest)
    assert parse_order_link_id("om", first) == (signal_token(SIGNAL_ID), 1)
    assert parse_order_link_id("om", "other-123") is None
    assert parse_order_link_id("om", first + "x") is None
    assert len(signal_token("not-a-uuid")) == 22
    for bad_prefix, leg in (("o-m", 1), ("", 1), ("toolongprefix", 1), ("om", 0), ("om", 10000)):
        with pytest.raises(ValueError):
            order_link_id(bad_prefix, SIGNAL_ID, leg)


@given(st.uuids(), st.uuids(), st.integers(1, 9999), st.integers(1, 9999))
def test_link_ids_are_unique_per_signal_and_leg(a: object, b: object, la: int, lb: int) -> None:
    x, y = order_link_id("om", str(a), la), order_link_id("om", str(b), lb)
    assert (x == y) == (a == b and la == lb)
    assert len(x) <= 36 and re.fullmatch(r"[0-9A-Za-z_-]+", x)
    assert parse_order_link_id("om", x) == (signal_token(str(a)), la)


# ---------------------------------------------------------------------------- properties


instruments = st.builds(
    lambda tick, step, min_units, min_notional: btc(
        tick_size=tick,
        qty_step=step,
        min_order_qty=step * min_units,
        min_notional=min_notional,
        max_order_qty=step * 10**6,
        max_market_qty=step * 10**5,
    ),
    st.sampled_from([D("0.01"), D("0.1"), D("0.5"), D("1"), D("0.0001")]),
    st.sampled_from([D("0.001"), D("0.01"), D("1"), D("0.1"), D("0.00001")]),
    st.integers(1, 10),
    st.sampled_from([D(0), D(1), D(5), D(100)]),
)


@settings(max_examples=400)
@given(
    instruments,
    st.decimals(min_value=D("0.01"), max_value=D("200000"), places=2),
    st.decimals(min_value=D("0.5"), max_value=D("100000"), places=3),
    st.integers(0, 50),
    st.decimals(min_value=0, max_value=1, places=2),
    st.sampled_from([SignalType.BUY, SignalType.SELL]),
    st.sampled_from([None, "0.5", "50"]),
    st.decimals(min_value=-1, max_value=1, places=3),
)
def test_plan_invariants(
    instrument: Instrument,
    amount: Decimal,
    bid: Decimal,
    spread_ticks: int,
    confidence: Decimal,
    signal_type: SignalType,
    depth: str | None,
    position: Decimal,
) -> None:
    ask = bid + spread_ticks * instrument.tick_size
    bid = floor_to_step(bid, instrument.tick_size)
    assume(bid > 0)
    pos_size = floor_to_step(position, instrument.qty_step)
    account = AccountState(
        positions=(
            Position(
                Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY, pos_size, abs(pos_size) * bid
            ),
        )
    )
    signal = make_signal(amount=amount, confidence=confidence, signal_type=signal_type)
    market = book(str(bid), str(ask), ask_depth=depth, bid_depth=depth)
    result = plan(signal, account, instrument, market, CONFIG, NOW)
    if result.is_rejected:
        assert result.exchange_actions == ()
        assert result.rejection is not None
        event(f"rejected {result.rejection.code}")
        return
    event(f"{len(result.places)} legs")
    places = result.places
    assert places
    total = D(0)
    for place in places:
        assert is_multiple(place.qty, instrument.qty_step)
        assert place.qty >= instrument.min_order_qty
        if place.intent is LegIntent.OPEN:
            assert place.notional >= instrument.min_notional
            assert place.notional <= CONFIG.max_order_notional  # type: ignore[operator]
        if place.price is not None:
            assert is_multiple(place.price, instrument.tick_size)
            assert place.price > 0
        assert place.qty <= instrument.max_qty_for(place.order_type)
        total += place.qty * place.reference_price
    # never more than the amount (quantities are rounded down)
    assert total <= amount
    # a reduce leg never exceeds the position
    reduced = sum((p.qty for p in places if p.reduce_only), D(0))
    assert reduced <= abs(pos_size)
    assert [p.leg for p in places] == list(range(1, len(places) + 1))
    assert len({p.order_link_id for p in places}) == len(places)


def test_reduce_legs_skip_what_resting_reduce_only_orders_already_cover() -> None:
    covered = resting(Side.SELL, qty="0.006", reduce_only=True, link="om-r-1")
    account = replace(long("0.010"), open_orders=(covered,))
    p = run({"signal_type": SignalType.SELL}, account=account)
    assert [(pl.qty, pl.reduce_only) for pl in p.places] == [(D("0.004"), True)]
    assert p.cancels == ()  # same-side reduce-only orders stay
    full = replace(long("0.010"), open_orders=(replace(covered, qty=D("0.010")),))
    refused = run({"signal_type": SignalType.SELL}, account=full)
    assert rejected_code(refused) is RejectCode.NO_POSITION_TO_REDUCE
    flip = run({"signal_type": SignalType.SELL}, account=full, allow_position_flip=True)
    assert [(pl.qty, pl.intent) for pl in flip.places] == [(D("0.005"), LegIntent.OPEN)]


def test_signals_with_tpsl_place_their_own_order_instead_of_amending() -> None:
    account = AccountState(balances={"USDT": D(100000)}, open_orders=(resting(),))
    p = run({"metadata": {"stop_loss": D("60000")}}, account=account)
    assert p.amends == () and only_place(p).stop_loss == D("60000.0")
    bad = run({"metadata": {"stop_loss": D("65000")}}, account=account)
    assert rejected_code(bad) is RejectCode.INVALID_TPSL


def test_a_plan_cannot_mix_a_reject_with_actions() -> None:
    p = run()
    with pytest.raises(ValueError):
        Plan(SIGNAL_ID, (*p.actions, Reject(RejectCode.BELOW_MIN_QTY, "x")))


@settings(max_examples=300)
@given(
    st.integers(min_value=1, max_value=30000).map(D),
    st.integers(min_value=0, max_value=300).map(lambda n: D(n) / 1000),
    st.integers(min_value=0, max_value=300).map(lambda n: D(n) / 1000),
    st.sampled_from([SignalType.BUY, SignalType.SELL]),
    st.booleans(),
    st.sampled_from([False, False, False, True]),
    st.sampled_from([None, None, None, PositionIdx.HEDGE_LONG, PositionIdx.HEDGE_SHORT]),
)
def test_hedge_mode_invariants(
    amount: Decimal,
    long_size: Decimal,
    short_size: Decimal,
    signal_type: SignalType,
    flip: bool,
    reduce_only: bool,
    idx: PositionIdx | None,
) -> None:
    positions = (
        Position(Category.LINEAR, "BTCUSDT", PositionIdx.HEDGE_LONG, long_size, long_size * 60000),
        Position(
            Category.LINEAR, "BTCUSDT", PositionIdx.HEDGE_SHORT, -short_size, short_size * 60000
        ),
    )
    signal = make_signal(
        amount=amount,
        signal_type=signal_type,
        metadata={"reduce_only": reduce_only, "position_idx": idx},
    )
    config = replace(CONFIG, position_mode=PositionMode.HEDGE, allow_position_flip=flip)
    result = plan(signal, AccountState(positions=positions), btc(), book(), config, NOW)
    if result.is_rejected:
        assert result.exchange_actions == ()
        assert result.rejection is not None
        event(f"rejected {result.rejection.code}")
        return
    event(" + ".join(p.intent.value for p in result.places))
    side = signal.side
    for place in result.places:
        assert place.side is side
        assert place.position_idx in (PositionIdx.HEDGE_LONG, PositionIdx.HEDGE_SHORT)
        # opening legs use the book of their own side, reducing legs the opposite book
        own = PositionIdx.for_hedge(side)
        assert (place.position_idx is own) == (place.intent is LegIntent.OPEN)
        assert place.reduce_only == (place.intent is LegIntent.REDUCE)
        if reduce_only:
            assert place.reduce_only
    reduced = sum((p.qty for p in result.places if p.reduce_only), D(0))
    assert reduced <= (short_size if side is Side.BUY else long_size)
    assert sum((p.qty * p.reference_price for p in result.places), D(0)) <= amount
