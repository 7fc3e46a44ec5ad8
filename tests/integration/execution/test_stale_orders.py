"""The stale-order sweeper on real PostgreSQL and bybit_sim (spec FR-005.8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from order_manager.services.ports.processing import SignalExecuted
from order_manager.services.stale_orders import StaleOrderSweeper

from .conftest import Env, new_signal

MAX_AGE = timedelta(seconds=300)


def sweeper(env: Env, *, later: timedelta) -> StaleOrderSweeper:
    """A sweeper whose clock runs ``later`` ahead of now."""
    return StaleOrderSweeper(
        env.uow,
        env.gateway,
        max_age=MAX_AGE,
        interval=60,
        clock=lambda: datetime.now(UTC) + later,
    )


async def _resting_limit(env: Env, symbol: str = "BTCUSDT") -> str:
    signal = await new_signal(env, amount="1000", asset=symbol, metadata={"order_type": "limit"})
    outcome = await env.processor().process(signal, f"t-{symbol}")
    assert isinstance(outcome, SignalExecuted), outcome
    return outcome.order_link_ids[0]


async def test_a_resting_limit_is_cancelled_only_once_it_is_stale(env: Env) -> None:
    link = await _resting_limit(env)

    young = await sweeper(env, later=timedelta(seconds=299)).sweep()
    assert (young.checked, young.cancelled) == (1, [])
    assert [o["orderStatus"] for o in await env.sim_orders()] == ["New"]

    old = await sweeper(env, later=timedelta(seconds=301)).sweep()
    assert old.cancelled == [link]
    [order] = await env.sim_orders()
    assert order["orderLinkId"] == link and order["orderStatus"] == "Cancelled"
    [audit] = await env.fetch(
        "SELECT ret_code, response, trace_id FROM audit_log WHERE action = 'order.cancel'"
    )
    assert audit["ret_code"] == 0
    assert audit["response"]["reason"] == "stale"
    assert audit["trace_id"] == "t-BTCUSDT"  # the order's own trace


async def test_orders_that_do_not_rest_or_are_not_ours_are_left_alone(env: Env) -> None:
    """A filled market order, an external order and a conditional order waiting for its
    trigger are never swept, however old."""
    market = await new_signal(env, amount="1000", asset="ETHUSDT")
    assert isinstance(await env.processor().process(market, "t-m"), SignalExecuted)
    long_ago = datetime.now(UTC) - timedelta(days=1)
    for link, status, external in (("ext-1", "pending", True), ("cond-1", "untriggered", False)):
        await env.pool.execute(
            "INSERT INTO orders (order_link_id, order_id, category, symbol, side, order_type,"
            " qty, price, status, is_external, created_at)"
            " VALUES ($1, $2, 'linear', 'SOLUSDT', 'Buy', 'Limit', 1, 100, $3, $4, $5)",
            link,
            f"oid-{link}",
            status,
            external,
            long_ago,
        )

    report = await sweeper(env, later=timedelta(days=2)).sweep()

    assert report.cancelled == [] and report.failed == {}
    assert await env.fetch("SELECT 1 FROM audit_log WHERE action = 'order.cancel'") == []
    assert [o["orderStatus"] for o in await env.sim_orders()] == ["Filled"]


async def test_an_order_already_gone_on_the_exchange_is_reported_not_retried_as_failure(
    env: Env,
) -> None:
    link = await _resting_limit(env)
    [order] = await env.sim_orders()
    # cancelled behind our back (no tracker runs here): our row still says pending
    await env.rest.cancel_order("linear", "BTCUSDT", order_id=order["orderId"])

    report = await sweeper(env, later=timedelta(seconds=301)).sweep()

    assert report.gone == [link] and report.cancelled == [] and report.failed == {}
    rows = await env.fetch("SELECT qty FROM orders WHERE order_link_id = $1", link)
    assert rows[0]["qty"] == Decimal("0.015")
