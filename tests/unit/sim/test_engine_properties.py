"""Property tests of the matching engine: random order flow and price moves must keep the
books balanced.

Invariants checked after every operation:
* quantity conserved: the executions of an order sum to its cumExecQty, which never exceeds qty;
* cumExecQty never decreases across the order events of one order;
* no balance (wallet or locked) is ever negative and spot locks never exceed the wallet;
* every fee equals execValue (or, for spot buys, execQty) times the configured rate;
* a position equals the sum of its fills (size) and its cumRealisedPnl equals the sum of
  execPnl minus fees;
* reserved order margin equals what open orders still hold (nothing leaks).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bybit_sim.engine.errors import ApiError
from bybit_sim.engine.exchange import Exchange
from tests.unit.sim.helpers import Recorder, make_exchange

D = Decimal
SYMBOLS = {
    ("linear", "BTCUSDT"): (D("65000"), D("0.1"), D("0.001")),
    ("linear", "XRPUSDT"): (D("2.5"), D("0.0001"), D("1")),
    ("spot", "ETHUSDT"): (D("3500"), D("0.01"), D("0.00001")),
}
KEYS = sorted(SYMBOLS)

create_op = st.builds(
    lambda key, side, kind, tif, qty_steps, offset_ticks, reduce: (
        "create",
        key,
        side,
        kind,
        tif,
        qty_steps,
        offset_ticks,
        reduce,
    ),
    st.sampled_from(KEYS),
    st.sampled_from(["Buy", "Sell"]),
    st.sampled_from(["Market", "Limit"]),
    st.sampled_from(["GTC", "IOC", "FOK", "PostOnly"]),
    st.integers(min_value=1, max_value=4000),
    st.integers(min_value=-40, max_value=40),
    st.booleans(),
)
# resting limit orders a few ticks away, so later moves and forced fills have work to do
resting_op = st.builds(
    lambda key, side, qty_steps, away: (
        "create",
        key,
        side,
        "Limit",
        "GTC",
        qty_steps,
        -away if side == "Buy" else away,
        False,
    ),
    st.sampled_from(KEYS),
    st.sampled_from(["Buy", "Sell"]),
    st.integers(min_value=1, max_value=4000),
    st.integers(min_value=1, max_value=30),
)
move_op = st.builds(
    lambda key, ticks: ("move", key, ticks), st.sampled_from(KEYS), st.integers(-60, 60)
)
# large jumps (±1..15 %) that can push a leveraged account into liquidation
jump_op = st.builds(
    lambda key, pct, up: ("jump", key, pct if up else -pct),
    st.sampled_from([k for k in KEYS if k[0] == "linear"]),
    st.integers(1, 15),
    st.booleans(),
)
cancel_op = st.builds(lambda n: ("cancel", n), st.integers(0, 50))
amend_op = st.builds(
    lambda n, qty_steps, ticks: ("amend", n, qty_steps, ticks),
    st.integers(0, 50),
    st.integers(1, 4000),
    st.integers(-40, 40),
)
fill_op = st.builds(lambda n, frac: ("fill", n, frac), st.integers(0, 50), st.integers(1, 4))
operations = st.lists(
    st.one_of(create_op, resting_op, resting_op, move_op, move_op, cancel_op, amend_op, fill_op),
    min_size=4,
    max_size=40,
)


def _apply(ex: Exchange, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "create":
        _, (category, symbol), side, order_type, tif, qty_steps, offset, reduce = op
        _, tick, step = SYMBOLS[(category, symbol)]
        price = ex.markets[(category, symbol)].last + tick * offset
        params: dict[str, Any] = {
            "category": category,
            "symbol": symbol,
            "side": side,
            "orderType": order_type,
            "qty": str(step * qty_steps * (10 if symbol == "XRPUSDT" else 1)),
            "timeInForce": tif,
        }
        if order_type == "Limit":
            params["price"] = str(price)
        if category == "linear":
            params["reduceOnly"] = reduce
        elif order_type == "Market" and side == "Buy":
            params["marketUnit"] = "baseCoin"
        ex.create_order(params)
    elif kind == "jump":
        _, (category, symbol), pct = op
        last = ex.markets[(category, symbol)].last
        ex.set_price(category, symbol, last * (100 + pct) / 100)
    elif kind == "move":
        _, (category, symbol), ticks = op
        _, tick, _ = SYMBOLS[(category, symbol)]
        ex.set_price(category, symbol, ex.markets[(category, symbol)].last + tick * ticks)
    else:
        open_orders = sorted(ex.open_orders.values(), key=lambda o: o.seq)
        if not open_orders:
            return
        order = open_orders[op[1] % len(open_orders)]
        ref = {"category": order.category, "symbol": order.symbol, "orderId": order.order_id}
        if kind == "cancel":
            ex.cancel_order(ref)
        elif kind == "amend":
            _, tick, step = SYMBOLS[(order.category, order.symbol)]
            amend: dict[str, Any] = {**ref, "qty": str(step * op[2])}
            if order.order_type == "Limit" and order.status != "Untriggered":
                amend["price"] = str(ex.markets[(order.category, order.symbol)].last + tick * op[3])
            ex.amend_order(amend)
        elif kind == "fill" and order.status in ("New", "PartiallyFilled"):
            _, _, step = SYMBOLS[(order.category, order.symbol)]
            leaves = order.qty - order.cum_exec_qty
            qty = max((leaves / op[2] / step).to_integral_value() * step, step)
            ex.force_fill(order.order_id, min(qty, leaves))


def _check(ex: Exchange, rec: Recorder) -> None:
    fees = ex.config.fees
    execs = ex.executions
    by_order: dict[str, Decimal] = {}
    for e in execs:
        by_order[e["orderId"]] = by_order.get(e["orderId"], D(0)) + D(e["execQty"])
        rate = fees[e["category"]].maker if e["isMaker"] else fees[e["category"]].taker
        assert D(e["feeRate"]) == rate
        if e["category"] == "spot" and e["side"] == "Buy":
            assert D(e["execFee"]) == D(e["execQty"]) * rate
        else:
            assert D(e["execFee"]) == D(e["execValue"]) * rate
        assert D(e["execValue"]) == D(e["execQty"]) * D(e["execPrice"])
    for order in ex.orders.values():
        assert by_order.get(order.order_id, D(0)) == order.cum_exec_qty
        if order.quote_budget is None:
            assert order.cum_exec_qty <= order.qty
        else:
            assert order.cum_exec_value <= order.quote_budget
    last_cum: dict[str, Decimal] = {}
    last_time: dict[str, int] = {}
    for item in rec.topic("order"):
        oid = item["orderId"]
        cum = D(item["cumExecQty"])
        assert cum >= last_cum.get(oid, D(0))
        last_cum[oid] = cum
        updated = int(item["updatedTime"])
        assert updated > last_time.get(oid, 0) or updated == int(item["createdTime"])
        last_time[oid] = updated
    for coin, bal in ex.coins.items():
        assert bal.locked >= 0, coin
        assert bal.wallet >= 0, coin
        assert bal.locked <= bal.wallet, coin
    for (symbol, _idx), pos in ex.positions.items():
        fills = [e for e in execs if e["category"] == "linear" and e["symbol"] == symbol]
        signed = sum(
            (D(e["execQty"]) if e["side"] == "Buy" else -D(e["execQty"]) for e in fills), D(0)
        )
        assert pos.signed_size() == signed
        realised = sum((D(e["execPnl"]) - D(e["execFee"]) for e in fills), D(0))
        assert pos.cum_realised == realised
    # the books of resting / conditional orders hold exactly the open orders, in priority order
    for m in ex.markets.values():
        assert [(-o.price, o.seq) for o in m.buys] == sorted((-o.price, o.seq) for o in m.buys)
        assert [(o.price, o.seq) for o in m.sells] == sorted((o.price, o.seq) for o in m.sells)
        for o in m.buys + m.sells:
            assert o.status in ("New", "PartiallyFilled"), o.status
        for o in m.conditionals:
            assert o.status == "Untriggered"
    for o in ex.open_orders.values():
        m = ex.markets[(o.category, o.symbol)]
        if o.status == "Untriggered":
            assert any(c is o for c in m.conditionals)
        else:
            assert any(r is o for r in m.buys + m.sells)
    reserved = sum((o.reserved for o in ex.open_orders.values() if o.category == "linear"), D(0))
    assert ex.order_im == reserved
    for coin in ("USDT", "ETH"):
        locks = sum(
            (
                o.reserved
                for o in ex.open_orders.values()
                if o.category == "spot"
                and (o.inst.cfg.quote_coin if o.side == "Buy" else o.inst.cfg.base_coin) == coin
            ),
            D(0),
        )
        assert ex.coins[coin].locked == locks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_random_order_flow_keeps_invariants(ops: list[tuple[Any, ...]]) -> None:
    ex, rec = make_exchange(initial_wallet={"USDT": D("1000000"), "ETH": D("50")})
    for op in ops:
        # refused requests are part of the flow; they must not change invariants
        with contextlib.suppress(ApiError):
            _apply(ex, op)
        _check(ex, rec)


leveraged_operations = st.lists(
    st.one_of(create_op, create_op, resting_op, jump_op, move_op, cancel_op, fill_op),
    min_size=4,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leveraged_operations)
def test_leveraged_account_with_price_jumps_keeps_invariants(ops: list[tuple[Any, ...]]) -> None:
    """A small wallet at 50x leverage and large price jumps: liquidation keeps every balance
    non-negative and every other invariant still holds."""
    ex, rec = make_exchange(initial_wallet={"USDT": D("3000"), "ETH": D("1")}, default_leverage=50)
    for op in ops:
        with contextlib.suppress(ApiError):
            _apply(ex, op)
        _check(ex, rec)


def test_liquidation_closes_positions_and_floors_the_wallet() -> None:
    ex, rec = make_exchange(initial_wallet={"USDT": D("1000")}, default_leverage=50)
    ex.create_order(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Market",
            "qty": "0.7",
        }
    )
    ex.set_price("linear", "BTCUSDT", D("58000"))
    position = ex.positions[("BTCUSDT", 0)]
    assert position.size == 0
    bust = [e for e in rec.topic("execution") if e["execType"] == "BustTrade"]
    assert len(bust) == 1 and bust[0]["execQty"] == "0.700"
    liq = ex.orders[bust[0]["orderId"]]
    assert liq.create_type == "CreateByLiq" and liq.status == "Filled"
    assert ex.coins["USDT"].wallet == 0
    _check(ex, rec)
