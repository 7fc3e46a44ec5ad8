"""Crash safety: the create executed but its answer was lost → exactly one exchange order.

The simulator's `timeout_after_execute` fault executes the create and never answers; order
lookups are failed too, so the client cannot settle the outcome and the intent stays
`submitting` — the state a process killed between the intent commit and the answer leaves.
A new process (new client, new gateway) then recovers by orderLinkId.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from order_manager.adapters.bybit.config import RetryConfig
from order_manager.adapters.bybit.gateway import BybitGateway
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.metrics import metrics_for
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.domain.plans import order_link_id
from order_manager.services.ports.processing import SignalExecuted, SignalFailed
from order_manager.services.processor import Processor, ProcessorConfig
from order_manager.services.recovery import Recovery

from .conftest import Env, add_intent, client_config, new_signal


@pytest.fixture
async def fragile(env: Env) -> AsyncIterator[Processor]:
    """A processor whose client gives up fast and never retries (the "crashing" process)."""
    config = client_config(
        env.sim_url, read_timeout=0.3, retry=RetryConfig(max_attempts=1, base_delay=0.01)
    )
    async with BybitRestClient(config, metrics=metrics_for(CollectorRegistry())) as rest:
        cache = InstrumentCache(rest, ["linear"])
        await cache.refresh()
        yield Processor(env.uow, BybitGateway(rest, cache), ProcessorConfig())


async def _lose_the_answer(env: Env) -> None:
    await env.fail_next("/v5/order/create", kind="timeout_after_execute")
    await env.fail_next_lookups()


async def test_lost_create_answer_then_recovery_gives_exactly_one_order(
    env: Env, fragile: Processor
) -> None:
    signal = await new_signal(env, amount="1000")
    await _lose_the_answer(env)

    outcome = await fragile.process(signal, "t-crash")

    assert isinstance(outcome, SignalFailed), outcome
    assert outcome.retryable
    rows = await env.fetch("SELECT status, order_id FROM orders")
    assert [(r["status"], r["order_id"]) for r in rows] == [("submitting", None)]
    on_exchange = await env.sim_orders()
    assert len(on_exchange) == 1  # the create did execute

    await env.admin.delete("/sim/faults")
    report = await Recovery(env.uow, env.gateway).run()  # the restarted process

    link = order_link_id("om", signal.signal_id, 1)
    assert report.adopted == [link]
    rows = await env.fetch("SELECT status, order_id FROM orders")
    assert rows[0]["order_id"] == on_exchange[0]["orderId"]
    assert rows[0]["status"] == "filled"  # the market order filled on the simulator
    events = await env.fetch("SELECT event_type FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "filled"]

    # the signal is redelivered (it was `failed`): nothing new is placed
    again = await env.processor().process(signal, "t-crash-2")
    assert isinstance(again, SignalExecuted), again
    assert again.order_ids == (on_exchange[0]["orderId"],)
    assert len(await env.sim_orders()) == 1
    creates = await env.fetch("SELECT 1 FROM audit_log WHERE action = 'order.create'")
    assert len(creates) == 1


async def test_redelivery_before_recovery_resends_the_same_link_id_and_adopts(
    env: Env, fragile: Processor
) -> None:
    signal = await new_signal(env, amount="1000")
    await _lose_the_answer(env)
    assert isinstance(await fragile.process(signal, "t1"), SignalFailed)
    await env.admin.delete("/sim/faults")

    outcome = await env.processor().process(signal, "t2")

    assert isinstance(outcome, SignalExecuted), outcome
    orders = await env.sim_orders()
    assert len(orders) == 1
    assert outcome.order_ids == (orders[0]["orderId"],)
    rows = await env.fetch("SELECT status, order_id FROM orders")
    assert rows[0]["order_id"] == orders[0]["orderId"]
    assert rows[0]["status"] in ("pending", "filled")
    creates = await env.fetch(
        "SELECT ok_outcome FROM (SELECT response->>'outcome' AS ok_outcome, id FROM audit_log"
        " WHERE action = 'order.create') a ORDER BY id"
    )
    # first send: answer lost; second send: the exchange already had that orderLinkId
    assert [c["ok_outcome"] for c in creates] == [None, "existing"]


async def test_recovery_fails_unfound_intents_only_after_the_receive_window(env: Env) -> None:
    now = datetime.now(UTC)
    old = await new_signal(env)
    young = await new_signal(env)
    old_link = await add_intent(env, old, now - timedelta(seconds=30))
    young_link = await add_intent(env, young, now)

    report = await Recovery(env.uow, env.gateway).run()

    assert report.failed == [old_link]
    assert report.pending == [young_link]
    assert report.adopted == []
    rows = {r["order_link_id"]: r["status"] for r in await env.fetch("SELECT * FROM orders")}
    assert rows == {old_link: "failed", young_link: "submitting"}
    assert await env.sim_orders() == []

    # the failed signal is retried: it plans afresh and reuses its orderLinkId
    outcome = await env.processor().process(old, "t-retry")
    assert isinstance(outcome, SignalExecuted), outcome
    assert outcome.order_link_ids == (old_link,)
    orders = await env.sim_orders()
    assert [o["orderLinkId"] for o in orders] == [old_link]


async def test_an_authentication_failure_is_fatal_and_places_nothing(env: Env) -> None:
    config = client_config(env.sim_url, api_secret="not-the-secret")
    async with BybitRestClient(config, metrics=metrics_for(CollectorRegistry())) as rest:
        cache = InstrumentCache(rest, ["linear"])
        await cache.refresh()  # public: works with any key
        processor = Processor(env.uow, BybitGateway(rest, cache), ProcessorConfig())
        signal = await new_signal(env, amount="1000")
        outcome = await processor.process(signal, "t-auth")

    assert isinstance(outcome, SignalFailed), outcome
    assert outcome.code == "exchange_auth"
    assert not outcome.retryable  # the intake stops consuming instead of failing every signal
    assert await env.sim_orders() == []
    assert await env.fetch("SELECT 1 FROM orders") == []


async def test_an_answer_the_database_could_not_store_is_taken_from_the_exchange_on_retry(
    env: Env,
) -> None:
    """Spec edge case "database write fails after successful Bybit order creation": the create
    went through, writing its answer failed. The signal's processing fails (the intake's lane
    retries it, a redelivery would do the same), the intent stays ``submitting``; the retry
    resumes it by orderLinkId — the exchange answers that it has the order (110072), the order
    is looked up and recorded as the exchange holds it: one exchange order, nothing placed
    twice."""
    processor = env.processor()
    signal = await new_signal(env, amount="1000")
    acknowledging = (
        "BEFORE UPDATE ON orders FOR EACH ROW"
        " WHEN (OLD.order_id IS NULL AND NEW.order_id IS NOT NULL)"
    )
    async with env.database_fails(acknowledging):
        with pytest.raises(Exception, match="the process died here"):
            await processor.process(signal, "t-answer-lost")
    rows = await env.fetch("SELECT status, order_id FROM orders")
    assert [(r["status"], r["order_id"]) for r in rows] == [("submitting", None)]
    assert len(await env.sim_orders()) == 1  # the exchange has it

    outcome = await processor.process(signal, "t-answer-retry")

    assert isinstance(outcome, SignalExecuted), outcome
    (order,) = await env.sim_orders()
    assert order["orderStatus"] == "Filled"
    rows = await env.fetch("SELECT status, order_id, cum_exec_qty FROM orders")
    assert [(r["status"], r["order_id"]) for r in rows] == [("filled", order["orderId"])]
    assert rows[0]["cum_exec_qty"] == Decimal(order["cumExecQty"])  # the exchange's record
    assert outcome.order_ids == (order["orderId"],)
    calls = await env.fetch("SELECT action, response FROM audit_log ORDER BY id")
    assert [(c["action"], c["response"]["outcome"]) for c in calls] == [
        ("order.create", "created"),  # audited although its answer could not be stored
        ("order.create", "existing"),  # the retry: the exchange already had it
    ]
