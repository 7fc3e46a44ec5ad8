"""`pending_limits_on_market_signal=convert` across a crash between its cancels and its intents.

convert sends its cancels BEFORE writing its intents (a limit must be confirmed cancelled, and
untraded, before its quantity may go into the market order). The process dies in between —
stood in for by the intents' INSERT failing on the real database. The limit is cancelled on
the exchange; the signal has written its conversion ahead (a `cancel` link carrying the planned
quantity) and no order of its own. Its redelivery must place the market order with the
converted quantity — whether or not the restarted service's tracker has already reconciled the
limit as cancelled (after a real restart it usually has). Real PostgreSQL, a running bybit_sim.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from order_manager.adapters.bybit.queries import BybitReconcileQueries
from order_manager.domain.planner import PendingLimitPolicy, PlannerConfig
from order_manager.services.ports.processing import SignalExecuted, SignalFailed
from order_manager.services.recovery import Recovery
from order_manager.services.tracker import Tracker, resync_orders

from .conftest import Env, new_signal, one_attempt_processor

CONVERT = PlannerConfig(pending_limits_on_market=PendingLimitPolicy.CONVERT)


@pytest.mark.parametrize("reconciled", [False, True], ids=["store-behind", "tracker-reconciled"])
async def test_a_crash_between_the_convert_cancels_and_the_intents_loses_nothing(
    env: Env, reconciled: bool
) -> None:
    limit = await env.processor(planner=CONVERT).process(
        await new_signal(env, metadata={"order_type": "limit"}), "t-l"
    )
    assert isinstance(limit, SignalExecuted), limit
    market = await new_signal(env, metadata={"order_type": "market"})
    async with env.process_dies_writing_intents():
        await env.processor(planner=CONVERT).process(market, "t-crash")
    assert {o["orderType"]: o["orderStatus"] for o in await env.sim_orders()} == {
        "Limit": "Cancelled"
    }
    links = await env.fetch(
        "SELECT relation, allocated_qty FROM signal_order_links WHERE signal_id = $1::uuid",
        market.signal_id,
    )
    assert [(r["relation"], r["allocated_qty"]) for r in links] == [("cancel", Decimal("0.015"))]
    if reconciled:  # the restarted service's gap reconciliation ran first
        tracker = Tracker(env.uow, link_prefix="om")
        await resync_orders(tracker, env.uow, BybitReconcileQueries(env.rest))
        [row] = await env.fetch(
            "SELECT status FROM orders WHERE order_link_id = $1", limit.order_link_ids[0]
        )
        assert row["status"] == "cancelled"

    carried_before = _carried()
    outcome = await env.processor(planner=CONVERT).process(market, "t-redelivered")

    assert isinstance(outcome, SignalExecuted), outcome
    markets = [o for o in await env.sim_orders() if o["orderType"] == "Market"]
    assert [Decimal(o["qty"]) for o in markets] == [Decimal("0.030")]  # 0.015 own + 0.015
    assert [o["orderLinkId"] for o in markets] == list(outcome.order_link_ids)
    # carried over only when the store already had the limit closed; else converted again
    assert _carried() == carried_before + (1 if reconciled else 0)


def _carried() -> float:
    labels = {"outcome": "conversion_carried"}
    return REGISTRY.get_sample_value("om_resumed_work_total", labels) or 0.0


async def test_a_convert_retried_after_its_intent_failed_keeps_the_converted_quantity(
    env: Env,
) -> None:
    """The conversion's cancels and intent were written, but the create never reached the
    exchange (503) and recovery marked the intent failed; the tracker has closed the limit. The
    retried signal plans again, reusing the failed intent — with the carried conversion."""
    limit = await env.processor(planner=CONVERT).process(
        await new_signal(env, metadata={"order_type": "limit"}), "t-l"
    )
    assert isinstance(limit, SignalExecuted), limit
    market = await new_signal(env, metadata={"order_type": "market"})
    await env.fail_next("/v5/order/create")
    await env.fail_next_lookups()  # (after the cancel's own lookup: the create's settling one)
    async with one_attempt_processor(env, planner=CONVERT) as fragile:
        first = await fragile.process(market, "t-first")
    assert isinstance(first, SignalFailed), first
    later = datetime.now(UTC) + timedelta(minutes=1)
    report = await Recovery(env.uow, env.gateway, clock=lambda: later).run()
    assert len(report.failed) == 1
    await resync_orders(
        Tracker(env.uow, link_prefix="om"), env.uow, BybitReconcileQueries(env.rest)
    )

    outcome = await env.processor(planner=CONVERT).process(market, "t-retry")

    assert isinstance(outcome, SignalExecuted), outcome
    markets = [o for o in await env.sim_orders() if o["orderType"] == "Market"]
    assert [Decimal(o["qty"]) for o in markets] == [Decimal("0.030")]
    assert [o["orderLinkId"] for o in markets] == report.failed  # the failed intent, reused
