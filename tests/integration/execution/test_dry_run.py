"""Dry-run: the same pipeline against the in-process paper exchange, priced from the live book.

Paper rows and events are flagged is_dry_run; the live exchange (the simulator) is never called
for orders, and paper and live orders never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from order_manager.adapters.paper.exchange import PaperExchange
from order_manager.adapters.paper.feed import PaperFeedSource
from order_manager.bootstrap import restore_paper
from order_manager.domain.enums import Category
from order_manager.domain.planner import PlannerConfig
from order_manager.domain.rejections import RejectCode
from order_manager.domain.risk import RiskLimits
from order_manager.services.ports.processing import SignalExecuted, SignalRejected
from order_manager.services.processor import Processor, ProcessorConfig
from order_manager.services.tracker import Tracker, run_tracker
from tests.helpers import eventually

from .conftest import Env, drain_into, new_signal


def paper_processor(env: Env, paper: PaperExchange, **config: object) -> Processor:
    return Processor(env.uow, paper, ProcessorConfig(**config))  # type: ignore[arg-type]


async def test_a_dry_run_buy_fills_on_paper_and_never_reaches_the_exchange(env: Env) -> None:
    paper = PaperExchange(env.gateway, levels=env.gateway)
    signal = await new_signal(env, amount="1000")
    outcome = await paper_processor(env, paper).process(signal, "t-paper")

    assert isinstance(outcome, SignalExecuted), outcome
    assert outcome.is_dry_run
    assert await env.sim_orders() == []
    rows = await env.fetch("SELECT status, qty, is_dry_run, avg_price FROM orders")
    assert len(rows) == 1
    assert rows[0]["is_dry_run"] is True
    assert rows[0]["status"] == "filled"
    assert rows[0]["qty"] == Decimal("0.015")
    assert rows[0]["avg_price"] == Decimal("65000.10")  # the live ask, first level covers it
    events = await env.fetch("SELECT event_type, is_dry_run, payload FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "filled"]
    assert all(e["is_dry_run"] for e in events)
    assert events[1]["payload"]["order"]["is_dry_run"] is True
    audit = await env.fetch("SELECT is_dry_run FROM audit_log")
    assert [a["is_dry_run"] for a in audit] == [True]
    positions = await paper.positions(Category.LINEAR, "BTCUSDT", trace_id="t")
    assert [p.size for p in positions] == [Decimal("0.015")]


async def test_a_large_paper_market_order_walks_the_book(env: Env) -> None:
    paper = PaperExchange(env.gateway, levels=env.gateway)
    signal = await new_signal(env, amount="60000")  # 0.923 BTC: more than the 0.5 at the touch
    limits = RiskLimits(
        max_order_notional=None, max_order_size_ratio=None, max_position_notional=None
    )
    planner = PlannerConfig(max_order_notional=None, max_book_depth_share=None)
    outcome = await paper_processor(env, paper, planner=planner, limits=limits).process(
        signal, "t-walk"
    )
    assert isinstance(outcome, SignalExecuted), outcome
    rows = await env.fetch("SELECT status, cum_exec_qty, avg_price FROM orders")
    assert rows[0]["status"] == "filled"
    assert rows[0]["cum_exec_qty"] == Decimal("0.923")
    # 0.5 @ 65000.10 + 0.423 @ 65000.20: the average lies strictly between the two levels
    assert Decimal("65000.10") < rows[0]["avg_price"] < Decimal("65000.20")


async def test_paper_and_live_orders_never_mix(env: Env) -> None:
    live = env.processor()
    resting = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    assert isinstance(await live.process(resting, "t-live"), SignalExecuted)

    paper = PaperExchange(env.gateway, levels=env.gateway)
    same_side = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    outcome = await paper_processor(env, paper).process(same_side, "t-paper")

    assert isinstance(outcome, SignalExecuted), outcome
    # the paper signal did not amend the live resting order: it placed its own paper order
    sim = await env.sim_orders()
    assert len(sim) == 1
    assert Decimal(sim[0]["qty"]) == Decimal("0.015")
    rows = await env.fetch("SELECT is_dry_run, qty, status FROM orders ORDER BY is_dry_run")
    assert [(r["is_dry_run"], r["qty"], r["status"]) for r in rows] == [
        (False, Decimal("0.015"), "pending"),
        (True, Decimal("0.015"), "pending"),
    ]


async def test_a_resting_paper_limit_fills_when_the_live_market_crosses_it(env: Env) -> None:
    paper = PaperExchange(env.gateway, levels=env.gateway)
    signal = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    outcome = await paper_processor(env, paper).process(signal, "t-rest")
    assert isinstance(outcome, SignalExecuted), outcome
    order = paper.orders[outcome.order_link_ids[0]]
    assert order.status.value == "New"
    assert order.price is not None

    await env.admin_post(
        "/sim/price", {"category": "linear", "symbol": "BTCUSDT", "price": "64000"}
    )
    await paper.market(Category.LINEAR, "BTCUSDT")

    assert order.status.value == "Filled"
    assert order.cum_value == order.qty * order.price  # maker fill at its own price
    items = []
    while not paper.updates.empty():
        items.append(paper.updates.get_nowait())
    executions = [i["data"] for i in items if i["topic"] == "execution"]
    assert [e["isMaker"] for e in executions] == [True]
    assert executions[0]["orderLinkId"] == order.link


async def test_paper_refuses_what_the_balance_cannot_carry_with_110007(env: Env) -> None:
    paper = PaperExchange(env.gateway, levels=env.gateway, balances={"USDT": Decimal("50")})
    signal = await new_signal(env, amount="1000")
    limits = RiskLimits(enable_balance_check=False, max_order_size_ratio=None)
    outcome = await paper_processor(env, paper, limits=limits).process(signal, "t-poor")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.code is RejectCode.EXCHANGE_REJECTED
    assert outcome.details["ret_code"] == "110007"
    rows = await env.fetch("SELECT status, is_dry_run FROM orders")
    assert [(r["status"], r["is_dry_run"]) for r in rows] == [("rejected", True)]


async def test_a_paper_position_under_water_raises_the_loss_warning(env: Env) -> None:
    """Dry-run gets the loss monitor too: paper fills and mark moves are pushed as Bybit-shaped
    `position` items, which the tracker applies like the private stream's."""
    paper = PaperExchange(env.gateway, levels=env.gateway)
    tracker = Tracker(
        env.uow, link_prefix="om", is_dry_run=True, loss_warning_ratio=Decimal("0.05")
    )

    async def apply_paper_feed() -> None:
        batch = []
        while not paper.updates.empty():
            item = paper.updates.get_nowait()
            batch.append((item["topic"], [item["data"]], None))
        await tracker.handle_many(batch)

    outcome = await paper_processor(env, paper).process(await new_signal(env, amount="1000"), "t")
    assert isinstance(outcome, SignalExecuted), outcome
    await apply_paper_feed()
    (row,) = await env.fetch("SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert row["is_dry_run"] is True
    assert row["mark_price"] == Decimal("65000.10")  # marked at its fill
    assert row["leverage"] == Decimal(10)

    # the live price falls ~7.7 %: the next read re-marks the paper long, which is now > 5 %
    # under water
    await env.admin_post(
        "/sim/price", {"category": "linear", "symbol": "BTCUSDT", "price": "60000"}
    )
    await paper.market(Category.LINEAR, "BTCUSDT")
    await apply_paper_feed()
    warnings = await env.fetch(
        "SELECT is_dry_run, payload FROM outbox WHERE payload->>'source' = 'loss_warning'"
    )
    assert len(warnings) == 1
    assert warnings[0]["is_dry_run"] is True
    assert warnings[0]["payload"]["position"]["size"] == "0.015"  # nothing was closed
    (row,) = await env.fetch("SELECT * FROM positions WHERE symbol = 'BTCUSDT'")
    assert Decimal(59000) < row["mark_price"] < Decimal(61000)


async def test_a_paper_convert_adds_what_the_cancelled_paper_limit_left_untraded(
    env: Env,
) -> None:
    """`convert` on paper: the resting paper limit is cancelled and looked up on the paper
    exchange like on the live one; its whole untraded 0.015 joins the market order."""
    from order_manager.domain.planner import PendingLimitPolicy

    paper = PaperExchange(env.gateway, levels=env.gateway)
    planner = PlannerConfig(pending_limits_on_market=PendingLimitPolicy.CONVERT)
    processor = paper_processor(env, paper, planner=planner)
    limit = await processor.process(
        await new_signal(env, metadata={"order_type": "limit"}), "t-paper-limit"
    )
    assert isinstance(limit, SignalExecuted), limit
    market = await processor.process(
        await new_signal(env, metadata={"order_type": "market"}), "t-paper-market"
    )

    assert isinstance(market, SignalExecuted), market
    rows = await env.fetch("SELECT order_type, status, qty FROM orders ORDER BY created_at")
    assert [(r["order_type"], r["status"], r["qty"]) for r in rows] == [
        ("Limit", "cancelled", Decimal("0.015")),
        ("Market", "filled", Decimal("0.030")),
    ]
    actions = await env.fetch(
        "SELECT action FROM audit_log WHERE trace_id = 't-paper-market' ORDER BY id"
    )
    assert [a["action"] for a in actions] == ["order.cancel", "order.get", "order.create"]
    assert await env.sim_orders() == []


async def test_a_restarted_paper_exchange_never_reuses_an_execution_id(env: Env) -> None:
    """Each service start builds a new paper exchange. Its fills must not take the execution
    ids of an earlier run's: ``executions.exec_id`` is unique, and the tracker drops a fill
    whose id it has (a duplicate) — the second run's paper fill would be lost to the books."""
    tracker = Tracker(env.uow, link_prefix="om", is_dry_run=True)
    for run in ("first", "after a restart"):
        paper = PaperExchange(env.gateway, levels=env.gateway)
        signal = await new_signal(env, amount="1000")
        outcome = await paper_processor(env, paper).process(signal, f"t-{run}")
        assert isinstance(outcome, SignalExecuted), (run, outcome)
        await drain_into(tracker, paper)

    fills = await env.fetch("SELECT order_uuid, exec_qty FROM executions WHERE is_dry_run")
    assert len(fills) == 2 and len({f["order_uuid"] for f in fills}) == 2
    (book,) = await env.fetch("SELECT size FROM positions WHERE is_dry_run")
    assert book["size"] == Decimal("0.030")  # both runs' buys


async def test_a_restarted_dry_run_takes_up_its_paper_account_where_it_stopped(env: Env) -> None:
    """The paper account lives in the process; a restart (a new paper exchange) rebuilds it
    from the database as the service does at start: the same books and wallet, the resting
    paper limit resting again — it fills when the market crosses it — and a sell reduces the
    long the first run bought instead of finding no position."""
    tracker = Tracker(env.uow, link_prefix="om", is_dry_run=True)
    before = PaperExchange(env.gateway, levels=env.gateway)
    bought = await paper_processor(env, before).process(await new_signal(env, amount="1000"), "t")
    limit = await new_signal(env, amount="1000", metadata={"order_type": "limit"})
    rests = await paper_processor(env, before).process(limit, "t-rest")
    assert isinstance(bought, SignalExecuted) and isinstance(rests, SignalExecuted)
    await drain_into(tracker, before)

    after = PaperExchange(env.gateway, levels=env.gateway)
    await restore_paper(after, env.uow)

    def account(paper: PaperExchange) -> dict[object, tuple[Decimal, ...]]:
        return {k: (p.size, p.entry_value, p.realized_pnl, p.fees) for k, p in paper.books.items()}

    assert account(after) == account(before)  # (the mark is the next book read's)
    assert after.wallet == before.wallet
    (link,) = rests.order_link_ids
    assert (
        after.orders[link].is_open and after.orders[link].order_id == before.orders[link].order_id
    )

    await env.admin_post(
        "/sim/price", {"category": "linear", "symbol": "BTCUSDT", "price": "64000"}
    )
    await after.market(Category.LINEAR, "BTCUSDT")  # the restored limit fills
    await drain_into(tracker, after)
    (row,) = await env.fetch("SELECT status FROM orders WHERE order_link_id = $1", link)
    assert row["status"] == "filled"
    (book,) = await env.fetch("SELECT size FROM positions WHERE is_dry_run")
    assert book["size"] == Decimal("0.030")

    sell = await new_signal(env, side="sell", amount="100000")
    sold = await paper_processor(env, after).process(sell, "t-sell")
    assert isinstance(sold, SignalExecuted), sold
    await drain_into(tracker, after)
    (book,) = await env.fetch("SELECT size FROM positions WHERE is_dry_run")
    assert book["size"] == Decimal(0)  # closed: reduce-only for what the paper account holds


async def test_a_paper_fill_the_process_died_before_storing_is_restored_once(env: Env) -> None:
    """A paper market order is answered with its record (`filled`) at once; its fill reaches
    `executions` and the books only when the paper tracker drains the feed. A process killed
    in between left the order `filled` in the database with no fill behind it: the restarted
    paper account (rebuilt from stored fills) and our positions both missed the buy the
    order's `filled` event had announced. Dry-run has no reconciliation against an exchange, so
    the restore books what the order rows count beyond their stored fills, once."""
    tracker = Tracker(env.uow, link_prefix="om", is_dry_run=True)
    before = PaperExchange(env.gateway, levels=env.gateway)
    bought = await paper_processor(env, before).process(await new_signal(env, amount="1000"), "t")
    assert isinstance(bought, SignalExecuted), bought
    # the process dies here: the feed's fill never reached the tracker
    assert await env.fetch("SELECT 1 FROM executions") == []

    after = PaperExchange(env.gateway, levels=env.gateway)
    await restore_paper(after, env.uow)
    await drain_into(tracker, after)

    def account(paper: PaperExchange) -> dict[object, tuple[Decimal, ...]]:
        return {k: (p.size, p.entry_value, p.realized_pnl, p.fees) for k, p in paper.books.items()}

    assert account(after) == account(before)
    assert after.wallet == before.wallet
    fills = await env.fetch("SELECT exec_qty, exec_price, exec_fee FROM executions")
    (order,) = await env.fetch("SELECT cum_exec_qty, avg_price, cum_exec_fee FROM orders")
    assert [tuple(f.values()) for f in fills] == [tuple(order.values())]
    (book,) = await env.fetch("SELECT size FROM positions WHERE is_dry_run")
    assert book["size"] == Decimal("0.015")
    events = await env.fetch("SELECT event_type FROM outbox ORDER BY id")
    # the order's events are not announced twice; the position's move is announced now
    assert [e["event_type"] for e in events] == ["created", "filled", "position_updated"]

    # a second restart finds nothing missing: the fill is not booked twice
    again = PaperExchange(env.gateway, levels=env.gateway)
    await restore_paper(again, env.uow)
    await drain_into(tracker, again)
    assert account(again) == account(before)
    assert len(await env.fetch("SELECT 1 FROM executions")) == 1


async def test_the_paper_feed_keeps_a_batch_the_database_refused_and_applies_it_later(
    env: Env,
) -> None:
    """The database refuses the paper tracker's writes for a while (longer than the tracker's
    own retries). The feed keeps the batch and hands it over again until it is applied, and
    goes on with later fills — before, the exception ended the paper tracker for good."""
    paper = PaperExchange(env.gateway, levels=env.gateway)
    tracker = Tracker(env.uow, link_prefix="om", is_dry_run=True)
    feed = PaperFeedSource(paper.updates, retry_base=0.01, retry_max=0.05)
    running = asyncio.create_task(run_tracker(tracker, feed))
    try:
        async with env.database_fails("BEFORE INSERT ON executions FOR EACH ROW"):
            first = await paper_processor(env, paper).process(await new_signal(env), "t-1")
            assert isinstance(first, SignalExecuted), first
            await eventually(lambda: feed.retried >= 3, timeout=10, what="the batch refused")
            assert not running.done()
            assert await env.fetch("SELECT 1 FROM executions") == []
        second = await paper_processor(env, paper).process(await new_signal(env), "t-2")
        assert isinstance(second, SignalExecuted), second

        async def both_stored() -> bool:
            return len(await env.fetch("SELECT 1 FROM executions WHERE is_dry_run")) == 2

        await eventually(both_stored, timeout=10, what="both paper fills stored")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    (book,) = await env.fetch("SELECT size FROM positions WHERE is_dry_run")
    assert book["size"] == Decimal("0.030")
