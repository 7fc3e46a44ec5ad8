"""`/api/v1/trading/pause|resume`: the switch the processor reads, persisted across restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from order_manager.adapters.postgres.operator_log_repo import PgOperatorLog
from order_manager.adapters.postgres.queries_repo import PgReadQueries
from order_manager.api.routers import ApiServices
from order_manager.services.processor import TradingSwitch
from order_manager.services.trading_control import TradingControl
from tests.integration.api.support import ApiHarness, api_harness

pytestmark = pytest.mark.integration


@pytest.fixture
async def trading(
    pool: asyncpg.Pool, db_url: str
) -> AsyncIterator[tuple[ApiHarness, TradingSwitch]]:
    switch = TradingSwitch()
    control = TradingControl(switch, PgOperatorLog(pool))
    await control.load()
    services = ApiServices(queries=PgReadQueries(pool), trading=control)
    async with api_harness(pool, db_url, services) as harness:
        yield harness, switch


async def test_pause_and_resume_flip_the_processor_switch(
    trading: tuple[ApiHarness, TradingSwitch],
) -> None:
    api, switch = trading
    assert (await api.client.get("/api/v1/trading")).json()["paused"] is False

    paused = await api.client.post("/api/v1/trading/pause", json={"reason": "exchange incident"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    assert paused.json()["reason"] == "exchange incident"
    assert switch.paused is True

    resumed = await api.client.post("/api/v1/trading/resume")
    assert resumed.json()["paused"] is False
    assert switch.paused is False
    rows = await api.pool.fetch("SELECT action FROM audit_log WHERE kind = 'operator' ORDER BY id")
    assert [r["action"] for r in rows] == ["trading_paused", "trading_resumed"]


async def test_a_pause_survives_a_restart(
    trading: tuple[ApiHarness, TradingSwitch], pool: asyncpg.Pool
) -> None:
    api, _ = trading
    await api.client.post("/api/v1/trading/pause", json={"reason": "drill"})

    restarted = TradingSwitch()
    state = await TradingControl(restarted, PgOperatorLog(pool)).load()
    assert restarted.paused is True
    assert (state.paused, state.reason) == (True, "drill")


async def test_unknown_fields_are_refused(trading: tuple[ApiHarness, TradingSwitch]) -> None:
    api, switch = trading
    response = await api.client.post("/api/v1/trading/pause", json={"why": "x"})
    assert response.status_code == 422
    assert "body why" in response.json()["error"]
    assert switch.paused is False
