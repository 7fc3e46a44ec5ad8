"""Reconciliation against the simulator: lost stream events, downtime, unknown and vanished
orders, concurrent syncs, a reconnect, and operator cancels — all on real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from order_manager.services.reconciler import PeriodicReconciler
from tests.helpers import database_fails, eventually
from tests.integration.reconcile.conftest import Env, assert_db_matches_sim

pytestmark = pytest.mark.integration


async def test_fills_lost_on_a_paused_stream_are_restored_by_a_manual_sync(env: Env) -> None:
    pump = env.stream_pump()
    await pump.start()
    try:
        btc = await env.place_limit("BTCUSDT")
        eth = await env.place_limit("ETHUSDT")
        await env.pause_private_stream()
        await env.admin_post("/sim/fill", {"orderId": btc})
        await env.admin_post("/sim/fill", {"orderId": eth, "qty": "0.1"})
        sim = await env.sim_orders()
        assert sim[btc]["orderStatus"] == "Filled"
        assert sim[eth]["orderStatus"] == "PartiallyFilled"
        before = await env.db_orders()
        assert before[btc]["status"] == before[eth]["status"] == "pending"  # events were lost

        response = await env.api.client.post("/api/v1/sync", json={"scope": "active"})
    finally:
        await pump.stop()

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["trigger"] == "manual"
    assert report["orders_checked"] == 2
    assert report["orders_changed"] == 2
    assert report["fills_added"] == 2
    assert report["missing_on_exchange"] == 0
    assert report["unknown_to_us"] == 0
    assert report["errors"] == []
    assert report["duration_ms"] > 0
    changes = {c["order_id"]: (c["before"], c["after"]) for c in report["changed"]}
    assert changes == {btc: ("pending", "filled"), eth: ("pending", "partially_filled")}
    db = await env.db_orders()
    for order_id in (btc, eth):
        assert_db_matches_sim(db[order_id], sim[order_id])
        assert db[order_id]["fills"] == 1
    # the fills reached the position books through the tracker's path
    async with env.pool.acquire() as conn:
        rows = await conn.fetch("SELECT symbol, size FROM positions WHERE size > 0")
    sizes = {r["symbol"]: r["size"] for r in rows}
    assert sizes == {
        "BTCUSDT": Decimal(sim[btc]["cumExecQty"]),
        "ETHUSDT": Decimal(sim[eth]["cumExecQty"]),
    }
    # events were written for the restored changes (outbox, same transaction as the rows)
    async with env.pool.acquire() as conn:
        kinds = [r["event_type"] for r in await conn.fetch("SELECT event_type FROM outbox")]
    assert "filled" in kinds
    assert "partially_filled" in kinds


async def test_a_second_sync_finds_nothing_to_change(env: Env) -> None:
    order = await env.place_limit("BTCUSDT")
    await env.admin_post("/sim/fill", {"orderId": order, "qty": "0.005"})
    first = (await env.api.client.post("/api/v1/sync", json={})).json()
    second = (await env.api.client.post("/api/v1/sync", json={})).json()
    assert first["orders_changed"] == 1
    assert (second["orders_checked"], second["orders_changed"], second["fills_added"]) == (1, 0, 0)
    last = (await env.api.client.get("/api/v1/sync")).json()
    assert last["started_at"] == second["started_at"]


async def test_an_order_filled_while_the_service_was_down_is_fixed_at_startup(env: Env) -> None:
    order = await env.place_limit("BTCUSDT")
    # no stream consumer at all: the service is "down" while the exchange fills the order
    await env.admin_post("/sim/fill", {"orderId": order})
    assert (await env.db_orders())[order]["status"] == "pending"

    await env.reconciler.startup()

    report = env.reconciler.last_report
    assert report is not None
    assert (report.trigger, report.orders_changed, report.fills_added) == ("startup", 1, 1)
    assert_db_matches_sim((await env.db_orders())[order], (await env.sim_orders())[order])
    async with env.pool.acquire() as conn:
        sources = [r["source"] for r in await conn.fetch("SELECT source FROM position_snapshots")]
    assert sources == ["reconcile"]


async def test_an_order_unknown_to_us_is_adopted_and_reported(env: Env) -> None:
    await env.place_limit("BTCUSDT")
    external = await env.admin_post(
        "/sim/external-order",
        {
            "category": "linear",
            "symbol": "ETHUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.5",
            "price": "1000",
        },
    )
    external_id = str(external.get("orderId") or external["result"]["orderId"])

    report = (await env.api.client.post("/api/v1/sync", json={"scope": "active"})).json()

    assert report["unknown_to_us"] == 1
    assert [a["order_id"] for a in report["adopted"]] == [external_id]
    row = (await env.db_orders())[external_id]
    assert row["is_external"] is True
    assert row["signal_id"] is None
    assert row["status"] == "pending"
    looked_up = (await env.api.client.get(f"/api/v1/orders/{external_id}")).json()
    assert looked_up["is_external"] is True


async def test_an_acknowledged_order_the_exchange_does_not_know_is_reported_unchanged(
    env: Env,
) -> None:
    async with env.pool.acquire() as conn:
        ghost = await conn.fetchval(
            "INSERT INTO orders (order_link_id, order_id, symbol, side, order_type, qty, price,"
            " status) VALUES ('om-ghost-1', $1, 'BTCUSDT', 'Buy', 'Limit', 0.01, 50000,"
            " 'pending') RETURNING id::text",
            uuid.uuid4().hex,
        )
    report = (await env.api.client.post("/api/v1/sync", json={})).json()
    assert report["missing_on_exchange"] == 1
    assert report["missing"][0]["id"] == ghost
    assert report["orders_changed"] == 0
    async with env.pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM orders WHERE id = $1::uuid", ghost)
    assert status == "pending"


async def test_a_sync_for_one_asset_leaves_the_others_alone(env: Env) -> None:
    btc = await env.place_limit("BTCUSDT")
    eth = await env.place_limit("ETHUSDT")
    await env.admin_post("/sim/fill", {"orderId": btc})
    await env.admin_post("/sim/fill", {"orderId": eth})
    report = (await env.api.client.post("/api/v1/sync", json={"asset": "ETHUSDT"})).json()
    assert report["orders_checked"] == 1
    assert [c["order_id"] for c in report["changed"]] == [eth]
    db = await env.db_orders()
    assert (db[btc]["status"], db[eth]["status"]) == ("pending", "filled")


async def test_a_manual_sync_while_another_runs_answers_409(env: Env) -> None:
    await env.place_limit("BTCUSDT")
    await env.admin_post(
        "/sim/faults",
        {
            "target": "rest",
            "endpoint": "/v5/order/realtime",
            "kind": "delay",
            "params": {"ms": 800},
        },
    )
    first = asyncio.create_task(env.api.client.post("/api/v1/sync", json={}))
    await eventually(lambda: env.reconciler.running is not None, what="first sync running")

    second = await env.api.client.post("/api/v1/sync", json={"scope": "all"})

    assert second.status_code == 409
    body = second.json()
    assert body["code"] == "SYNC_IN_PROGRESS"
    assert body["details"]["trigger"] == "manual"
    assert second.headers["retry-after"] == "1"
    assert (await first).status_code == 200


async def test_a_manual_sync_during_an_operator_order_sync_answers_409(env: Env) -> None:
    """`sync_orders` (run right after an operator cancel) is a sync like any other: a manual
    request meanwhile is refused with 409 instead of queueing behind it."""
    order = await env.place_limit("BTCUSDT")
    db = await env.db_orders()
    await env.admin_post(
        "/sim/faults",
        {
            "target": "rest",
            "endpoint": "/v5/order/realtime",
            "kind": "delay",
            "params": {"ms": 800},
        },
    )
    ids = [str(db[order]["id"])]
    first = asyncio.create_task(env.reconciler.sync_orders(ids))
    await eventually(lambda: env.reconciler.running is not None, what="order sync running")
    assert env.reconciler.running is not None and env.reconciler.running.trigger == "operator"

    second = await env.api.client.post("/api/v1/sync", json={})

    assert second.status_code == 409
    assert second.json()["details"]["trigger"] == "operator"
    report = await first
    assert report.orders_checked == 1 and report.errors == []
    assert env.reconciler.running is None


async def test_a_sync_without_a_body_uses_the_defaults(env: Env) -> None:
    response = await env.api.client.post("/api/v1/sync")
    assert response.status_code == 200, response.text
    assert (response.json()["scope"], response.json()["asset"]) == ("active", None)


async def test_bad_sync_requests_are_refused(env: Env) -> None:
    for body, field in (
        ({"scope": "everything"}, "body scope"),
        ({"asset": "eth"}, "body asset"),
        ({"scopes": "all"}, "body scopes"),
    ):
        response = await env.api.client.post("/api/v1/sync", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"].startswith(field)


async def test_a_stream_reconnect_triggers_a_reconciliation(env: Env) -> None:
    pump = env.stream_pump()
    await pump.start()
    try:
        order = await env.place_limit("BTCUSDT")
        rule = await env.pause_private_stream()
        await env.admin_post("/sim/fill", {"orderId": order})
        await env.admin.delete(f"/sim/faults/{rule}")
        await env.admin_post("/sim/ws/drop", {"stream": "private"})
        await eventually(lambda: pump.reconnects >= 1, timeout=15, what="stream reconnected")
        report = await env.reconciler.wait_pending()
    finally:
        await pump.stop()
    assert report is not None
    assert (report.trigger, report.orders_changed) == ("reconnect", 1)
    assert_db_matches_sim((await env.db_orders())[order], (await env.sim_orders())[order])


async def test_a_gap_sync_the_database_cut_short_runs_again_until_it_completes(env: Env) -> None:
    """A stream batch lost to a database outage asks for a sync — usually while the outage
    lasts, so that sync aborts too. It runs again (backing off) until it completes; before,
    the lost fill waited for the next periodic run (5 min by default)."""
    env.reconciler.gap_retry_delays = (0.05,) * 200  # the service backs off 1 s → 30 s
    order = await env.place_limit("BTCUSDT")
    await env.admin_post("/sim/fill", {"orderId": order})  # the stream's batch was lost
    async with database_fails(env.pool, "BEFORE UPDATE ON orders FOR EACH ROW"):
        await env.reconciler.on_gap()

        def aborted() -> bool:
            report = env.reconciler.last_report
            return report is not None and any(e.startswith("aborted") for e in report.errors)

        await eventually(aborted, timeout=15, what="the gap sync aborted by the outage")
    report = await env.reconciler.wait_pending()  # the database is back

    assert report is not None and report.errors == []
    assert report.orders_changed == 1
    assert_db_matches_sim((await env.db_orders())[order], (await env.sim_orders())[order])


async def test_operator_cancel_of_one_order_and_of_everything(env: Env) -> None:
    one = await env.place_limit("BTCUSDT")
    two = await env.place_limit("ETHUSDT")
    three = await env.place_limit("SOLUSDT")

    cancelled = await env.api.client.post(f"/api/v1/orders/{one}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["order"]["status"] == "cancelled"  # reconciled before answering
    again = await env.api.client.post(f"/api/v1/orders/{one}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "ORDER_NOT_OPEN"
    missing = await env.api.client.post("/api/v1/orders/nope/cancel")
    assert missing.status_code == 404

    everything = await env.api.client.post("/api/v1/cancel-all", json={})
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert body["requested"] == 2
    assert body["failed"] == []
    assert body["sync"]["orders_changed"] == 2
    sim = await env.sim_orders()
    db = await env.db_orders()
    for order_id in (one, two, three):
        assert sim[order_id]["orderStatus"] == "Cancelled"
        assert_db_matches_sim(db[order_id], sim[order_id])
    async with env.pool.acquire() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch("SELECT action FROM audit_log WHERE kind = 'operator'")
        ]
    assert actions.count("cancel_order") == 1  # the refused second cancel never reached Bybit
    assert actions.count("cancel_all") == 1


async def test_scope_all_restores_fills_of_an_order_already_final(env: Env) -> None:
    pump = env.stream_pump()
    await pump.start()
    try:
        order = await env.place_limit("BTCUSDT")
        await env.admin_post(
            "/sim/faults", {"target": "ws_private", "topic": "execution*", "kind": "pause"}
        )
        await env.admin_post("/sim/fill", {"orderId": order, "qty": "0.005"})
        await env.rest.cancel_order("linear", "BTCUSDT", order_id=order)

        async def cancelled() -> bool:
            status = (await env.db_orders())[order]["status"]
            return bool(status == "cancelled")

        await eventually(cancelled, timeout=10, what="the cancel event applied")  # type: ignore[arg-type]
    finally:
        await pump.stop()
    assert (await env.db_orders())[order]["fills"] == 0  # the fill event was lost

    active = (await env.api.client.post("/api/v1/sync", json={"scope": "active"})).json()
    assert (active["orders_checked"], active["fills_added"]) == (0, 0)  # final: not active
    assert active["positions_drift"] == 1  # the exchange holds 0.005 BTC, our book nothing

    everything = (await env.api.client.post("/api/v1/sync", json={"scope": "all"})).json()
    assert everything["orders_checked"] == 1
    assert everything["fills_added"] == 1
    assert everything["positions_drift"] == 0
    db = (await env.db_orders())[order]
    assert_db_matches_sim(db, (await env.sim_orders())[order])
    async with env.pool.acquire() as conn:
        size = await conn.fetchval("SELECT size FROM positions WHERE symbol = 'BTCUSDT'")
    assert size == Decimal("0.005")


async def test_the_periodic_timer_reconciles_and_stops_cleanly(env: Env) -> None:
    order = await env.place_limit("BTCUSDT")
    await env.admin_post("/sim/fill", {"orderId": order})
    timer = PeriodicReconciler(env.reconciler, interval_seconds=0.05)
    await timer.start()
    try:

        def ran() -> bool:
            report = env.reconciler.last_report
            return report is not None and report.trigger == "periodic"

        await eventually(ran, timeout=10, what="a periodic sync")
    finally:
        await timer.stop()
    assert_db_matches_sim((await env.db_orders())[order], (await env.sim_orders())[order])


async def test_startup_reconciliation_retries_then_reports_an_unreachable_exchange(
    env: Env,
) -> None:
    order = await env.place_limit("BTCUSDT")
    await env.admin_post("/sim/fill", {"orderId": order})
    await env.admin_post(
        "/sim/faults",
        {
            "target": "rest",
            "endpoint": "/v5/order/realtime",
            "kind": "http_status",
            "params": {"status": 503},
        },
    )
    with pytest.raises(RuntimeError, match="start-up reconciliation incomplete"):
        await env.reconciler.startup(attempts=2, retry_delay_seconds=0.01)
    report = env.reconciler.last_report
    assert report is not None
    assert report.errors
    assert report.orders_changed == 0
    # nothing was concluded from the failed queries
    assert (await env.db_orders())[order]["status"] == "pending"
    assert report.missing_on_exchange == 0


async def test_an_operator_cannot_cancel_an_order_of_the_other_mode(env: Env) -> None:
    async with env.pool.acquire() as conn:
        paper = await conn.fetchval(
            "INSERT INTO orders (order_link_id, order_id, symbol, side, order_type, qty, price,"
            " status, is_dry_run) VALUES ('om-paper-1', 'paper-1', 'BTCUSDT', 'Buy', 'Limit',"
            " 0.01, 50000, 'pending', true) RETURNING id::text"
        )
    response = await env.api.client.post(f"/api/v1/orders/{paper}/cancel")
    assert response.status_code == 409
    assert "dry-run" in response.json()["error"]
