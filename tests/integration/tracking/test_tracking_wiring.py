"""The tracking component as bootstrap would run it: fills -> events on the configured queues."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from order_manager.adapters.bybit.config import BybitClientConfig
from order_manager.adapters.bybit.rest import BybitRestClient, CreateResult, OrderRequest
from order_manager.bootstrap.tracking import RECONCILING, STREAM_DOWN, TrackingComponent
from order_manager.config import load_settings
from order_manager.services.store_freshness import StoreFreshness
from tests.helpers import eventually
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
        created = await _market_buy(config, "manual-wiring-1")
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


async def _market_buy(config: BybitClientConfig, link: str) -> CreateResult:
    """An order placed outside the service (the tracker adopts it): 0.004 BTCUSDT at market."""
    async with BybitRestClient(config) as rest:
        return await rest.create_order(
            OrderRequest(
                category="linear",
                symbol="BTCUSDT",
                side="Buy",
                order_type="Market",
                qty=Decimal("0.004"),
                order_link_id=link,
            )
        )


class _RecordingFreshness(StoreFreshness):
    """Notes each change of trust with its reason."""

    def __init__(self) -> None:
        super().__init__(untrusted=(STREAM_DOWN,))
        self.changes: list[tuple[str, str]] = []

    def distrust(self, reason: str) -> None:
        self.changes.append(("distrust", reason))
        super().distrust(reason)

    def trust(self, reason: str) -> None:
        self.changes.append(("trust", reason))
        super().trust(reason)


async def test_the_store_is_trusted_only_while_the_private_stream_is_whole(
    sim: Any, pool: asyncpg.Pool, db_url: str, amqp_url: str
) -> None:
    """`ORDERMANAGER_ACCOUNT_SOURCE=store`: untrusted until the stream is subscribed, counted
    commits, untrusted from the drop until the gap reconciliation after the reconnect is done."""
    settings = load_settings(
        environ={
            "ORDERMANAGER_DATABASE_URL": db_url,
            "ORDERMANAGER_RABBITMQ_URL": amqp_url,
            "ORDERMANAGER_OUTBOX_POLL_INTERVAL_SECONDS": "3600",
        }
    )
    config = BybitClientConfig.for_simulator(sim.url)
    gaps: list[int] = []
    release = asyncio.Event()

    async def reconcile() -> None:
        gaps.append(1)
        await release.wait()

    freshness = _RecordingFreshness()
    component = TrackingComponent(settings, pool, config, on_gap=reconcile, freshness=freshness)
    assert not freshness.trusted
    await component.start()
    try:
        assert freshness.trusted  # the stream is subscribed: events from here on are seen
        before = freshness.version
        await _market_buy(config, "manual-freshness-1")
        await eventually(lambda: freshness.version > before, what="the fill's commits counted")

        async with httpx.AsyncClient(base_url=sim.url, timeout=10) as admin:
            dropped = await admin.post("/sim/ws/drop", json={"stream": "private"})
            assert dropped.status_code == 200, dropped.text
        await eventually(lambda: gaps, what="the gap reconciliation after the reconnect")
        assert not freshness.trusted  # reconciling: events may be missing
        release.set()
        await eventually(lambda: freshness.trusted, what="trusted once reconciled")
        # distrusted by the drop itself, then reconciling until the handler returned
        assert freshness.changes[:2] == [("trust", STREAM_DOWN), ("distrust", STREAM_DOWN)]
        assert freshness.changes[-1] == ("trust", RECONCILING)
    finally:
        release.set()
        await component.stop()


async def test_readiness_fails_while_a_tracking_task_has_ended(
    sim: Any, pool: asyncpg.Pool, db_url: str, amqp_url: str
) -> None:
    """Every background task of tracking (tracker, relay, positions, ...) must run for the
    service to be ready; one that ended — here the relay, cancelled from outside as a stand-in
    for a bug that ended it — turns the readiness check `tracking` red, naming it."""
    settings = load_settings(
        environ={"ORDERMANAGER_DATABASE_URL": db_url, "ORDERMANAGER_RABBITMQ_URL": amqp_url}
    )
    component = TrackingComponent(settings, pool, BybitClientConfig.for_simulator(sim.url))
    await component.start()
    try:
        component.check_alive()  # all running
        names = {task.get_name() for task in component.tasks}
        assert {"tracker", "outbox-relay", "positions"} <= names
        relay = next(task for task in component.tasks if task.get_name() == "outbox-relay")
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        with pytest.raises(RuntimeError, match="outbox-relay cancelled"):
            component.check_alive()
    finally:
        await component.stop()
    component.check_alive()  # a stopped component is not a dead one
