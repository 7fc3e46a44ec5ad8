"""A plan's cancels are written ahead and carried out by the signal's resumed run.

A buy signal while our sell limit rests plans: cancel the sell (``cancel_opposite_orders``),
then place the buy. The intents and the cancel's link are committed first; the process dies
right before the cancel call (stood in for by a gateway that raises there — the exchange and
the database are real). The redelivered signal resumes: it must send the cancel it never sent,
not only re-send its intent. Real PostgreSQL, a running bybit_sim.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from order_manager.adapters.bybit.gateway import BybitGateway, GatewayReport
from order_manager.domain.plans import Cancel
from order_manager.services.ports.processing import SignalExecuted
from order_manager.services.processor import Processor, ProcessorConfig

from .conftest import Env, new_signal


class ProcessDied(BaseException):
    """The process ends here: nothing after this point runs (not an Exception: no handler of
    ours may catch it)."""


class DiesBeforeCancelling(BybitGateway):
    def __init__(self, env: Env) -> None:
        super().__init__(env.rest, env.gateway.instruments)

    async def cancel(self, action: Cancel, *, trace_id: str) -> GatewayReport:
        raise ProcessDied


async def _resting_sell(env: Env) -> str:
    sell = await env.processor().process(
        await new_signal(env, side="sell", metadata={"order_type": "limit"}), "t-sell"
    )
    assert isinstance(sell, SignalExecuted), sell
    return sell.order_link_ids[0]


async def test_a_cancel_the_process_never_sent_is_sent_by_the_resumed_signal(env: Env) -> None:
    resting = await _resting_sell(env)
    buy = await new_signal(env, metadata={"order_type": "market"})
    with pytest.raises(ProcessDied):
        await Processor(env.uow, DiesBeforeCancelling(env), ProcessorConfig()).process(
            buy, "t-died"
        )
    links = await env.fetch(
        "SELECT relation, cancel_done_at IS NOT NULL AS done FROM signal_order_links "
        "WHERE signal_id = $1::uuid ORDER BY id",
        buy.signal_id,
    )
    # the cancel's link first (written before the intents), neither answered
    assert [(r["relation"], r["done"]) for r in links] == [("cancel", False), ("create", False)]
    assert {o["orderLinkId"]: o["orderStatus"] for o in await env.sim_orders()} == {resting: "New"}

    sent_before = REGISTRY.get_sample_value("om_resumed_work_total", {"outcome": "cancel_sent"})
    outcome = await env.processor().process(buy, "t-redelivered")
    sent = REGISTRY.get_sample_value("om_resumed_work_total", {"outcome": "cancel_sent"})
    assert sent == (sent_before or 0.0) + 1

    assert isinstance(outcome, SignalExecuted), outcome
    statuses = {o["orderLinkId"]: o["orderStatus"] for o in await env.sim_orders()}
    assert statuses[resting] == "Cancelled"
    [placed] = outcome.order_link_ids
    assert statuses[placed] == "Filled"
    actions = await env.fetch(
        "SELECT action, entity_id FROM audit_log WHERE trace_id = 't-redelivered' ORDER BY id"
    )
    # the cancel first (it frees margin), then the intent re-sent under its orderLinkId
    assert [(a["action"], a["entity_id"]) for a in actions] == [
        ("order.cancel", resting),
        ("order.create", placed),
    ]
    done = await env.fetch(
        "SELECT cancel_done_at IS NOT NULL AS done FROM signal_order_links "
        "WHERE signal_id = $1::uuid AND relation = 'cancel'",
        buy.signal_id,
    )
    assert [r["done"] for r in done] == [True]


async def test_a_cancel_that_fails_is_reported_with_the_signal(env: Env) -> None:
    """The opposite order could not be cancelled (the exchange kept failing): the signal still
    executed its order, and says which cancel failed — it used to say nothing."""
    resting = await _resting_sell(env)
    await env.fail_next("/v5/order/cancel", "/v5/order/cancel", "/v5/order/cancel")
    outcome = await env.processor().process(
        await new_signal(env, metadata={"order_type": "market"}), "t-buy"
    )

    assert isinstance(outcome, SignalExecuted), outcome
    assert resting in outcome.partial_failures, outcome
    assert {o["orderLinkId"]: o["orderStatus"] for o in await env.sim_orders()}[resting] == "New"


async def test_a_run_that_dies_between_its_cancel_links_and_its_intents_plans_again(
    env: Env,
) -> None:
    """The cancel links are written just before the intents; the process dies in between —
    stood in for by the intents' INSERT failing on the real database. The signal has only a
    cancel link, nothing was sent: its redelivery plans again and carries out the whole plan."""
    resting = await _resting_sell(env)
    buy = await new_signal(env, metadata={"order_type": "market"})
    async with env.process_dies_writing_intents():
        await env.processor().process(buy, "t-died")
    links = await env.fetch(
        "SELECT relation FROM signal_order_links WHERE signal_id = $1::uuid", buy.signal_id
    )
    assert [r["relation"] for r in links] == ["cancel"]

    outcome = await env.processor().process(buy, "t-redelivered")

    assert isinstance(outcome, SignalExecuted), outcome
    statuses = {o["orderLinkId"]: o["orderStatus"] for o in await env.sim_orders()}
    [placed] = outcome.order_link_ids
    assert statuses == {resting: "Cancelled", placed: "Filled"}
