"""Signal → plan → risk → exchange order, on real PostgreSQL and a running bybit_sim."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from order_manager.adapters.bybit.gateway import BybitGateway, GatewayReport
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.metrics import metrics_for
from order_manager.adapters.bybit.queries import BybitReconcileQueries
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.domain.enums import Category
from order_manager.domain.planner import PlannerConfig
from order_manager.domain.plans import Place
from order_manager.domain.rejections import RejectCode
from order_manager.domain.risk import RiskLimits
from order_manager.services.ports.processing import (
    SignalExecuted,
    SignalFailed,
    SignalOutcome,
    SignalRejected,
)
from order_manager.services.processor import AccountSource, Processor, ProcessorConfig
from order_manager.services.store_freshness import StoreFreshness
from order_manager.services.tracker import Tracker
from tests.helpers import eventually

from .conftest import Env, client_config, new_signal, one_attempt_processor


async def test_a_1000_usdt_buy_becomes_the_right_order(env: Env) -> None:
    signal = await new_signal(env, amount="1000", confidence=0.9)
    outcome = await env.processor().process(signal, "trace-1000")

    assert isinstance(outcome, SignalExecuted), outcome
    orders = await env.sim_orders()
    assert len(orders) == 1
    placed = orders[0]
    # fresh book: ask 65000.10; 1000 / 65000.10 = 0.01538.. rounded DOWN to qtyStep 0.001
    assert placed["side"] == "Buy"
    assert placed["orderType"] == "Market"
    assert Decimal(placed["qty"]) == Decimal("0.015")
    assert placed["orderLinkId"] == outcome.order_link_ids[0]
    assert placed["orderId"] == outcome.order_ids[0]
    assert placed["reduceOnly"] is False

    rows = await env.fetch("SELECT * FROM orders")
    assert len(rows) == 1
    assert rows[0]["order_id"] == placed["orderId"]
    assert rows[0]["status"] == "pending"
    assert rows[0]["trace_id"] == "trace-1000"
    links = await env.fetch("SELECT relation, allocated_qty FROM signal_order_links")
    assert [(r["relation"], r["allocated_qty"]) for r in links] == [("create", Decimal("0.015"))]
    audit = await env.fetch("SELECT * FROM audit_log WHERE action = 'order.create'")
    assert len(audit) == 1
    assert audit[0]["trace_id"] == "trace-1000"
    assert audit[0]["ret_code"] == 0
    assert audit[0]["request"]["orderLinkId"] == placed["orderLinkId"]
    assert audit[0]["duration_ms"] > 0
    events = await env.fetch("SELECT event_type, payload FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created"]
    assert events[0]["payload"]["order"]["order_link_id"] == placed["orderLinkId"]
    assert events[0]["payload"]["trace_id"] == "trace-1000"


async def test_insufficient_balance_is_refused_before_any_exchange_call(env: Env) -> None:
    await env.admin_post("/sim/withdraw", {"coin": "USDT", "amount": "99950"})  # 50 USDT left
    signal = await new_signal(env, amount="1000")
    outcome = await env.processor().process(signal, "t-bal")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.code is RejectCode.INSUFFICIENT_BALANCE
    assert await env.sim_orders() == []
    assert await env.fetch("SELECT 1 FROM audit_log WHERE action = 'order.create'") == []
    assert await env.fetch("SELECT 1 FROM orders") == []


async def test_balance_check_off_lets_the_exchange_refuse_with_110007(env: Env) -> None:
    await env.admin_post("/sim/withdraw", {"coin": "USDT", "amount": "99950"})
    signal = await new_signal(env, amount="1000")
    # the ratio limit (order vs balance) is a separate setting: off here as well
    limits = RiskLimits(enable_balance_check=False, max_order_size_ratio=None)
    processor = env.processor(limits=limits)
    outcome = await processor.process(signal, "t-110007")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.code is RejectCode.EXCHANGE_REJECTED
    assert outcome.details["ret_code"] == "110007"
    assert not [o for o in await env.sim_orders() if o["orderStatus"] in ("New", "Filled")]
    rows = await env.fetch("SELECT status, last_error_code FROM orders")
    assert [(r["status"], r["last_error_code"]) for r in rows] == [("rejected", 110007)]
    events = await env.fetch("SELECT event_type FROM outbox")
    assert [e["event_type"] for e in events] == ["rejected"]
    audit = await env.fetch("SELECT ret_code FROM audit_log WHERE action = 'order.create'")
    assert [a["ret_code"] for a in audit] == [110007]


async def test_a_large_signal_splits_into_children_that_sum_to_the_parent(env: Env) -> None:
    signal = await new_signal(env, amount="25000")
    planner = PlannerConfig(max_order_notional=Decimal("10000"), max_book_depth_share=None)
    limits = RiskLimits(max_order_notional=Decimal("10000"), max_order_size_ratio=None)
    outcome = await env.processor(planner=planner, limits=limits).process(signal, "t-split")

    assert isinstance(outcome, SignalExecuted), outcome
    orders = await env.sim_orders()
    qtys = [Decimal(o["qty"]) for o in orders]
    assert len(orders) == 3
    assert sum(qtys) == Decimal("0.384")  # 25000 / 65000.10 rounded down to 0.001
    assert all(q * Decimal("65000.10") <= Decimal("10000") for q in qtys)
    links = await env.fetch("SELECT relation, allocated_qty FROM signal_order_links")
    assert {r["relation"] for r in links} == {"split"}
    assert sum(r["allocated_qty"] for r in links) == Decimal("0.384")
    assert len({o["orderLinkId"] for o in orders}) == 3


async def test_a_sell_while_long_only_reduces(env: Env) -> None:
    buy = await new_signal(env, amount="1000")
    processor = env.processor()
    assert isinstance(await processor.process(buy, "t-buy"), SignalExecuted)
    # a sell far larger than the 0.015 long: flip is disabled, so only the position is closed
    sell = await new_signal(env, side="sell", amount="5000")
    outcome = await processor.process(sell, "t-sell")

    assert isinstance(outcome, SignalExecuted), outcome
    sells = [o for o in await env.sim_orders() if o["side"] == "Sell"]
    assert len(sells) == 1
    assert sells[0]["reduceOnly"] is True
    assert Decimal(sells[0]["qty"]) == Decimal("0.015")
    positions = (await env.state())["positions"]
    btc = next(p for p in positions if p["symbol"] == "BTCUSDT" and p["category"] == "linear")
    assert Decimal(btc["size"]) == 0


async def test_a_same_side_signal_amends_the_resting_limit(env: Env) -> None:
    processor = env.processor()
    first = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    one = await processor.process(first, "t-l1")
    assert isinstance(one, SignalExecuted), one
    second = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    two = await processor.process(second, "t-l2")

    assert isinstance(two, SignalExecuted), two
    assert two.order_link_ids == one.order_link_ids  # the same order took both signals
    orders = await env.sim_orders()
    assert len(orders) == 1
    assert orders[0]["orderStatus"] == "New"
    assert Decimal(orders[0]["qty"]) == Decimal("0.030")
    events = await env.fetch("SELECT event_type, payload FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "modified"]
    modification = events[1]["payload"]["modification"]
    assert modification["before"]["qty"] == "0.015"
    assert modification["after"]["qty"] == "0.030"
    links = await env.fetch("SELECT signal_id::text, relation FROM signal_order_links ORDER BY id")
    assert [(r["signal_id"], r["relation"]) for r in links] == [
        (first.signal_id, "create"),
        (second.signal_id, "amend"),
    ]
    # the amend's write-ahead record, marked landed with its recorded answer
    record = await env.fetch(
        "SELECT amend_qty, amend_price, amend_from_qty, amend_from_price, amended_at "
        "FROM signal_order_links WHERE relation = 'amend'"
    )
    assert record[0]["amend_qty"] == Decimal("0.030")
    assert record[0]["amend_from_qty"] == Decimal("0.015")
    assert record[0]["amend_price"] == record[0]["amend_from_price"] is not None
    assert record[0]["amended_at"] is not None
    rows = await env.fetch("SELECT qty FROM orders")
    assert [r["qty"] for r in rows] == [Decimal("0.030")]


async def test_a_rejected_plan_makes_no_exchange_call(env: Env) -> None:
    signal = await new_signal(env, amount="1")  # below the 5 USDT minimum notional
    outcome = await env.processor().process(signal, "t-min")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.code in (RejectCode.BELOW_MIN_QTY, RejectCode.BELOW_MIN_NOTIONAL)
    assert await env.sim_orders() == []
    assert await env.fetch("SELECT 1 FROM audit_log") == []
    assert await env.fetch("SELECT 1 FROM orders") == []


async def test_account_from_the_trackers_store_reduces_a_tracked_long(env: Env) -> None:
    """`account_source=store`: balances/positions from the tracker's store, not REST."""
    config = ProcessorConfig(account_source=AccountSource.STORE)
    processor = Processor(env.uow, env.gateway, config)
    buy = await new_signal(env, amount="1000")
    assert isinstance(await processor.process(buy, "t-store-buy"), SignalExecuted)
    tracker = Tracker(env.uow, link_prefix="om")
    await _track_fills_and_wallet(env, tracker)

    sell = await new_signal(env, side="sell", amount="5000")
    reads_before = _reads(env)
    outcome = await processor.process(sell, "t-store-sell")

    assert isinstance(outcome, SignalExecuted), outcome
    assert await _sells(env) == [(True, Decimal("0.015"))]
    # the long came from the store: no position or wallet request reached the exchange
    assert _reads(env) == reads_before


async def test_a_lane_waits_for_the_tracker_to_apply_our_fill_instead_of_asking_rest(
    env: Env,
) -> None:
    """`store` with a `StoreFreshness`: the sell finds our market buy acknowledged but its fill
    not applied, waits for the tracker's commit, then plans from the store — the long it
    reduces came from the store, no position or wallet request reached the exchange."""
    waiting = await _sell_waiting_for_the_tracker(env, "t-wait")
    assert await _sells(env) == []  # nothing planned from the store that lacks the fill
    outcome = await waiting.tracker_applies_the_fill()

    assert isinstance(outcome, SignalExecuted), outcome
    assert await _sells(env) == [(True, Decimal("0.015"))]
    assert _reads(env) == waiting.reads_before


async def test_a_store_distrusted_while_a_lane_waits_sends_it_to_the_exchange(env: Env) -> None:
    """The stream drops while the sell waits for our buy's fill: the tracker's next commit
    wakes the lane, which now asks the exchange (events may be missing from the store)."""
    waiting = await _sell_waiting_for_the_tracker(env, "t-drop")
    waiting.freshness.distrust("stream_down")
    outcome = await waiting.tracker_applies_the_fill()

    assert isinstance(outcome, SignalExecuted), outcome
    assert await _sells(env) == [(True, Decimal("0.015"))]
    assert _asked_the_exchange(env, waiting.reads_before)


@dataclasses.dataclass
class _WaitingSell:
    freshness: StoreFreshness
    tracker: Tracker
    #: what the private stream will bring: our buy's executions and the wallet after it
    stream: list[tuple[str, list[dict[str, Any]]]]
    selling: asyncio.Task[SignalOutcome]
    reads_before: tuple[float, float]

    async def tracker_applies_the_fill(self) -> SignalOutcome:
        for topic, items in self.stream:
            await self.tracker.handle(topic, items)
        return await asyncio.wait_for(self.selling, 10)


async def _sell_waiting_for_the_tracker(env: Env, trace: str) -> _WaitingSell:
    """`store` processor: a market buy acknowledged, its fill not yet applied by the tracker,
    and a sell of the symbol that is waiting for the tracker's next commit."""
    freshness = StoreFreshness()
    processor = _store_processor(env, freshness, 30)
    tracker = Tracker(env.uow, link_prefix="om", on_commit=freshness.committed)
    await _track_wallet(env, tracker)
    buy = await new_signal(env, amount="1000")
    assert isinstance(await processor.process(buy, f"{trace}-buy"), SignalExecuted)
    stream = await _fills_and_wallet(env)  # read before counting the processor's reads

    sell = await new_signal(env, side="sell", amount="5000")
    reads_before = _reads(env)
    selling = asyncio.create_task(processor.process(sell, f"{trace}-sell"))
    await eventually(lambda: freshness.waiting == 1, what="the sell waits for the tracker")
    return _WaitingSell(freshness, tracker, stream, selling, reads_before)


@pytest.mark.parametrize("with_freshness", [False, True])
async def test_a_store_behind_our_own_fills_is_not_trusted(env: Env, with_freshness: bool) -> None:
    """`account_source=store` while our market buy has no final event yet (and, here, never
    gets one within the wait): the store knows no long, so the exchange is asked and the sell
    still only reduces."""
    processor = _store_processor(env, StoreFreshness() if with_freshness else None, 0.05)
    buy = await new_signal(env, amount="1000")
    assert isinstance(await processor.process(buy, "t-behind-buy"), SignalExecuted)
    sell = await new_signal(env, side="sell", amount="5000")
    reads_before = _reads(env)
    outcome = await processor.process(sell, "t-behind-sell")

    assert isinstance(outcome, SignalExecuted), outcome
    assert await _sells(env) == [(True, Decimal("0.015"))]
    assert _asked_the_exchange(env, reads_before)


async def test_an_untrusted_store_is_not_read(env: Env) -> None:
    """The store holds our long, but the private stream may have missed events (dropped,
    reconciling): the exchange is asked, as with `account_source=exchange`."""
    processor = _store_processor(env, StoreFreshness(untrusted=("stream",)), 30)
    buy = await new_signal(env, amount="1000")
    assert isinstance(await processor.process(buy, "t-untrusted-buy"), SignalExecuted)
    await _track_fills_and_wallet(env, Tracker(env.uow, link_prefix="om"))

    sell = await new_signal(env, side="sell", amount="5000")
    reads_before = _reads(env)
    outcome = await processor.process(sell, "t-untrusted-sell")

    assert isinstance(outcome, SignalExecuted), outcome
    assert await _sells(env) == [(True, Decimal("0.015"))]
    assert _asked_the_exchange(env, reads_before)


def _store_processor(env: Env, freshness: StoreFreshness | None, store_wait: float) -> Processor:
    config = ProcessorConfig(account_source=AccountSource.STORE, store_wait=store_wait)
    return Processor(env.uow, env.gateway, config, freshness=freshness)


def _asked_the_exchange(env: Env, reads_before: tuple[float, float]) -> bool:
    """Both the position list and the wallet were read from REST since `reads_before`."""
    return all(after > before for after, before in zip(_reads(env), reads_before, strict=True))


async def _track_wallet(env: Env, tracker: Tracker) -> None:
    wallet = await env.rest.call("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
    await tracker.handle("wallet", wallet["list"])


async def _fills_and_wallet(env: Env) -> list[tuple[str, list[dict[str, Any]]]]:
    """What the private stream would tell the tracker about our fills: executions and the
    wallet (read here from REST)."""
    fills = await env.rest.get_executions("linear", symbol="BTCUSDT")
    items = [
        {"category": "linear", **f.model_dump(by_alias=True, mode="json", exclude_none=True)}
        for f in fills
    ]
    for item in items:
        item["execTime"] = str(int(fills[0].exec_time.timestamp() * 1000))  # type: ignore[union-attr]
    wallet = await env.rest.call("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
    return [("execution", items), ("wallet", wallet["list"])]


async def _track_fills_and_wallet(env: Env, tracker: Tracker) -> None:
    for topic, items in await _fills_and_wallet(env):
        await tracker.handle(topic, items)


async def _sells(env: Env) -> list[tuple[bool, Decimal]]:
    """(reduceOnly, qty) of every sell order on the simulator."""
    return [
        (o["reduceOnly"], Decimal(o["qty"])) for o in await env.sim_orders() if o["side"] == "Sell"
    ]


def _reads(env: Env) -> tuple[float, float]:
    counter = env.rest.metrics.requests
    return tuple(
        counter.labels(method="GET", endpoint=path, outcome="ok")._value.get()
        for path in ("/v5/position/list", "/v5/account/wallet-balance")
    )


async def test_an_amend_whose_order_filled_meanwhile_becomes_a_new_order(env: Env) -> None:
    processor = env.processor()
    first = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    one = await processor.process(first, "t-f1")
    assert isinstance(one, SignalExecuted), one
    # the resting order fills on the exchange; our row has not heard of it yet (no tracker)
    await env.admin_post("/sim/fill", {"orderId": one.order_ids[0]})

    second = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    two = await processor.process(second, "t-f2")

    assert isinstance(two, SignalExecuted), two
    assert two.order_link_ids != one.order_link_ids
    assert one.order_link_ids[0] in two.partial_failures  # the refused amend
    orders = {o["orderLinkId"]: o for o in await env.sim_orders()}
    assert orders[one.order_link_ids[0]]["orderStatus"] == "Filled"
    fresh = orders[two.order_link_ids[0]]
    assert fresh["orderStatus"] == "New"
    assert Decimal(fresh["qty"]) == Decimal("0.015")
    links = await env.fetch(
        "SELECT o.order_link_id, l.relation FROM signal_order_links l "
        "JOIN orders o ON o.id = l.order_uuid WHERE l.signal_id = $1::uuid",
        second.signal_id,
    )
    assert [(r["order_link_id"], r["relation"]) for r in links] == [
        (two.order_link_ids[0], "create")
    ]
    audit = await env.fetch("SELECT action, ret_code FROM audit_log ORDER BY id")
    # the refused amend, the lookup that proved it had not landed (the order is filled at its
    # old quantity), then the signal's own order
    assert [(a["action"], a["ret_code"]) for a in audit][-3:] == [
        ("order.amend", 110001),
        ("order.get", 0),
        ("order.create", 0),
    ]


async def test_the_daily_volume_limit_counts_todays_opening_orders(env: Env) -> None:
    """Limit 1500 USDT: a 1000 USDT buy goes through (its planned notional is stored with the
    intent), the next 1000 USDT buy would make ~2000 today and is refused before any call."""
    limits = RiskLimits(max_daily_volume=Decimal("1500"))
    first = await env.processor(limits=limits).process(await new_signal(env, amount="1000"), "d1")
    assert isinstance(first, SignalExecuted), first
    [row] = await env.fetch("SELECT qty, notional FROM orders")
    assert Decimal("900") < row["notional"] <= Decimal("1000")  # 0.015 x ~65000
    assert row["notional"] == row["qty"] * Decimal("65000.10")  # qty x the ask it priced at

    second = await env.processor(limits=limits).process(await new_signal(env, amount="1000"), "d2")
    assert isinstance(second, SignalRejected), second
    assert second.code is RejectCode.MAX_DAILY_VOLUME
    assert len(await env.sim_orders()) == 1

    # without the limit the same signal is placed: the refusal was the limit's
    third = await env.processor().process(await new_signal(env, amount="1000"), "d3")
    assert isinstance(third, SignalExecuted), third


async def test_daily_volume_counts_what_finished_orders_traded(env: Env) -> None:
    """Finished orders count the share that traded, active ones whole; refused, reduce-only,
    external and yesterday's orders not at all."""
    from datetime import UTC, datetime, timedelta

    from order_manager.services.processor import trading_day_start

    now = datetime.now(UTC)
    today = trading_day_start(now)
    rows = [  # (status, qty, cum_exec_qty, notional, reduce_only, external, created_at)
        ("pending", "1", "0", "100", False, False, now),  # active: 100
        ("cancelled", "2", "0.5", "200", False, False, now),  # 25 % traded: 50
        ("filled", "1", "1", "300", False, False, now),  # 300
        ("rejected", "1", "0", "400", False, False, now),
        ("filled", "1", "1", "500", True, False, now),  # reduce-only
        ("filled", "1", "1", "600", False, True, now),  # external
        ("filled", "1", "1", "700", False, False, today - timedelta(seconds=1)),  # yesterday
    ]
    for i, (status, qty, cum, notional, reduce_only, external, created) in enumerate(rows):
        await env.pool.execute(
            "INSERT INTO orders (order_link_id, category, symbol, side, order_type, qty, status,"
            " cum_exec_qty, notional, reduce_only, is_external, created_at)"
            " VALUES ($1, 'linear', 'BTCUSDT', 'Buy', 'Limit', $2, $3, $4, $5, $6, $7, $8)",
            f"dv-{i}",
            Decimal(qty),
            status,
            Decimal(cum),
            Decimal(notional),
            reduce_only,
            external,
            created,
        )
    async with env.uow() as uow:
        assert await uow.orders.daily_volume(today, is_dry_run=False) == Decimal("450")
        assert await uow.orders.daily_volume(today, is_dry_run=True) == Decimal("0")


async def test_an_amend_adds_to_the_daily_volume(env: Env) -> None:
    """Limit 2500 USDT: a ~975 USDT resting limit, a second limit signal amends it (now ~1950
    today), a third would make ~2925 and is refused — the amend's added notional counted."""
    limits = RiskLimits(max_daily_volume=Decimal("2500"))
    processor = env.processor(limits=limits)
    outcomes = []
    for i in range(3):
        signal = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
        outcomes.append(await processor.process(signal, f"t-amend-{i}"))
    first, second, third = outcomes
    assert isinstance(first, SignalExecuted) and isinstance(second, SignalExecuted)
    assert second.order_link_ids == first.order_link_ids  # amended, not a new order
    assert isinstance(third, SignalRejected), third
    assert third.code is RejectCode.MAX_DAILY_VOLUME
    [row] = await env.fetch("SELECT qty, price, notional FROM orders")
    assert row["qty"] == Decimal("0.030")
    assert row["notional"] == row["qty"] * row["price"]


async def test_orders_per_minute_count_opening_orders_only(env: Env) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    for i, reduce_only in enumerate((False, True, True)):
        await env.pool.execute(
            "INSERT INTO orders (order_link_id, category, symbol, side, order_type, qty, status,"
            " reduce_only, created_at) VALUES ($1, 'linear', 'BTCUSDT', 'Sell', 'Market', 1,"
            " 'filled', $2, $3)",
            f"opm-{i}",
            reduce_only,
            now,
        )
    async with env.uow() as uow:
        times = await uow.orders.recent_order_times(
            Category.LINEAR, "BTCUSDT", now - timedelta(seconds=60), is_dry_run=False
        )
    assert len(times) == 1


async def test_a_flip_sends_the_closing_leg_before_the_opening_one(env: Env) -> None:
    """allow_position_flip: a sell larger than the long closes it (reduce-only) and opens a
    short. The closing leg is answered before the opening leg is sent, so the exchange sees
    them in that order and the short is exactly the rest."""
    processor = env.processor(planner=PlannerConfig(allow_position_flip=True))
    buy = await new_signal(env, amount="1000")
    assert isinstance(await processor.process(buy, "t-buy"), SignalExecuted)
    sell = await new_signal(env, side="sell", amount="3000")
    outcome = await processor.process(sell, "t-flip")

    assert isinstance(outcome, SignalExecuted), outcome
    sells = [o for o in await env.sim_orders() if o["side"] == "Sell"]
    assert [o["reduceOnly"] for o in sorted(sells, key=lambda o: int(o["createdTime"]))] == [
        True,
        False,
    ]
    audit = await env.fetch(
        "SELECT request FROM audit_log WHERE action = 'order.create' AND trace_id = 't-flip'"
        " ORDER BY id"
    )
    assert [bool(a["request"].get("reduceOnly")) for a in audit] == [True, False]
    positions = (await env.state())["positions"]
    btc = next(p for p in positions if p["symbol"] == "BTCUSDT" and p["category"] == "linear")
    opening = next(o for o in sells if not o["reduceOnly"])
    assert btc["side"] == "Sell" and Decimal(btc["size"]) == Decimal(opening["qty"])


async def test_total_exposure_counts_positions_in_other_symbols(env: Env) -> None:
    """Limit 1500 USDT of total exposure: a ~975 USDT long in ETHUSDT leaves room for less than
    a 1000 USDT BTCUSDT buy — the BTC signal is refused because of the ETH position."""
    limits = RiskLimits(max_total_exposure=Decimal("1500"), max_order_size_ratio=None)
    processor = env.processor(limits=limits)
    eth = await new_signal(env, amount="1000", asset="ETHUSDT")
    assert isinstance(await processor.process(eth, "t-eth"), SignalExecuted)

    btc = await new_signal(env, amount="1000", asset="BTCUSDT")
    outcome = await processor.process(btc, "t-btc")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.code is RejectCode.MAX_TOTAL_EXPOSURE
    assert [o["symbol"] for o in await env.sim_orders()] == ["ETHUSDT"]
    # a 400 USDT BTC buy still fits next to the ETH position (~975 + ~400 <= 1500)
    small = await processor.process(await new_signal(env, amount="400"), "t-small")
    assert isinstance(small, SignalExecuted), small


async def test_an_external_resting_order_is_never_amended_or_cancelled(env: Env) -> None:
    """A resting limit the tracker adopted as external (placed by someone else) is not ours:
    a same-side limit signal places its own order instead of amending it, and an opposite
    signal cancels only our order, leaving the external one on the book."""
    processor = env.processor()
    first = await processor.process(
        await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-ext"
    )
    assert isinstance(first, SignalExecuted), first
    [external_link] = first.order_link_ids
    await env.pool.execute(
        "UPDATE orders SET is_external = true, signal_id = NULL WHERE order_link_id = $1",
        external_link,
    )

    ours = await processor.process(
        await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-ours"
    )
    assert isinstance(ours, SignalExecuted), ours
    assert ours.order_link_ids != first.order_link_ids  # a new order, no amend
    opposite = await processor.process(
        await new_signal(env, side="sell", amount="500", metadata={"order_type": "limit"}),
        "t-opposite",
    )
    assert isinstance(opposite, SignalExecuted), opposite

    by_link = {o["orderLinkId"]: o for o in await env.sim_orders()}
    assert by_link[external_link]["orderStatus"] == "New"
    assert Decimal(by_link[external_link]["qty"]) == Decimal("0.015")  # never amended
    assert by_link[ours.order_link_ids[0]]["orderStatus"] == "Cancelled"


async def test_an_amend_whose_answer_is_lost_is_recorded_not_replaced(env: Env) -> None:
    """The exchange applies the amend but its answer never arrives (and, one attempt only,
    the client cannot retry). The order is looked up by orderLinkId: it is at the target
    quantity, so the amend landed — recorded with its `modified` event, and no replacement
    order doubles the signal's quantity."""
    first = await env.processor().process(
        await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-a1"
    )
    assert isinstance(first, SignalExecuted), first
    await env.admin_post(
        "/sim/faults",
        {
            "target": "rest",
            "endpoint": "/v5/order/amend",
            "kind": "timeout_after_execute",
            "count": 1,
        },
    )
    async with one_attempt_processor(env) as processor:
        second = await processor.process(
            await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-a2"
        )

    assert isinstance(second, SignalExecuted), second
    assert second.order_link_ids == first.order_link_ids
    orders = await env.sim_orders()
    assert len(orders) == 1  # no replacement order
    assert Decimal(orders[0]["qty"]) == Decimal("0.030")
    events = await env.fetch("SELECT event_type FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "modified"]
    actions = await env.fetch("SELECT action FROM audit_log WHERE trace_id = 't-a2' ORDER BY id")
    assert [a["action"] for a in actions] == ["order.amend", "order.get"]


async def test_a_failed_amend_whose_order_cannot_be_looked_up_is_neither_replaced_nor_final(
    env: Env,
) -> None:
    """The amend fails (503) and so does the lookup that would tell whether it landed: nothing
    is replaced (that could double the quantity) and the signal fails retryable instead of
    being recorded as refused."""
    first = await env.processor().process(
        await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-u1"
    )
    assert isinstance(first, SignalExecuted), first
    await env.fail_next("/v5/order/amend")
    await env.fail_next_lookups()
    async with one_attempt_processor(env) as processor:
        second = await processor.process(
            await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-u2"
        )

    assert isinstance(second, SignalFailed), second
    assert second.retryable and second.code == "exchange_outcome_unknown"
    orders = await env.sim_orders()
    assert len(orders) == 1 and Decimal(orders[0]["qty"]) == Decimal("0.015")


async def test_with_the_balance_checks_off_no_wallet_is_read(env: Env) -> None:
    """Balance check and order-size ratio both off: no wallet call per signal (the spec's
    "disabling the balance check reduces API calls"); with the check on, one per signal."""
    registry = CollectorRegistry()
    async with BybitRestClient(client_config(env.sim_url), metrics=metrics_for(registry)) as rest:
        cache = InstrumentCache(rest, ["linear"])
        await cache.refresh()
        gateway = BybitGateway(rest, cache)

        def wallet_reads() -> float:
            labels = {"method": "GET", "endpoint": "/v5/account/wallet-balance", "outcome": "ok"}
            return registry.get_sample_value("bybit_requests_total", labels) or 0.0

        off = RiskLimits(enable_balance_check=False, max_order_size_ratio=None)
        unchecked = Processor(env.uow, gateway, ProcessorConfig(limits=off))
        assert isinstance(
            await unchecked.process(await new_signal(env, amount="1000"), "t-off"),
            SignalExecuted,
        )
        assert wallet_reads() == 0
        checked = Processor(env.uow, gateway, ProcessorConfig())
        assert isinstance(
            await checked.process(await new_signal(env, amount="1000", asset="ETHUSDT"), "t-on"),
            SignalExecuted,
        )
        assert wallet_reads() == 1


async def _convert_case(
    env: Env, *, fill_the_limit_first: bool
) -> tuple[SignalOutcome, list[dict[str, Any]]]:
    from order_manager.domain.planner import PendingLimitPolicy

    planner = PlannerConfig(pending_limits_on_market=PendingLimitPolicy.CONVERT)
    processor = env.processor(planner=planner)
    limit = await processor.process(
        await new_signal(env, amount="1000", metadata={"order_type": "limit"}), "t-limit"
    )
    assert isinstance(limit, SignalExecuted), limit
    if fill_the_limit_first:  # on the exchange only: our row still says pending (no tracker)
        await env.admin_post("/sim/fill", {"orderId": limit.order_ids[0]})
    outcome = await processor.process(
        await new_signal(env, amount="1000", metadata={"order_type": "market"}), "t-market"
    )
    markets = [o for o in await env.sim_orders() if o["orderType"] == "Market"]
    return outcome, markets


async def test_convert_adds_a_cancelled_limits_quantity_to_the_market_order(env: Env) -> None:
    outcome, markets = await _convert_case(env, fill_the_limit_first=False)
    assert isinstance(outcome, SignalExecuted), outcome
    assert [Decimal(o["qty"]) for o in markets] == [Decimal("0.030")]  # 0.015 own + 0.015
    statuses = {o["orderType"]: o["orderStatus"] for o in await env.sim_orders()}
    assert statuses["Limit"] == "Cancelled"


async def test_convert_never_trades_a_limit_that_filled_before_its_cancel(env: Env) -> None:
    """The resting limit filled on the exchange before the market signal's cancel reached it
    ("not found"): its quantity was already traded, so the market order carries only the
    signal's own 0.015 — not 0.030."""
    outcome, markets = await _convert_case(env, fill_the_limit_first=True)
    assert isinstance(outcome, SignalExecuted), outcome
    assert [Decimal(o["qty"]) for o in markets] == [Decimal("0.015")]
    assert any("not added" in note for note in outcome.notes)


async def test_the_all_positions_read_still_learns_a_flat_symbols_leverage(env: Env) -> None:
    """Total exposure reads every USDT position in one call; a flat symbol may be missing from
    such a list, and its leverage must still be learnt (margin = notional / leverage), not
    assumed to be 1."""
    async with BybitRestClient(
        client_config(env.sim_url), metrics=metrics_for(CollectorRegistry())
    ) as rest:
        cache = InstrumentCache(rest, ["linear"])
        await cache.refresh()
        gateway = BybitGateway(rest, cache)
        listed = await rest.get_positions("linear", settle_coin="USDT")
        flat = await gateway.positions(
            Category.LINEAR, "BTCUSDT", trace_id="t-lev", include_others=True
        )
        assert all(p.size == 0 for p in flat)
        [row] = await rest.get_positions("linear", symbol="BTCUSDT")
        assert row.leverage and row.leverage > 1
        assert await gateway.leverage(Category.LINEAR, "BTCUSDT") == row.leverage
        # (whether or not the settleCoin list held the flat BTCUSDT row)
        assert all(p.symbol for p in listed)


class TrackerFirstGateway(BybitGateway):
    """The real gateway, except that the exchange's own account of each new order reaches the
    tracker before the create's answer reaches the executor — the race the private stream
    often wins on a live account."""

    def __init__(self, env: Env, tracker: Tracker) -> None:
        super().__init__(env.rest, env.gateway.instruments)
        self._tracker = tracker
        self._queries = BybitReconcileQueries(env.rest)

    async def place(self, action: Place, *, trace_id: str) -> GatewayReport:
        report = await super().place(action, trace_id=trace_id)
        category = action.category.value
        order = await self._queries.fetch_order(
            category, order_id=None, order_link_id=action.order_link_id
        )
        assert order is not None
        await self._tracker.handle("order", [{"category": category, **order}])
        return report


async def test_an_answer_after_the_tracker_applied_the_order_adds_nothing_but_its_audit(
    env: Env,
) -> None:
    """The executor's one-statement answer finds the row moved on (the tracker stored the
    exchange's order first, with its own events): no second `created`, no lost fill, the
    call audited once, the order's event sequence gapless."""
    tracker = Tracker(env.uow, link_prefix="om")
    processor = Processor(env.uow, TrackerFirstGateway(env, tracker), ProcessorConfig())
    outcome = await processor.process(await new_signal(env, amount="1000"), "t-race")
    assert isinstance(outcome, SignalExecuted), outcome

    (row,) = await env.fetch("SELECT * FROM orders")
    assert row["order_id"] == outcome.order_ids[0]
    assert (row["status"], row["cum_exec_qty"]) == ("filled", Decimal("0.015"))
    audit = await env.fetch("SELECT ret_code FROM audit_log WHERE action = 'order.create'")
    assert [a["ret_code"] for a in audit] == [0]
    events = await env.fetch(
        "SELECT event_type, sequence FROM outbox WHERE aggregate_id = $1 ORDER BY id",
        str(row["id"]),
    )
    assert [e["event_type"] for e in events] == ["created", "filled"]
    assert [e["sequence"] for e in events] == [1, 2]


async def test_convert_adds_only_what_a_partly_filled_limit_left_untraded(env: Env) -> None:
    """The limit traded 0.005 of its 0.015 on the exchange after the market signal planned
    (our row still says 0.015 unfilled): the cancel succeeds, but only the 0.010 that never
    traded may be converted — the market order is 0.015 + 0.010, not 0.030."""
    from order_manager.domain.planner import PendingLimitPolicy

    planner = PlannerConfig(pending_limits_on_market=PendingLimitPolicy.CONVERT)
    processor = env.processor(planner=planner)
    limit = await processor.process(await new_signal(env, metadata={"order_type": "limit"}), "t-l")
    assert isinstance(limit, SignalExecuted), limit
    await env.admin_post("/sim/fill", {"orderId": limit.order_ids[0], "qty": "0.005"})
    outcome = await processor.process(
        await new_signal(env, metadata={"order_type": "market"}), "t-market"
    )

    assert isinstance(outcome, SignalExecuted), outcome
    markets = [o for o in await env.sim_orders() if o["orderType"] == "Market"]
    assert [Decimal(o["qty"]) for o in markets] == [Decimal("0.025")]
    assert any("0.005 not added" in note for note in outcome.notes), outcome.notes


async def test_the_store_counts_another_symbols_taker_the_tracker_has_not_applied(
    env: Env,
) -> None:
    """`store`: our 1 000 USDT BTC market buy is acknowledged, its fill not applied by the
    tracker yet — so it is in no book of the store. An ETH buy right after must still count
    it against the total exposure (1 500): its row is counted at the notional it was planned
    at, until the tracker's transaction that fills the row also puts it in the book."""
    limits = RiskLimits(max_total_exposure=Decimal("1500"))
    config = ProcessorConfig(limits=limits, account_source=AccountSource.STORE)
    processor = Processor(env.uow, env.gateway, config, freshness=StoreFreshness())
    await _track_wallet(env, Tracker(env.uow, link_prefix="om"))
    btc = await new_signal(env, amount="1000")
    assert isinstance(await processor.process(btc, "t-store-btc"), SignalExecuted)

    eth = await new_signal(env, asset="ETHUSDT", amount="1000")
    outcome = await processor.process(eth, "t-store-eth")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.rejection.code is RejectCode.MAX_TOTAL_EXPOSURE
    assert [o["symbol"] for o in await env.sim_orders()] == ["BTCUSDT"]
