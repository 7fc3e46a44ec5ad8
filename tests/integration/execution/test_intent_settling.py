"""Intents a failed signal left ``submitting`` are settled while the service runs.

A create whose outcome stayed unknown (no answer, every lookup failed) ends its signal
``failed`` with the intent ``submitting``. Before the run-time pass, only the next start
resolved such a row: until then it was an open order that reserved balance and exposure in every
plan, or a real exchange order nobody had adopted. ``Recovery.settle_orphans`` (run by the
service every ``ORDERMANAGER_INTENT_SETTLE_INTERVAL_SECONDS``) settles them — and never touches
the intent of a signal a lane is working on. Real PostgreSQL, real simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from order_manager.domain.enums import Category
from order_manager.domain.plans import order_link_id
from order_manager.domain.signals import TradingSignal
from order_manager.services.ports.exchange import CallReport, ExchangeGateway
from order_manager.services.ports.processing import SignalExecuted, SignalFailed
from order_manager.services.recovery import Recovery

from .conftest import Env, add_intent, new_signal, one_attempt_processor


async def _finish(env: Env, signal: TradingSignal, status: str = "failed") -> None:
    """Record the attempt's outcome as the intake does after the processor returned."""
    async with env.uow() as uow:
        await uow.signals.finish(signal.signal_id, status=status, reason_code="t")
        await uow.commit()


async def _fail_unknown(env: Env, signal: TradingSignal, *, executed: bool) -> str:
    """One attempt of ``signal`` whose create's outcome stays unknown: the create fails with a
    503 (not executed) or executes without an answer; the lookups after it fail too."""
    async with one_attempt_processor(env) as fragile:
        kind = "timeout_after_execute" if executed else "http_status"
        await env.fail_next("/v5/order/create", kind=kind)
        await env.fail_next_lookups()
        outcome = await fragile.process(signal, "t-first")
    assert isinstance(outcome, SignalFailed), outcome
    assert outcome.retryable
    await _finish(env, signal)
    await env.admin.delete("/sim/faults")
    return order_link_id("om", signal.signal_id, 1)


def _later(env: Env) -> Callable[[], datetime]:
    """A clock past the receive window (and its margin) from now."""
    past = Recovery(env.uow, env.gateway).window + timedelta(seconds=1)
    return lambda: datetime.now(UTC) + past


async def _open_links(env: Env) -> list[str]:
    """The rows every plan counts as open orders (reserving balance and exposure)."""
    async with env.uow() as uow:
        rows = await uow.orders.all_open_orders(is_dry_run=False)
    return [row.state.order_link_id for row in rows]


async def test_an_unplaced_intent_of_a_failed_signal_is_failed_once_the_window_passed(
    env: Env,
) -> None:
    signal = await new_signal(env, amount="1000")
    link = await _fail_unknown(env, signal, executed=False)
    assert await env.sim_orders() == []
    assert await _open_links(env) == [link]  # the orphan reserves in every plan

    soon = await Recovery(env.uow, env.gateway).settle_orphans()
    assert soon.pending == [link]  # not found, but a create may still be in flight
    assert await _open_links(env) == [link]

    later = await Recovery(env.uow, env.gateway, clock=_later(env)).settle_orphans()

    assert later.failed == [link]
    assert (later.adopted, later.pending) == ([], [])
    assert await _open_links(env) == []
    rows = await env.fetch("SELECT status FROM orders")
    assert [r["status"] for r in rows] == ["failed"]
    events = await env.fetch("SELECT event_type FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["rejected"]  # the contract has no "failed"
    lookups = await env.fetch("SELECT 1 FROM audit_log WHERE action = 'order.get'")
    assert len(lookups) >= 2  # every lookup of the passes is audited
    assert await env.fetch("SELECT 1 FROM signals WHERE status = 'failed'")  # still retryable

    # a replay of the signal plans afresh on its orderLinkId: one order
    outcome = await env.processor().process(signal, "t-replay")
    assert isinstance(outcome, SignalExecuted), outcome
    assert [o["orderLinkId"] for o in await env.sim_orders()] == [link]


async def test_a_placed_intent_of_a_failed_signal_is_adopted_without_a_restart(env: Env) -> None:
    signal = await new_signal(env, amount="1000")
    link = await _fail_unknown(env, signal, executed=True)
    on_exchange = await env.sim_orders()
    assert [o["orderLinkId"] for o in on_exchange] == [link]

    report = await Recovery(env.uow, env.gateway).settle_orphans()

    assert report.adopted == [link]
    rows = await env.fetch("SELECT status, order_id FROM orders")
    assert [(r["status"], r["order_id"]) for r in rows] == [("filled", on_exchange[0]["orderId"])]
    events = await env.fetch("SELECT event_type FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["created", "filled"]
    # nothing left for a second pass, and a replay places nothing new
    assert await Recovery(env.uow, env.gateway).settle_orphans() == type(report)()
    again = await env.processor().process(signal, "t-replay")
    assert isinstance(again, SignalExecuted), again
    assert len(await env.sim_orders()) == 1


async def test_the_intent_of_a_signal_in_progress_is_left_to_its_lane(env: Env) -> None:
    signal = await new_signal(env)  # `processing`: a lane (or the next start) owns it
    link = await add_intent(env, signal, datetime.now(UTC) - timedelta(seconds=30))

    report = await Recovery(env.uow, env.gateway, clock=_later(env)).settle_orphans()

    assert (report.adopted, report.failed, report.pending) == ([], [], [])
    rows = await env.fetch("SELECT order_link_id, status FROM orders")
    assert [(r["order_link_id"], r["status"]) for r in rows] == [(link, "submitting")]
    assert await env.fetch("SELECT 1 FROM audit_log") == []  # not even looked up


class _ClaimedDuringLookup:
    """The real gateway; while its lookup is out, a lane claims the signal again (a replay)."""

    def __init__(self, env: Env, signal_id: str) -> None:
        self._env = env
        self._signal_id = signal_id
        self._real: ExchangeGateway = env.gateway

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def find_order(
        self, category: Category, symbol: str, order_link_id: str, *, trace_id: str
    ) -> CallReport:
        found = await self._real.find_order(category, symbol, order_link_id, trace_id=trace_id)
        await self._env.fetch(
            "UPDATE signals SET status = 'processing', completed_at = NULL WHERE signal_id = $1",
            self._signal_id,
        )
        return found


async def test_an_intent_whose_signal_is_claimed_during_the_lookup_is_left_to_the_lane(
    env: Env,
) -> None:
    signal = await new_signal(env)
    link = await add_intent(env, signal, datetime.now(UTC) - timedelta(seconds=30))
    await _finish(env, signal)
    gateway: Any = _ClaimedDuringLookup(env, signal.signal_id)

    report = await Recovery(env.uow, gateway, clock=_later(env)).settle_orphans()

    # the lookup said "not found", but the replay's lane may be re-sending the create now
    assert (report.adopted, report.failed, report.pending) == ([], [], [])
    rows = await env.fetch("SELECT order_link_id, status FROM orders")
    assert [(r["order_link_id"], r["status"]) for r in rows] == [(link, "submitting")]


async def test_the_window_runs_from_the_signals_last_attempt_not_from_the_intent(
    env: Env,
) -> None:
    # an old intent whose signal's retry (which re-sends the same create) ended just now
    signal = await new_signal(env)
    link = await add_intent(env, signal, datetime.now(UTC) - timedelta(seconds=30))
    await _finish(env, signal)

    soon = await Recovery(env.uow, env.gateway).settle_orphans()
    later = await Recovery(env.uow, env.gateway, clock=_later(env)).settle_orphans()

    assert (soon.pending, soon.failed) == ([link], [])
    assert (later.pending, later.failed) == ([], [link])
