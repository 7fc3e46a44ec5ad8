"""Account-wide risk limits hold for signals of different symbols processed at the same time.

Lanes of different symbols run concurrently. Here both signals read their account state before
either has written anything: the simulator holds every position read for 300 ms, so both lanes'
database reads are done long before either plan is approved. Each signal alone fits the limit,
both together do not: exactly one may reach the exchange, the other is refused before any call
(real PostgreSQL, real simulator).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from bybit_sim.config import SimConfig
from order_manager.domain.rejections import RejectCode
from order_manager.domain.risk import RiskLimits
from order_manager.services.ports.processing import SignalExecuted, SignalRejected
from tests.integration.execution.conftest import Env, new_signal

pytestmark = pytest.mark.integration

BOTH_READ_FIRST_MS = 300
INITIAL = SimConfig().initial_wallet["USDT"]


async def process_side_by_side(
    env: Env, limits: RiskLimits, amounts: tuple[str, str]
) -> list[object]:
    processor = env.processor(limits=limits)
    signals = [
        await new_signal(env, asset=asset, amount=amount, confidence=0.9)
        for asset, amount in zip(("BTCUSDT", "ETHUSDT"), amounts, strict=True)
    ]
    await env.admin_post(
        "/sim/faults",
        {
            "target": "rest",
            "endpoint": "/v5/position/list",
            "kind": "delay",
            "params": {"ms": BOTH_READ_FIRST_MS},
            "count": 10,
        },
    )
    outcomes = await asyncio.gather(
        *(processor.process(s, f"t-{s.asset}", is_new=True) for s in signals)
    )
    assert processor.in_flight.held == 0  # nothing left behind once both are done
    return list(outcomes)


def one_executed_one_refused(outcomes: list[object], code: RejectCode) -> SignalRejected:
    executed = [o for o in outcomes if isinstance(o, SignalExecuted)]
    refused = [o for o in outcomes if isinstance(o, SignalRejected)]
    assert len(executed) == 1 and len(refused) == 1, outcomes
    assert refused[0].rejection.code is code, refused[0]
    assert any("concurrent signal" in note for note in refused[0].notes), refused[0].notes
    return refused[0]


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        (RiskLimits(max_total_exposure=Decimal("1500")), RejectCode.MAX_TOTAL_EXPOSURE),
        (RiskLimits(max_daily_volume=Decimal("1500")), RejectCode.MAX_DAILY_VOLUME),
    ],
    ids=["total_exposure", "daily_volume"],
)
async def test_two_symbols_at_once_cannot_both_take_the_last_headroom(
    env: Env, limits: RiskLimits, code: RejectCode
) -> None:
    outcomes = await process_side_by_side(env, limits, ("1000", "1000"))
    one_executed_one_refused(outcomes, code)
    assert len(await env.sim_orders()) == 1


async def test_two_symbols_at_once_cannot_both_spend_the_balance(env: Env) -> None:
    """150 USDT left in the wallet, leverage 10 (the simulator's default): a 1 000 USDT buy
    needs 100 of margin plus a 1 USDT fee reserve — one fits, two do not."""
    limits = RiskLimits(max_order_size_ratio=None)
    await env.admin_post("/sim/withdraw", {"coin": "USDT", "amount": str(INITIAL - 150)})
    outcomes = await process_side_by_side(env, limits, ("1000", "1000"))
    one_executed_one_refused(outcomes, RejectCode.INSUFFICIENT_BALANCE)
    assert len(await env.sim_orders()) == 1


async def test_signals_of_two_symbols_that_fit_together_both_execute(env: Env) -> None:
    outcomes = await process_side_by_side(
        env, RiskLimits(max_total_exposure=Decimal("2500")), ("1000", "1000")
    )
    assert all(isinstance(o, SignalExecuted) for o in outcomes), outcomes
    assert len(await env.sim_orders()) == 2
