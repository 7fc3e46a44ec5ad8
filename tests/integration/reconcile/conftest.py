"""Reconciliation harness: real PostgreSQL, the real `bybit_sim`, the real Bybit client, the
tracker, the reconciler and the REST API app over them.

`StreamPump` plays the service's private-stream consumer (every data message → the tracker,
every `reconnected` event → `Reconciler.on_gap`), so tests can lose events with the
simulator's `pause` fault exactly as a production outage would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from order_manager.adapters.bybit.config import BybitClientConfig, RetryConfig
from order_manager.adapters.bybit.gateway import BybitGateway
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.metrics import metrics_for
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.bybit.queries import BybitReconcileQueries
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.adapters.postgres.operator_log_repo import PgOperatorLog
from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.queries_repo import PgReadQueries
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.api.routers import ApiServices
from order_manager.domain.enums import Category
from order_manager.domain.planner import PlannerConfig
from order_manager.domain.risk import RiskLimits
from order_manager.domain.signals import TradingSignal, parse_signal
from order_manager.services.operator import OperatorActions
from order_manager.services.processor import Processor, ProcessorConfig
from order_manager.services.reconciler import Reconciler
from order_manager.services.tracker import Tracker
from tests.integration.api.support import ApiHarness, api_harness

PREFIX = "om"
SIM_STATUS = {
    "New": "pending",
    "PartiallyFilled": "partially_filled",
    "Filled": "filled",
    "Cancelled": "cancelled",
    "PartiallyFilledCanceled": "cancelled",
    "Rejected": "rejected",
    "Untriggered": "untriggered",
}


def client_config(url: str) -> BybitClientConfig:
    return BybitClientConfig.for_simulator(
        url,
        retry=RetryConfig(max_attempts=3, base_delay=0.01, multiplier=2.0, max_delay=0.05),
        read_timeout=5.0,
    )


class StreamPump:
    """Private stream → tracker (one message = one batch); reconnect → `on_gap`."""

    def __init__(self, stream: PrivateStream, tracker: Tracker, reconciler: Reconciler) -> None:
        self.stream = stream
        self._tracker = tracker
        self._reconciler = reconciler
        self._tasks: list[asyncio.Task[None]] = []
        self._applying = asyncio.Lock()  # held while a batch is applied
        self.batches = 0
        self.reconnects = 0

    async def start(self) -> None:
        messages = self.stream.messages()
        events = self.stream.connection_events()
        await self.stream.start(wait=True)

        async def pump_messages() -> None:
            async for message in messages:
                async with self._applying:
                    await self._tracker.handle(
                        message.base_topic, message.data, message.creation_time
                    )
                    self.batches += 1

        async def pump_events() -> None:
            async for event in events:
                if event.kind == "reconnected":
                    self.reconnects += 1
                    await self._reconciler.on_gap()

        self._tasks = [asyncio.create_task(pump_messages()), asyncio.create_task(pump_events())]

    async def stop(self) -> None:
        """Stop between batches: cancelling a batch mid-commit is not what a shutdown does."""
        await self.stream.stop()
        async with self._applying:
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@dataclass
class Env:
    pool: asyncpg.Pool
    uow: PostgresUnitOfWorkFactory
    rest: BybitRestClient
    gateway: BybitGateway
    queries: BybitReconcileQueries
    tracker: Tracker
    reconciler: Reconciler
    api: ApiHarness
    admin: httpx.AsyncClient
    sim_url: str

    def processor(self) -> Processor:
        return Processor(self.uow, self.gateway, ProcessorConfig(PlannerConfig(), RiskLimits()))

    def stream_pump(self) -> StreamPump:
        stream = PrivateStream(
            client_config(self.sim_url), metrics=metrics_for(CollectorRegistry())
        )
        return StreamPump(stream, self.tracker, self.reconciler)

    async def admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.admin.post(path, json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def sim_orders(self) -> dict[str, dict[str, Any]]:
        response = await self.admin.get("/sim/state")
        response.raise_for_status()
        return {o["orderId"]: o for o in response.json()["orders"]}

    async def db_orders(self) -> dict[str, asyncpg.Record]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT o.*, o.id::text AS uuid, (SELECT count(*) FROM executions e"
                " WHERE e.order_uuid = o.id) AS fills FROM orders o"
            )
        return {r["order_id"]: r for r in rows if r["order_id"]}

    async def pause_private_stream(self) -> str:
        rule = await self.admin_post(
            "/sim/faults", {"target": "ws_private", "topic": "*", "kind": "pause"}
        )
        return str(rule["id"])

    async def new_signal(self, **kwargs: Any) -> TradingSignal:
        signal = make_signal(**kwargs)
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO signals (signal_id, status, raw) VALUES ($1::uuid, 'processing', $2)",
                signal.signal_id,
                json.loads('{"test": true}'),
            )
        return signal

    async def place_limit(
        self, asset: str = "BTCUSDT", amount: str = "1000", side: str = "buy"
    ) -> str:
        """A limit order placed the service's way (signal → processor); its Bybit orderId."""
        signal = await self.new_signal(
            asset=asset, amount=amount, side=side, metadata={"order_type": "limit"}
        )
        outcome = await self.processor().process(signal, f"t-{uuid.uuid4().hex[:8]}")
        link_ids = getattr(outcome, "order_link_ids", ())
        assert link_ids, outcome
        async with self.pool.acquire() as conn:
            order_id = await conn.fetchval(
                "SELECT order_id FROM orders WHERE order_link_id = $1", link_ids[0]
            )
        assert order_id, "the processor stored no exchange order id"
        return str(order_id)


def make_signal(
    *, side: str = "buy", amount: str = "1000", asset: str = "BTCUSDT", **extra: Any
) -> TradingSignal:
    body = {
        "signal_id": str(uuid.uuid4()),
        "signal_type": side,
        "asset": asset,
        "amount": amount,
        "confidence": 0.9,
        "timestamp": datetime.now(UTC).isoformat(),
        "strategy_id": "reconcile-test",
        **extra,
    }
    parsed = parse_signal(json.dumps(body))
    assert isinstance(parsed, TradingSignal), parsed
    return parsed


def assert_db_matches_sim(db: asyncpg.Record, sim: dict[str, Any]) -> None:
    """Status, cumulative quantity and average price agree exactly."""
    assert db["status"] == SIM_STATUS[sim["orderStatus"]], (db["status"], sim["orderStatus"])
    assert db["cum_exec_qty"] == Decimal(sim["cumExecQty"])
    if Decimal(sim["cumExecQty"]) > 0:
        assert db["avg_price"] == Decimal(sim["avgPrice"])


@pytest.fixture
async def env(db_url: str, sim: Any) -> AsyncIterator[Env]:
    pool = await create_pool(db_url, min_size=1, max_size=10)
    try:
        async with BybitRestClient(
            client_config(sim.url), metrics=metrics_for(CollectorRegistry())
        ) as rest:
            cache = InstrumentCache(rest, ["linear", "spot"])
            await cache.refresh()
            uow = PostgresUnitOfWorkFactory(pool)
            gateway = BybitGateway(rest, cache)
            exchange = BybitReconcileQueries(rest)
            tracker = Tracker(uow, link_prefix=PREFIX, queries=exchange)
            read = PgReadQueries(pool)
            reconciler = Reconciler(
                queries=read, exchange=exchange, tracker=tracker, uow_factory=uow
            )
            operator = OperatorActions(
                queries=read,
                gateway=gateway,
                exchange=exchange,
                uow_factory=uow,
                log_store=PgOperatorLog(pool),
                reconciler=reconciler,
                categories=(Category.LINEAR,),
            )
            services = ApiServices(queries=read, reconciler=reconciler, operator=operator)
            async with (
                api_harness(pool, db_url, services) as api,
                httpx.AsyncClient(base_url=sim.url, timeout=30) as admin,
            ):
                yield Env(
                    pool, uow, rest, gateway, exchange, tracker, reconciler, api, admin, sim.url
                )
                await reconciler.wait_pending()  # a reconnect-triggered sync finishes first
                await admin.delete("/sim/faults")
    finally:
        await pool.close()
