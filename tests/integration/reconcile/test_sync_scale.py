"""SC-007: a manual sync refreshes every active order within 30 s — measured with 200.

200 resting orders are put on the simulated account (half BTCUSDT, half ETHUSDT), adopted by a
first sync, then 100 of them fill while the private stream is paused. The second sync must
restore exactly those 100 and leave the other 100 untouched. The duration is printed (run
with `-s` to see it) and never asserted: timings depend on the machine.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.reconcile.conftest import Env, assert_db_matches_sim

pytestmark = pytest.mark.integration

ORDERS = 200


async def test_a_sync_of_200_active_orders(env: Env) -> None:
    placed: list[str] = []
    for i in range(ORDERS):
        symbol, price, qty = ("BTCUSDT", "30000", "0.001") if i % 2 else ("ETHUSDT", "1000", "0.1")
        body = await env.admin_post(
            "/sim/external-order",
            {
                "category": "linear",
                "symbol": symbol,
                "side": "Buy",
                "orderType": "Limit",
                "qty": qty,
                "price": price,
            },
        )
        placed.append(str(body["orderId"]))
    adopt_started = time.perf_counter()
    adopted = (await env.api.client.post("/api/v1/sync", json={})).json()
    adopt_seconds = time.perf_counter() - adopt_started
    assert adopted["unknown_to_us"] == ORDERS

    await env.pause_private_stream()
    filled = placed[::2]
    for order_id in filled:
        await env.admin_post("/sim/fill", {"orderId": order_id})

    started = time.perf_counter()
    response = await env.api.client.post("/api/v1/sync", json={"scope": "active"})
    seconds = time.perf_counter() - started

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["orders_checked"] == ORDERS
    assert report["orders_changed"] == len(filled)
    assert report["fills_added"] == len(filled)
    assert report["errors"] == []
    assert {c["order_id"] for c in report["changed"]} == set(filled)
    sim = await env.sim_orders()
    db = await env.db_orders()
    for order_id in placed:
        assert_db_matches_sim(db[order_id], sim[order_id])
    print(
        f"\nSC-007: sync of {ORDERS} active orders ({len(filled)} changed): "
        f"{seconds:.3f} s wall, report duration {report['duration_ms']:.0f} ms; "
        f"adopting {ORDERS} unknown orders: {adopt_seconds:.3f} s"
    )
