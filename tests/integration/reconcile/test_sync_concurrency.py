"""A sync racing live signal processing and stream events leaves every order equal to the
exchange: the tracker's row locks and the order state machine serialise the three writers."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.integration.reconcile.conftest import Env, assert_db_matches_sim

pytestmark = pytest.mark.integration

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


async def test_syncs_during_signal_processing_and_fills_converge(env: Env) -> None:
    pump = env.stream_pump()
    await pump.start()
    processor = env.processor()
    syncs: list[int] = []
    try:

        async def trade(symbol: str) -> None:
            for side in ("buy", "buy", "sell", "buy", "sell"):
                signal = await env.new_signal(
                    asset=symbol, amount="200", side=side, metadata={"order_type": "limit"}
                )
                await processor.process(signal, f"t-{uuid.uuid4().hex[:8]}")
                resting = [
                    o
                    for o in (await env.sim_orders()).values()
                    if o["orderStatus"] == "New" and o["symbol"] == symbol
                ]
                if resting:  # fill one resting order while everything else is in flight
                    await env.admin_post("/sim/fill", {"orderId": resting[0]["orderId"]})

        async def reconcile() -> None:
            for _ in range(6):
                report = await env.reconciler.sync(trigger="manual", wait=True)
                assert report.errors == []
                syncs.append(report.orders_checked)

        await asyncio.gather(*(trade(s) for s in SYMBOLS), reconcile())
        final = await env.reconciler.sync(trigger="manual", scope="all", wait=True)
    finally:
        await pump.stop()

    assert len(syncs) == 6
    assert final.errors == []
    assert final.missing_on_exchange == 0
    sim = await env.sim_orders()
    db = await env.db_orders()
    assert len(sim) >= len(SYMBOLS)
    assert set(db) == set(sim)
    for order_id, order in sim.items():
        assert_db_matches_sim(db[order_id], order)
