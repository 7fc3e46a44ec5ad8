"""Engine behaviour of order types, amend, cancel-all, fees and events (no HTTP)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bybit_sim.config import SimConfig
from bybit_sim.engine import queries
from bybit_sim.engine.errors import ApiError
from bybit_sim.engine.exchange import Exchange
from tests.unit.sim.helpers import linear, make_exchange, usdt

D = Decimal


def test_market_buy_emits_new_filled_executions_position_and_wallet() -> None:
    ex, rec = make_exchange()
    result = ex.create_order(linear(side="Buy", orderType="Market", qty="1.5"))
    oid = result["orderId"]
    assert rec.statuses(oid) == ["New", "Filled"]
    execs = rec.topic("execution")
    assert sum(D(e["execQty"]) for e in execs) == D("1.5")
    assert all(e["category"] == "linear" and isinstance(e["seq"], int) for e in execs)
    fee = sum(D(e["execFee"]) for e in execs)
    value = sum(D(e["execValue"]) for e in execs)
    assert fee == value * D("0.00055")
    position = rec.topic("position")[-1]
    assert position["size"] == "1.500" and position["side"] == "Buy"
    assert "entryPrice" in position and "avgPrice" not in position
    assert D(position["cumRealisedPnl"]) == -fee
    assert usdt(ex) == D("100000") - fee
    assert rec.topic("wallet")[-1]["accountType"] == "UNIFIED"


def test_updated_time_strictly_increases_per_order() -> None:
    ex, rec = make_exchange()
    oid = ex.create_order(linear(side="Buy", orderType="Limit", qty="1", price="64999.9"))[
        "orderId"
    ]
    ex.amend_order(linear(orderId=oid, qty="2"))
    ex.amend_order(linear(orderId=oid, price="64999.8"))
    ex.cancel_order(linear(orderId=oid))
    times = [int(o["updatedTime"]) for o in rec.topic("order") if o["orderId"] == oid]
    assert len(times) == 4
    assert times == sorted(set(times))


def test_limit_crossing_takes_then_rests_remainder() -> None:
    ex, rec = make_exchange()
    # asks: 65000.1 (0.5), 65000.2 (0.625): a buy at 65000.2 for 2 takes 1.125 and rests 0.875
    oid = ex.create_order(linear(side="Buy", orderType="Limit", qty="2", price="65000.2"))[
        "orderId"
    ]
    order = ex.orders[oid]
    assert order.status == "PartiallyFilled"
    assert order.cum_exec_qty == D("1.125")
    assert rec.statuses(oid) == ["New", "PartiallyFilled"]
    listed = queries.open_orders(ex, linear())["list"]
    assert listed[0]["leavesQty"] == "0.875"


def test_ioc_and_fok() -> None:
    ex, rec = make_exchange()
    ioc = ex.create_order(
        linear(side="Buy", orderType="Limit", qty="2", price="65000.1", timeInForce="IOC")
    )["orderId"]
    assert ex.orders[ioc].status == "Cancelled"
    assert ex.orders[ioc].cum_exec_qty == D("0.5")
    fok = ex.create_order(
        linear(side="Buy", orderType="Limit", qty="2", price="65000.1", timeInForce="FOK")
    )["orderId"]
    assert ex.orders[fok].status == "Cancelled"
    assert ex.orders[fok].reject_reason == "EC_CancelForNoFullFill"
    assert ex.orders[fok].cum_exec_qty == 0
    assert rec.statuses(fok) == ["New", "Cancelled"]


def test_amend_rules() -> None:
    ex, _ = make_exchange()
    oid = ex.create_order(linear(side="Sell", orderType="Limit", qty="1", price="65010"))["orderId"]
    ex.force_fill(oid, D("0.4"))
    with pytest.raises(ApiError) as err:
        ex.amend_order(linear(orderId=oid, qty="0.4"))
    assert err.value.ret_code == 110064
    with pytest.raises(ApiError) as err:
        ex.amend_order(linear(orderId=oid, qty="1"))
    assert err.value.ret_code == 10001
    ex.amend_order(linear(orderId=oid, qty="0.5"))
    assert ex.orders[oid].leaves_qty == D("0.1")
    # re-pricing across the bid executes the rest immediately
    ex.amend_order(linear(orderId=oid, price="64999.9"))
    assert ex.orders[oid].status == "Filled"
    with pytest.raises(ApiError) as err:
        ex.amend_order(linear(orderId=oid, qty="2"))
    assert err.value.ret_code == 110001


def test_reduce_only_is_clipped_to_the_position() -> None:
    ex, _ = make_exchange()
    ex.create_order(linear(side="Buy", orderType="Market", qty="0.3"))
    oid = ex.create_order(linear(side="Sell", orderType="Market", qty="1", reduceOnly=True))[
        "orderId"
    ]
    assert ex.orders[oid].qty == D("0.3")
    assert ex.orders[oid].status == "Filled"
    pos = queries.position_list(ex, linear())["list"][0]
    assert pos["size"] == "0.000" and pos["side"] == ""


def test_reduce_only_resting_order_cancelled_when_position_gone() -> None:
    ex, _ = make_exchange()
    ex.create_order(linear(side="Buy", orderType="Market", qty="0.3"))
    ro = ex.create_order(
        linear(side="Sell", orderType="Limit", qty="0.3", price="65100", reduceOnly=True)
    )["orderId"]
    ex.create_order(linear(side="Sell", orderType="Market", qty="0.3"))
    ex.set_price("linear", "BTCUSDT", D("65200"))
    assert ex.orders[ro].status == "Cancelled"
    assert ex.orders[ro].cancel_type == "CancelByReduceOnly"


def test_realised_pnl_on_close_and_flip() -> None:
    ex, _ = make_exchange()
    buy = ex.create_order(linear(side="Buy", orderType="Limit", qty="1", price="64000"))["orderId"]
    ex.force_fill(buy)
    sell = ex.create_order(linear(side="Sell", orderType="Limit", qty="1.5", price="66000"))[
        "orderId"
    ]
    ex.force_fill(sell)
    pos = queries.position_list(ex, linear())["list"][0]
    assert pos["side"] == "Sell" and pos["size"] == "0.500" and pos["avgPrice"] == "66000.00"
    fees = D("64000") * D("0.0002") + D("66000") * D("1.5") * D("0.0002")
    assert D(pos["cumRealisedPnl"]) == D("2000") - fees
    assert usdt(ex) == D("100000") + D("2000") - fees
    execs = queries.execution_list(ex, linear(orderId=sell))["list"]
    assert execs[0]["closedSize"] == "1.000"
    assert D(execs[0]["execPnl"]) == D("2000")


def test_cancel_all_requires_a_scope_and_cancels_everything_in_it() -> None:
    ex, rec = make_exchange()
    ids = [
        ex.create_order(linear(side="Buy", orderType="Limit", qty="0.01", price=str(60000 + n)))[
            "orderId"
        ]
        for n in range(3)
    ]
    other = ex.create_order(
        linear(symbol="ETHUSDT", side="Buy", orderType="Limit", qty="0.1", price="3000")
    )["orderId"]
    with pytest.raises(ApiError) as err:
        ex.cancel_all({"category": "linear"})
    assert err.value.ret_code == 10001
    result = ex.cancel_all(linear())
    assert result["success"] == "1"
    assert sorted(o["orderId"] for o in result["list"]) == sorted(ids)
    assert ex.orders[other].status == "New"
    assert ex.order_im == D("300") / 10  # only ETH's margin stays reserved
    assert all(rec.statuses(i)[-1] == "Cancelled" for i in ids)


def test_history_lists_closed_orders_only() -> None:
    ex, _ = make_exchange()
    open_id = ex.create_order(linear(side="Buy", orderType="Limit", qty="0.01", price="60000"))[
        "orderId"
    ]
    filled = ex.create_order(linear(side="Buy", orderType="Market", qty="0.01"))["orderId"]
    history = queries.order_history(ex, linear())["list"]
    assert [o["orderId"] for o in history] == [filled]
    assert open_id not in {o["orderId"] for o in history}
    assert queries.order_history(ex, linear(orderStatus="Cancelled"))["list"] == []


def test_spot_buy_and_sell_move_balances_with_fees_in_received_coin() -> None:
    ex, _ = make_exchange()
    spot = {"category": "spot", "symbol": "BTCUSDT"}
    ex.create_order(
        {**spot, "side": "Buy", "orderType": "Limit", "qty": "0.1", "price": "65000.01"}
    )
    btc = ex.coins["BTC"].wallet
    assert btc == D("0.1") * (1 - D("0.001"))
    assert ex.coins["USDT"].wallet == D("100000") - D("0.1") * D("65000.01")
    oid = ex.create_order(
        {**spot, "side": "Sell", "orderType": "Limit", "qty": "0.05", "price": "65100"}
    )["orderId"]
    assert ex.coins["BTC"].locked == D("0.05")
    with pytest.raises(ApiError) as err:
        ex.create_order({**spot, "side": "Sell", "orderType": "Market", "qty": "0.06"})
    assert err.value.ret_code == 170131
    ex.cancel_order({**spot, "orderId": oid})
    assert ex.coins["BTC"].locked == 0
    market = ex.create_order({**spot, "side": "Buy", "orderType": "Market", "qty": "100"})
    order = ex.orders[market["orderId"]]
    assert order.status == "Filled"
    assert order.cum_exec_value <= D("100")
    assert order.render(ws=False)["marketUnit"] == "quoteCoin"


def test_reset_restores_the_initial_state() -> None:
    ex, rec = make_exchange()
    ex.create_order(linear(side="Buy", orderType="Market", qty="0.1"))
    ex.reset()
    assert usdt(ex) == D("100000")
    assert ex.orders == {}
    assert queries.position_list(ex, linear())["list"][0]["size"] == "0.000"
    assert rec.topic("wallet")[-1]["totalWalletBalance"] == "100000"
    dump = ex.dump()
    assert dump["orders"] == [] and len(dump["markets"]) == 6


def test_ids_are_deterministic_under_seed() -> None:
    a, _ = make_exchange()
    b, _ = make_exchange()
    ida = a.create_order(linear(side="Buy", orderType="Market", qty="0.1"))["orderId"]
    idb = b.create_order(linear(side="Buy", orderType="Market", qty="0.1"))["orderId"]
    assert ida == idb
    c, _ = make_exchange(seed=2)
    assert c.create_order(linear(side="Buy", orderType="Market", qty="0.1"))["orderId"] != ida


def test_random_walk_is_deterministic_under_seed() -> None:
    def path(seed: int) -> list[str]:
        ex = Exchange(SimConfig(seed=seed))
        out = []
        for _ in range(20):
            ex.tick()
            out.append(ex.ticker("linear", "ETHUSDT")["lastPrice"])
        return out

    assert path(7) == path(7)
    assert path(7) != path(8)
    assert len(set(path(7))) > 1


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", "1e999", "-1", [], {}, True])
def test_malformed_numbers_are_params_errors(bad: object) -> None:
    ex, _ = make_exchange()
    with pytest.raises(ApiError) as err:
        ex.create_order(linear(side="Buy", orderType="Limit", qty="0.001", price=bad))
    assert err.value.ret_code == 10001
    assert ex.orders == {}


def test_step_price_moves_even_a_frozen_path_deterministically() -> None:
    def walk(seed: int) -> list[str]:
        ex, _ = make_exchange(seed=seed)
        out = []
        for _ in range(5):
            before = ex.ticker("linear", "BTCUSDT")["lastPrice"]
            ex.step_price("linear", "BTCUSDT")
            after = ex.ticker("linear", "BTCUSDT")["lastPrice"]
            assert after != before
            out.append(after)
        ex.tick()  # the background tick leaves a frozen path alone
        assert ex.ticker("linear", "BTCUSDT")["lastPrice"] == out[-1]
        return out

    assert walk(3) == walk(3)


def test_amended_tpsl_is_checked_against_the_order_price() -> None:
    ex, _ = make_exchange()
    oid = ex.create_order(
        linear(side="Buy", orderType="Limit", qty="0.1", price="64000", takeProfit="66000")
    )["orderId"]
    with pytest.raises(ApiError) as err:
        ex.amend_order(linear(orderId=oid, stopLoss="64500"))
    assert err.value.ret_msg.startswith("StopLoss:64500.00 set for Buy position should lower")
    ex.amend_order(linear(orderId=oid, stopLoss="63000"))
    assert ex.orders[oid].stop_loss == D("63000")


def test_resting_orders_share_the_crossed_liquidity_in_priority_order() -> None:
    ex, _ = make_exchange()
    first = ex.create_order(linear(side="Buy", orderType="Limit", qty="1", price="64990"))
    second = ex.create_order(linear(side="Buy", orderType="Limit", qty="1", price="64990"))
    better = ex.create_order(linear(side="Buy", orderType="Limit", qty="0.2", price="64990.1"))
    # only the best ask (64990.0, 0.5) lies at or below 64990.1 after this move
    ex.set_price("linear", "BTCUSDT", D("64989.9"))
    assert ex.orders[better["orderId"]].status == "Filled"
    assert ex.orders[first["orderId"]].cum_exec_qty == D("0.3")
    assert ex.orders[second["orderId"]].cum_exec_qty == 0
    ex.set_price("linear", "BTCUSDT", D("64900"))
    assert ex.orders[first["orderId"]].status == "Filled"
    assert ex.orders[second["orderId"]].status == "Filled"
    assert all(e["isMaker"] for e in ex.executions)


def test_history_pages_newest_first_within_the_window() -> None:
    clock = [1_700_000_000_000]
    ex = Exchange(SimConfig().with_path("frozen"), clock=lambda: clock[0])
    closed = []
    for n in range(5):
        clock[0] += 1000
        oid = ex.create_order(
            linear(side="Buy", orderType="Limit", qty="0.01", price=str(60000 + n))
        )["orderId"]
        ex.cancel_order(linear(orderId=oid))
        closed.append(oid)
        ex.create_order(linear(side="Buy", orderType="Limit", qty="0.01", price="59000"))
    seen: list[str] = []
    cursor = ""
    while True:
        page = queries.order_history(ex, linear(limit="2", cursor=cursor))
        seen += [o["orderId"] for o in page["list"]]
        cursor = page["nextPageCursor"]
        if not cursor:
            break
    assert seen == list(reversed(closed))
    since_third = queries.order_history(ex, linear(startTime=str(1_700_000_003_000)))
    assert [o["orderId"] for o in since_third["list"]] == list(reversed(closed[2:]))


def test_an_id_epoch_gives_every_start_and_reset_its_own_ids() -> None:
    """A restarted simulator must not reuse an order id: the client's database keeps them."""

    def first_ids(exchange: Exchange) -> tuple[str, str]:
        linear_id = exchange.create_order(linear(side="Buy", orderType="Market", qty="0.1"))
        spot_id = exchange.create_order(
            {
                "category": "spot",
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Market",
                "qty": "100",
            }
        )
        return linear_id["orderId"], spot_id["orderId"]

    fixed, _ = make_exchange()
    fixed_ids = first_ids(fixed)
    one, _ = make_exchange(id_epoch=1_000)
    other, _ = make_exchange(id_epoch=2_000)
    ids_one, ids_other = first_ids(one), first_ids(other)
    assert len({*fixed_ids, *ids_one, *ids_other}) == 6
    one.reset()
    assert set(first_ids(one)).isdisjoint(ids_one)  # a reset draws new ids too
    fixed.reset()
    assert first_ids(fixed) == fixed_ids  # id_epoch 0: reproducible, also after a reset
