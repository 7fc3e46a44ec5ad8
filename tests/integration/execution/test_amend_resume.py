"""A many-to-one amend whose outcome was never recorded is settled when its signal resumes.

The first run of the second signal leaves its `amend` link written ahead but not marked
landed — exactly what a process killed between the write-ahead commit and the recorded answer
leaves: the amend fails on the wire (503, or executed with its answer lost) and the lookup that
would settle it fails too, so the signal fails retryable. Its retry (the duplicate the model
service re-sends, or the redelivery after a crash) must neither count the amend as done (that
loses the signal's quantity) nor send it blindly (that could undo a later change): the
exchange's order decides (`domain.amends`). Real PostgreSQL, a running bybit_sim.
"""

from __future__ import annotations

from decimal import Decimal

from prometheus_client import REGISTRY

from order_manager.domain.signals import TradingSignal
from order_manager.services.ports.processing import (
    SignalExecuted,
    SignalFailed,
    SignalOutcome,
    SignalRejected,
)

from .conftest import Env, new_signal, one_attempt_processor

LIMIT = {"order_type": "limit"}


async def _resting_limit(env: Env) -> str:
    first = await env.processor().process(await new_signal(env, metadata=LIMIT), "t-first")
    assert isinstance(first, SignalExecuted), first
    return first.order_link_ids[0]


async def _unsettled_amend(env: Env, amend_kind: str) -> TradingSignal:
    """The second signal's first run: the amend's outcome stays unknown."""
    second = await new_signal(env, metadata=LIMIT)
    await env.fail_next("/v5/order/amend", kind=amend_kind)
    await env.fail_next_lookups()
    async with one_attempt_processor(env) as processor:
        outcome = await processor.process(second, "t-second")
    assert isinstance(outcome, SignalFailed), outcome
    assert outcome.retryable and outcome.code == "exchange_outcome_unknown"
    links = await _amend_links(env, second)
    assert links == [(Decimal("0.030"), Decimal("0.015"), False)]  # written ahead, not landed
    return second


async def _amend_links(env: Env, signal: TradingSignal) -> list[tuple[Decimal, Decimal, bool]]:
    rows = await env.fetch(
        "SELECT amend_qty, amend_from_qty, amended_at IS NOT NULL AS landed "
        "FROM signal_order_links WHERE signal_id = $1::uuid AND relation = 'amend'",
        signal.signal_id,
    )
    return [(r["amend_qty"], r["amend_from_qty"], r["landed"]) for r in rows]


async def _retry(env: Env, signal: TradingSignal, expected_outcome: str) -> SignalOutcome:
    """The signal's retry; the resumed-work metric counts exactly the expected decision."""

    def count() -> float:
        labels = {"outcome": expected_outcome}
        return REGISTRY.get_sample_value("om_resumed_work_total", labels) or 0.0

    before = count()
    outcome = await env.processor().process(signal, "t-retry")
    assert count() == before + 1
    return outcome


async def _retry_actions(env: Env) -> list[str]:
    rows = await env.fetch("SELECT action FROM audit_log WHERE trace_id = 't-retry' ORDER BY id")
    return [r["action"] for r in rows]


async def test_an_amend_that_never_landed_is_sent_when_its_signal_is_retried(env: Env) -> None:
    resting = await _resting_limit(env)
    second = await _unsettled_amend(env, "http_status")
    orders = await env.sim_orders()
    assert [Decimal(o["qty"]) for o in orders] == [Decimal("0.015")]  # it did not land

    outcome = await _retry(env, second, "amend_send")

    assert isinstance(outcome, SignalExecuted), outcome
    assert outcome.order_link_ids == (resting,)
    orders = await env.sim_orders()
    assert len(orders) == 1  # amended, not a second order
    assert Decimal(orders[0]["qty"]) == Decimal("0.030")
    assert await _retry_actions(env) == ["order.get", "order.amend"]
    assert await _amend_links(env, second) == [(Decimal("0.030"), Decimal("0.015"), True)]
    events = await env.fetch("SELECT event_type FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "modified"]
    rows = await env.fetch("SELECT qty FROM orders")
    assert [r["qty"] for r in rows] == [Decimal("0.030")]
    # settled now: a further duplicate sends nothing
    again = await env.processor().process(second, "t-again")
    assert isinstance(again, SignalExecuted), again
    assert await env.fetch("SELECT 1 FROM audit_log WHERE trace_id = 't-again'") == []


async def test_an_amend_that_landed_unrecorded_is_recorded_not_sent_again(env: Env) -> None:
    await _resting_limit(env)
    second = await _unsettled_amend(env, "timeout_after_execute")
    orders = await env.sim_orders()
    assert [Decimal(o["qty"]) for o in orders] == [Decimal("0.030")]  # it landed

    outcome = await _retry(env, second, "amend_landed")

    assert isinstance(outcome, SignalExecuted), outcome
    assert await _retry_actions(env) == ["order.get"]  # looked up, not amended again
    orders = await env.sim_orders()
    assert len(orders) == 1 and Decimal(orders[0]["qty"]) == Decimal("0.030")
    assert await _amend_links(env, second) == [(Decimal("0.030"), Decimal("0.015"), True)]
    events = await env.fetch("SELECT event_type, payload FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "modified"]
    assert events[1]["payload"]["modification"]["after"]["qty"] == "0.030"


async def test_an_amend_whose_order_closed_meanwhile_becomes_the_signals_own_order(
    env: Env,
) -> None:
    resting = await _resting_limit(env)
    second = await _unsettled_amend(env, "http_status")
    await env.rest.cancel_order("linear", "BTCUSDT", order_link_id=resting)

    outcome = await _retry(env, second, "amend_replace")

    assert isinstance(outcome, SignalExecuted), outcome
    assert resting not in outcome.order_link_ids
    placed = [o for o in await env.sim_orders() if o["orderStatus"] == "New"]
    assert len(placed) == 1
    assert placed[0]["orderLinkId"] == outcome.order_link_ids[0]
    assert Decimal(placed[0]["qty"]) == Decimal("0.015")  # the quantity the amend would add
    assert await _retry_actions(env) == ["order.get", "order.create"]
    links = await env.fetch(
        "SELECT relation FROM signal_order_links WHERE signal_id = $1::uuid", second.signal_id
    )
    assert [r["relation"] for r in links] == ["create"]


async def test_an_amend_whose_order_changed_otherwise_is_neither_sent_nor_replaced(
    env: Env,
) -> None:
    """Someone else amended the order since (here: by hand on the exchange): sending the
    planned absolute values would overwrite that, placing the quantity could double it."""
    resting = await _resting_limit(env)
    second = await _unsettled_amend(env, "http_status")
    await env.rest.amend_order("linear", "BTCUSDT", order_link_id=resting, qty=Decimal("0.045"))

    outcome = await _retry(env, second, "amend_ambiguous")

    assert isinstance(outcome, SignalRejected), outcome
    assert outcome.details["error_kind"] == "ambiguous"
    assert "0.045" in outcome.message
    orders = await env.sim_orders()
    assert len(orders) == 1 and Decimal(orders[0]["qty"]) == Decimal("0.045")
    assert await _retry_actions(env) == ["order.get"]
    assert await _amend_links(env, second) == [(Decimal("0.030"), Decimal("0.015"), False)]
