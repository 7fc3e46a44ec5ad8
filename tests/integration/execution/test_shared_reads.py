"""Planning reads shared by concurrent lanes, against the simulator (``SharedRead``).

Bybit allows 50 wallet and 50 position-list reads per second per account; every signal needs
both. Concurrent signals of different symbols share one request — sent after each of them
asked, so no signal plans with an answer older than its own start."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from order_manager.adapters.bybit.config import RateLimitConfig
from order_manager.adapters.bybit.gateway import BybitGateway
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.metrics import metrics_for
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.domain.enums import Category
from order_manager.services.ports.processing import SignalExecuted
from tests.helpers import eventually

from .conftest import Env, client_config, new_signal

WALLET = "/v5/account/wallet-balance"
POSITIONS = "/v5/position/list"


def sent(rest: BybitRestClient, endpoint: str) -> float:
    """Requests the client sent to ``endpoint`` (its own metrics)."""
    return sum(
        sample.value
        for metric in rest.metrics.requests.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["endpoint"] == endpoint
    )


async def test_concurrent_signals_share_the_wallet_and_position_reads(env: Env) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    processor = env.processor()
    # learn every symbol's leverage first (a flat symbol's first read asks for it once more)
    await asyncio.gather(
        *(
            env.gateway.positions(Category.LINEAR, s, trace_id="warm", include_others=True)
            for s in symbols
        )
    )
    wallet_before, positions_before = sent(env.rest, WALLET), sent(env.rest, POSITIONS)
    signals = [await new_signal(env, asset=s, amount="200") for s in symbols]
    outcomes = await asyncio.gather(
        *(processor.process(signal, f"trace-{signal.asset}") for signal in signals)
    )
    assert all(isinstance(outcome, SignalExecuted) for outcome in outcomes), outcomes
    assert len(await env.sim_orders()) == 4
    # four signals planned at once: fewer reads than signals (one per round)
    assert sent(env.rest, WALLET) - wallet_before < len(symbols)
    assert sent(env.rest, POSITIONS) - positions_before < len(symbols)


async def test_a_read_after_a_fill_sees_the_fill(env: Env) -> None:
    """Shared, never cached: the next read is a new request and shows the new position."""
    gateway = env.gateway
    before = await gateway.balances(trace_id="t")
    outcome = await env.processor().process(await new_signal(env, amount="1000"), "t-buy")
    assert isinstance(outcome, SignalExecuted), outcome
    after = await gateway.balances(trace_id="t")
    assert after["USDT"] < before["USDT"]  # margin and fee of the fill
    (position,) = [
        p for p in await gateway.positions(Category.LINEAR, "BTCUSDT", trace_id="t") if p.size
    ]
    assert position.size == Decimal("0.015")


async def test_callers_asking_while_a_read_waits_for_the_rate_limiter_join_it(sim: Any) -> None:
    """The round closes when the request leaves, not when it starts waiting for the limiter:
    with the wallet budget spent, everyone who asks before the slot frees shares one request
    (each asked before it was sent)."""
    limits = RateLimitConfig(overrides={WALLET: 1}, window_seconds=0.3, safety_margin=0.0)
    async with BybitRestClient(
        client_config(sim.url, rate_limit=limits), metrics=metrics_for(CollectorRegistry())
    ) as rest:
        gateway = BybitGateway(rest, InstrumentCache(rest, ["linear"]))
        first = await gateway.balances(trace_id="spends-the-window")
        before = sent(rest, WALLET)
        waiting = asyncio.create_task(gateway.balances(trace_id="waits"))
        await eventually(lambda: rest.limiter.pending(), what="a read held by the limiter")
        joined = [asyncio.create_task(gateway.balances(trace_id=f"joins-{i}")) for i in range(4)]
        answers = await asyncio.gather(waiting, *joined)
        assert sent(rest, WALLET) - before == 1
        assert all(answer == first for answer in answers)  # nothing traded meanwhile
        assert gateway.shared_read_counts()["wallet-balance"] == {"requests": 2, "answers": 6}
