"""`bootstrap.add_api` in the real container (PostgreSQL, RabbitMQ vhost, bybit_sim): the
routes are bound after the signal pipeline opened, a pause persists across a restart and is
restored before signals are consumed, and with a tracker the start-up reconciliation runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from order_manager.adapters.bybit.queries import BybitReconcileQueries
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.bootstrap import (
    ApiWiring,
    Container,
    add_api,
    add_signal_pipeline,
    build_container,
)
from order_manager.config import load_settings
from order_manager.services.reconciler import ExchangeStateSink
from order_manager.services.tracker import Tracker
from tests.helpers import eventually
from tests.integration.api.support import API_KEY

pytestmark = pytest.mark.integration


@asynccontextmanager
async def service(
    db_url: str, amqp_url: str, sim_url: str, *, with_tracker: bool
) -> AsyncIterator[tuple[Container, ApiWiring, httpx.AsyncClient]]:
    settings = load_settings(
        environ={
            "ORDERMANAGER_DATABASE_URL": db_url,
            "ORDERMANAGER_RABBITMQ_URL": amqp_url,
            "ORDERMANAGER_BYBIT_REST_URL": sim_url,
            "ORDERMANAGER_API_KEY": API_KEY,
            "ORDERMANAGER_STARTUP_TIMEOUT_SECONDS": "10",
        }
    )
    container = build_container(settings)
    pipeline = add_signal_pipeline(container)
    tracker: Callable[[], ExchangeStateSink | None] | None = None
    if with_tracker:

        def tracker() -> ExchangeStateSink | None:
            assert pipeline.rest is not None
            return Tracker(
                PostgresUnitOfWorkFactory(container.require_db()),
                link_prefix=settings.order_link_id_prefix,
                queries=BybitReconcileQueries(pipeline.rest),
            )

    wiring = add_api(container, pipeline, tracker=tracker)
    assert [name for name, _ in container.startup_tasks][:1] == ["trading-switch"]
    # consuming starts last, after the API's start-up reconciliation; the intake drains first
    assert [name for name, _ in container.startup_tasks][-1] == "api"
    assert [name for name, _ in container.final_startup_tasks] == ["consume-signals"]
    assert container.drains == [pipeline.drain]
    assert container.app is not None
    await container.start()
    try:
        transport = httpx.ASGITransport(app=container.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://om", headers={"X-API-Key": API_KEY}
        ) as client:

            def started() -> bool:
                return container.probes.startup_complete

            await eventually(started, timeout=30, what="start-up tasks")
            yield container, wiring, client
    finally:
        await container.stop()


async def test_routes_bound_and_a_pause_survives_a_restart(
    db_url: str, amqp_url: str, sim: Any
) -> None:
    async with service(db_url, amqp_url, sim.url, with_tracker=False) as (_, wiring, client):
        listed = await client.get("/api/v1/orders")
        assert listed.status_code == 200, listed.text
        assert listed.json()["pagination"]["total_items"] == 0
        paused = await client.post("/api/v1/trading/pause", json={"reason": "drill"})
        assert paused.json()["paused"] is True
        assert wiring.pipeline.switch.paused is True  # the processor's switch
        # the live stale-order sweeper runs beside the intake (ORDERMANAGER_CANCEL_STALE_ORDERS)
        [sweeper] = wiring.pipeline.sweepers
        assert (await sweeper.sweep()).checked == 0
        no_tracker = await client.post("/api/v1/sync", json={})
        assert no_tracker.status_code == 503

    async with service(db_url, amqp_url, sim.url, with_tracker=True) as (_, wiring, client):
        assert wiring.pipeline.switch.paused is True  # restored before consuming
        state = (await client.get("/api/v1/trading")).json()
        assert (state["paused"], state["reason"]) == (True, "drill")
        assert wiring.parts is not None and wiring.parts.reconciler is not None
        last = (await client.get("/api/v1/sync")).json()
        assert last["trigger"] == "startup"
        assert last["errors"] == []
        manual = await client.post("/api/v1/sync", json={"scope": "all"})
        assert manual.status_code == 200, manual.text
