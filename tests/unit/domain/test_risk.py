from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.domain.account import AccountState, OpenOrder
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side
from order_manager.domain.money import is_multiple
from order_manager.domain.orders import OrderState, OrderStatus
from order_manager.domain.planner import PlannerConfig, plan
from order_manager.domain.plans import LegIntent, Plan
from order_manager.domain.positions import Position
from order_manager.domain.rejections import RejectCode
from order_manager.domain.risk import RiskDecision, RiskLimits, RiskVerdict, check, commitment
from order_manager.domain.signals import SignalType
from tests.unit.domain.conftest import NOW, book, btc, make_signal

D = Decimal
RICH = {"USDT": D(100000)}


def planned(
    account: AccountState,
    *,
    config: PlannerConfig | None = None,
    **signal_kw: object,
) -> Plan:
    signal_kw.setdefault("confidence", D("0.9"))  # market buy at 64250.1
    return plan(make_signal(**signal_kw), account, btc(), book(), config or PlannerConfig(), NOW)


def decide(
    account: AccountState, limits: RiskLimits | None = None, **signal_kw: object
) -> RiskDecision:
    p = planned(account, config=None, **signal_kw)
    assert not p.is_rejected, p.rejection
    return check(p, account, limits or RiskLimits(), NOW)


def rejected(decision: RiskDecision, code: RejectCode) -> None:
    assert decision.verdict is RiskVerdict.REJECTED, decision
    assert decision.rejection is not None and decision.rejection.code is code
    assert decision.plan.is_rejected and decision.plan.exchange_actions == ()
    assert not decision.approved


def long(size: str, **kw: object) -> AccountState:
    pos = Position(Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY, D(size), abs(D(size)) * 64000)
    return AccountState(balances=kw.pop("balances", RICH), positions=(pos,), **kw)  # type: ignore[arg-type]


def open_buy(qty: str, price: str = "60000.0", link: str = "om-x-1") -> OpenOrder:
    state = OrderState.submitting(
        order_link_id=link,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=D(qty),
        price=D(price),
        time_in_force=None,
        created_at=NOW,
    )
    return OpenOrder.from_state(replace(state, status=OrderStatus.PENDING, order_id="o1"), btc())


def test_approved_plan_is_returned_unchanged() -> None:
    account = AccountState(balances=RICH)
    p = planned(account)
    decision = check(p, account, RiskLimits(), NOW)
    assert decision.verdict is RiskVerdict.APPROVED and decision.plan is p and decision.approved


def test_rejected_plans_pass_through() -> None:
    p = planned(AccountState(balances=RICH), amount=D("1"))
    decision = check(p, AccountState(), RiskLimits(), NOW)
    assert decision.verdict is RiskVerdict.REJECTED and decision.rejection is p.rejection


def test_balance_check_rejects_before_any_exchange_call() -> None:
    poor = AccountState(balances={"USDT": D("500")})
    rejected(decide(poor), RejectCode.INSUFFICIENT_BALANCE)
    # disabled: the order goes to the exchange, which will answer 110007
    off = decide(poor, RiskLimits(enable_balance_check=False, max_order_size_ratio=None))
    assert off.verdict is RiskVerdict.APPROVED


def test_balance_minus_open_order_reservations() -> None:
    account = AccountState(balances={"USDT": D("2400")}, open_orders=(open_buy("0.025"),))
    assert account.reserved("USDT") == D("1500.000")
    rejected(
        decide(account, RiskLimits(max_order_size_ratio=None)), RejectCode.INSUFFICIENT_BALANCE
    )
    leveraged = replace(account, leverage={"BTCUSDT": D(10)})
    assert decide(leveraged, RiskLimits(max_order_size_ratio=None)).verdict is RiskVerdict.APPROVED


def test_reduce_instead_of_reject_scales_down_to_the_step() -> None:
    poor = AccountState(balances={"USDT": D("500")})
    decision = decide(poor, RiskLimits(reduce_instead_of_reject=True, max_order_size_ratio=None))
    assert decision.verdict is RiskVerdict.ADJUSTED
    assert (
        decision.rejection is not None
        and decision.rejection.code is RejectCode.INSUFFICIENT_BALANCE
    )
    (place,) = decision.plan.places
    assert place.qty == D("0.007")  # 500 / 1.001 / 64250.1 = 0.00777
    assert is_multiple(place.qty, D("0.001"))
    assert place.notional * D("1.001") <= D(500)


def test_position_exposure_ratio_and_daily_limits() -> None:
    rejected(decide(long("0.770")), RejectCode.MAX_POSITION_SIZE)  # 49280 + 964 > 50000
    # the opposite direction does not count against the long limit (a sell reduces it)
    assert decide(long("0.770"), signal_type=SignalType.SELL).verdict is RiskVerdict.APPROVED
    resting = AccountState(balances=RICH, open_orders=(open_buy("0.820"),))  # 49200 resting
    rejected(decide(resting), RejectCode.MAX_POSITION_SIZE)
    rejected(
        decide(AccountState(balances=RICH), RiskLimits(max_total_exposure=D("900"))),
        RejectCode.MAX_TOTAL_EXPOSURE,
    )
    rejected(decide(AccountState(balances={"USDT": D("1500")})), RejectCode.MAX_ORDER_SIZE_RATIO)
    daily = AccountState(balances=RICH, daily_volume=D("99500"))
    rejected(decide(daily, RiskLimits(max_daily_volume=D("100000"))), RejectCode.MAX_DAILY_VOLUME)


def test_per_order_safety_net() -> None:
    account = AccountState(balances=RICH)
    big = planned(account, amount=D("9000"), config=PlannerConfig(max_order_notional=None))
    rejected(
        check(big, account, RiskLimits(max_order_notional=D("5000")), NOW),
        RejectCode.MAX_ORDER_SIZE,
    )
    shrunk = check(
        big, account, RiskLimits(max_order_notional=D("5000"), reduce_instead_of_reject=True), NOW
    )
    assert shrunk.verdict is RiskVerdict.ADJUSTED
    assert all(p.notional <= 5000 for p in shrunk.plan.places)


def test_orders_per_minute_per_symbol() -> None:
    recent = tuple(NOW - timedelta(seconds=s) for s in range(1, 31))
    busy = AccountState(balances=RICH, recent_order_times={"BTCUSDT": recent})
    rejected(decide(busy), RejectCode.RATE_LIMITED)
    old = AccountState(
        balances=RICH, recent_order_times={"BTCUSDT": (NOW - timedelta(minutes=2),) * 40}
    )
    assert decide(old).verdict is RiskVerdict.APPROVED
    other_symbol = AccountState(balances=RICH, recent_order_times={"ETHUSDT": recent})
    assert decide(other_symbol).verdict is RiskVerdict.APPROVED


def test_reduce_only_is_always_allowed() -> None:
    paused_broke = long("0.010", balances={}, trading_paused=True)
    decision = decide(paused_broke, signal_type=SignalType.SELL)
    assert decision.verdict is RiskVerdict.APPROVED
    assert [p.reduce_only for p in decision.plan.places] == [True]
    rejected(decide(AccountState(balances=RICH, trading_paused=True)), RejectCode.TRADING_PAUSED)
    # a flip keeps its reducing leg and drops the opening one when paused
    flip_cfg = PlannerConfig(allow_position_flip=True)
    account = long("0.010", trading_paused=True)
    p = planned(account, signal_type=SignalType.SELL, config=flip_cfg)
    assert len(p.places) == 2
    decision = check(p, account, RiskLimits(), NOW)
    assert decision.verdict is RiskVerdict.ADJUSTED
    assert [pl.intent for pl in decision.plan.places] == [LegIntent.REDUCE]
    assert decision.rejection is not None and decision.rejection.code is RejectCode.TRADING_PAUSED


def test_cancels_survive_only_with_an_order_action() -> None:
    sell_order = replace(open_buy("0.010", link="om-s-1"), side=Side.SELL)
    account = AccountState(balances={"USDT": D(10)}, open_orders=(sell_order,))
    p = planned(account)
    assert len(p.cancels) == 1
    rejected(check(p, account, RiskLimits(), NOW), RejectCode.INSUFFICIENT_BALANCE)


def test_spot_sells_need_the_base_coin() -> None:
    spot = btc(category=Category.SPOT)
    signal = make_signal(signal_type=SignalType.SELL, metadata={"category": Category.SPOT})
    account = AccountState(balances={"BTC": D("0.005"), "USDT": RICH["USDT"]})
    p = plan(signal, account, spot, book(), PlannerConfig(), NOW)
    rejected(check(p, account, RiskLimits(), NOW), RejectCode.INSUFFICIENT_BALANCE)
    adjusted = check(p, account, RiskLimits(reduce_instead_of_reject=True), NOW)
    assert adjusted.verdict is RiskVerdict.ADJUSTED and adjusted.plan.places[0].qty == D("0.005")


@settings(max_examples=300)
@given(
    st.decimals(min_value=D("10"), max_value=D("50000"), places=2),
    st.decimals(min_value=D("0"), max_value=D("60000"), places=2),
    st.booleans(),
    st.decimals(min_value=D("-0.5"), max_value=D("0.5"), places=3),
    st.sampled_from([SignalType.BUY, SignalType.SELL]),
)
def test_risk_never_exceeds_the_balance_and_rejections_make_no_calls(
    amount: Decimal, balance: Decimal, reduce: bool, position: Decimal, signal_type: SignalType
) -> None:
    pos = Position(Category.LINEAR, "BTCUSDT", PositionIdx.ONE_WAY, position, abs(position) * 64000)
    account = AccountState(balances={"USDT": balance}, positions=(pos,))
    p = planned(
        account, amount=amount, signal_type=signal_type, config=PlannerConfig(max_split_orders=20)
    )
    limits = RiskLimits(reduce_instead_of_reject=reduce, max_order_size_ratio=None)
    decision = check(p, account, limits, NOW)
    if decision.verdict is RiskVerdict.REJECTED:
        assert decision.plan.exchange_actions == ()
        return
    out = decision.plan
    assert out.opening_notional * (1 + limits.fee_rate) <= balance
    assert out.opening_notional <= p.opening_notional
    for place in out.places:
        assert is_multiple(place.qty, D("0.001")) and place.qty >= D("0.001")
        if place.intent is LegIntent.OPEN:
            assert place.notional >= 5
    reduced = sum((pl.qty for pl in out.places if pl.reduce_only), D(0))
    assert reduced <= abs(position)


def test_open_order_reservations_per_category() -> None:
    base = OrderState.submitting(
        order_link_id="l",
        category=Category.SPOT,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=D("0.5"),
        price=D("100"),
        time_in_force=None,
        created_at=NOW,
    )
    spot = btc(category=Category.SPOT)
    buy = OpenOrder.from_state(base, spot)
    assert (buy.reserve_coin, buy.reserved, buy.notional) == ("USDT", D("50.0"), D("50.0"))
    sell = OpenOrder.from_state(replace(base, side=Side.SELL), spot)
    assert (sell.reserve_coin, sell.reserved) == ("BTC", D("0.5"))
    inverse = btc(category=Category.INVERSE, symbol="BTCUSD", qty_step=D(1), min_order_qty=D(1))
    contracts = replace(base, category=Category.INVERSE, symbol="BTCUSD", qty=D(1000))
    inv = OpenOrder.from_state(contracts, inverse, leverage=D(2))
    assert (inv.reserve_coin, inv.reserved, inv.notional) == ("BTC", D(5), D(1000))
    reduce = OpenOrder.from_state(replace(base, category=Category.LINEAR, reduce_only=True), btc())
    assert reduce.reserved == 0
    market = replace(base, category=Category.LINEAR, order_type=OrderType.MARKET, price=None)
    assert OpenOrder.from_state(market, btc(), reference_price=D("200")).reserved == D("100.0")
    account = AccountState(balances={"USDT": D(80)}, open_orders=(buy,))
    assert account.available("USDT") == D("30.0") and account.exposure() == D("50.0")


def test_a_concurrent_plans_commitment_counts_like_our_open_orders() -> None:
    """Two 964 USDT buys approved on one snapshot would pass a 1 500 exposure limit each; the
    second, checked with the first's commitment, is refused — and the commitment reserves
    and counts exactly what the first plan's orders will once written."""
    account = AccountState(balances=RICH, leverage={"BTCUSDT": D(4)})
    limits = RiskLimits(max_total_exposure=D("1500"))
    first = planned(account)
    assert check(first, account, limits, NOW).approved
    taken = commitment(first, account, NOW)
    (order,) = taken.orders
    assert order.notional == first.opening_notional == taken.opening_notional
    assert order.reserved == first.opening_notional / 4  # at the symbol's leverage
    after = account.with_commitments([taken])
    assert after.exposure() == first.opening_notional
    assert after.available("USDT") == RICH["USDT"] - order.reserved
    assert after.daily_volume == first.opening_notional
    rejected(check(planned(after), after, limits, NOW), RejectCode.MAX_TOTAL_EXPOSURE)
    assert account.with_commitments([]) is account


def test_reduce_only_legs_commit_nothing_and_amends_commit_what_they_add() -> None:
    selling = commitment(planned(long("0.010"), signal_type=SignalType.SELL), long("0.010"), NOW)
    assert selling.orders == () and selling.opening_notional == 0
    account = AccountState(balances=RICH, open_orders=(open_buy("0.010", "64000.0"),))
    amending = planned(account, confidence=D("0.5"))  # a limit buy: amends the resting one
    (amend,) = amending.amends
    (added,) = commitment(amending, account, NOW).orders
    assert added.qty == amend.added_qty and added.notional == amend.added_notional
