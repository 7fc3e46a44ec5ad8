"""The tracking component as bootstrap would run it: fills -> events on the configured queues."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from order_manager.adapters.bybit.config import BybitClientConfig
from order_manager.adapters.bybit.rest import BybitRestClient, OrderRequest
from order_manager.bootstrap.tracking import TrackingComponent
from order_manager.config import load_settings
from tests.integration.tracking.amqp_collect import Collector

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_component_tracks_and_publishes_to_configured_queues(
    sim: Any, pool: asyncpg.Pool, db_url: str, amqp_url: str
) -> None:
    settings = load_settings(
        environ={
            "ORDERMANAGER_DATABASE_URL": db_url,
            "ORDERMANAGER_RABBITMQ_URL": amqp_url,
            "ORDERMANAGER_ORDER_EVENTS_QUEUE": "test.order_events",
            "ORDERMANAGER_POSITION_EVENTS_QUEUE": "test.position_events",
            "ORDERMANAGER_OUTBOX_POLL_INTERVAL_SECONDS": "3600",
        }
    )
    config = BybitClientConfig.for_simulator(sim.url)
    component = TrackingComponent(settings, pool, config)
    orders = Collector(amqp_url, "test.order_events")
    positions = Collector(amqp_url, "test.position_events")
    await orders.start()
    await positions.start()
    await component.start()
    try:
        async with BybitRestClient(config) as rest:
            created = await rest.create_order(
                OrderRequest(
                    category="linear",
                    symbol="BTCUSDT",
                    side="Buy",
                    order_type="Market",
                    qty=Decimal("0.004"),
                    order_link_id="manual-wiring-1",
                )
            )
        got = await orders.wait_for(
            lambda ms: any(m.body["event_type"] == "filled" for m in ms), what="filled event"
        )
        pos = await positions.wait_for(lambda ms: bool(ms), what="position event")
        assert component.tracker is not None
        assert await component.validate_positions() == 0  # book equals the exchange
    finally:
        await component.stop()
        await orders.close()
        await positions.close()
    filled = next(m for m in got if m.body["event_type"] == "filled")
    assert filled.body["order"]["order_id"] == created.order_id
    assert filled.body["order"]["filled_quantity"] == "0.004"
    assert pos[-1].body["position"]["size"] == "0.004"
