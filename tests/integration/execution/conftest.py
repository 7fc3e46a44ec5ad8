"""Fixtures of the execution tests: a pool on a fresh database, signal rows."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
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
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.adapters.paper.exchange import PaperExchange
from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.domain.enums import Category, OrderType, Side, TimeInForce
from order_manager.domain.orders import OrderState
from order_manager.domain.planner import PlannerConfig
from order_manager.domain.plans import order_link_id
from order_manager.domain.risk import RiskLimits
from order_manager.domain.signals import TradingSignal, parse_signal
from order_manager.services.processor import Processor, ProcessorConfig
from order_manager.services.tracker import Tracker
from tests.helpers import database_fails


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=8)
    yield p
    await p.close()


async def insert_signal(pool: asyncpg.Pool, signal_id: str | None = None) -> str:
    """A `signals` row (status processing), as the intake writes it before processing."""
    sid = signal_id or str(uuid.uuid4())
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO signals (signal_id, status, raw) VALUES ($1::uuid, 'processing', $2)"
            " ON CONFLICT DO NOTHING",
            sid,
            json.loads('{"test": true}'),
        )
    return sid


# ------------------------------------------------------------------------------ pipeline


@dataclasses.dataclass
class Env:
    """The execution half wired to a real database and a running simulator."""

    pool: asyncpg.Pool
    uow: PostgresUnitOfWorkFactory
    rest: BybitRestClient
    gateway: BybitGateway
    admin: httpx.AsyncClient
    sim_url: str

    def processor(self, **overrides: Any) -> Processor:
        planner = overrides.pop("planner", PlannerConfig())
        limits = overrides.pop("limits", RiskLimits())
        return Processor(self.uow, self.gateway, ProcessorConfig(planner, limits), **overrides)

    async def state(self) -> dict[str, Any]:
        response = await self.admin.get("/sim/state")
        response.raise_for_status()
        return dict(response.json())

    async def sim_orders(self) -> list[dict[str, Any]]:
        return list((await self.state())["orders"])

    async def admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.admin.post(path, json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def fail_next(self, *endpoints: str, kind: str = "http_status") -> None:
        """The next call of each REST endpoint fails on the simulator (``http_status``: a
        503 page, not executed; ``timeout_after_execute``: executed, never answered)."""
        for endpoint in endpoints:
            rule: dict[str, Any] = {"target": "rest", "endpoint": endpoint, "kind": kind}
            if kind == "http_status":
                rule["params"] = {"status": 503}
            await self.admin_post("/sim/faults", {**rule, "count": 1})

    async def fail_next_lookups(self) -> None:
        """The next order lookup (realtime, then history) fails: an outcome stays unknown."""
        await self.fail_next("/v5/order/realtime", "/v5/order/history")

    @contextlib.asynccontextmanager
    async def process_dies_writing_intents(self) -> AsyncIterator[None]:
        """Inside: any INSERT into ``orders`` fails on the real database — a stand-in for the
        process dying right before its intents' commit (what ran before it stays done)."""
        async with self.database_fails("BEFORE INSERT ON orders FOR EACH ROW"):
            with pytest.raises(Exception, match="the process died here"):
                yield

    def database_fails(self, when: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Inside: the real database refuses every write ``when`` names (`tests.helpers`)."""
        return database_fails(self.pool, when)

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return list(await conn.fetch(query, *args))


def client_config(url: str, **kwargs: Any) -> BybitClientConfig:
    return BybitClientConfig.for_simulator(
        url,
        retry=kwargs.pop(
            "retry", RetryConfig(max_attempts=3, base_delay=0.01, multiplier=2.0, max_delay=0.05)
        ),
        read_timeout=kwargs.pop("read_timeout", 2.0),
        **kwargs,
    )


@contextlib.asynccontextmanager
async def open_env(
    pool: asyncpg.Pool, sim_url: str, categories: tuple[str, ...] = ("linear", "spot")
) -> AsyncIterator[Env]:
    """An `Env` on ``pool`` and the simulator at ``sim_url`` (its own client and gateway)."""
    async with (
        BybitRestClient(client_config(sim_url), metrics=metrics_for(CollectorRegistry())) as rest,
        httpx.AsyncClient(base_url=sim_url, timeout=10) as admin,
    ):
        cache = InstrumentCache(rest, list(categories))
        await cache.refresh()
        uow = PostgresUnitOfWorkFactory(pool)
        yield Env(pool, uow, rest, BybitGateway(rest, cache), admin, sim_url)


@pytest.fixture
async def env(pool: asyncpg.Pool, sim: Any) -> AsyncIterator[Env]:
    async with open_env(pool, sim.url) as opened:
        yield opened
        await opened.admin.delete("/sim/faults")


def make_signal(
    *,
    side: str = "buy",
    amount: str = "1000",
    asset: str = "BTCUSDT",
    confidence: float = 0.9,
    signal_id: str | None = None,
    **extra: Any,
) -> TradingSignal:
    body = {
        "signal_id": signal_id or str(uuid.uuid4()),
        "signal_type": side,
        "asset": asset,
        "amount": amount,
        "confidence": confidence,
        "timestamp": datetime.now(UTC).isoformat(),
        "strategy_id": "test",
        **extra,
    }
    parsed = parse_signal(json.dumps(body))
    assert isinstance(parsed, TradingSignal), parsed
    return parsed


async def new_signal(env: Env, **kwargs: Any) -> TradingSignal:
    signal = make_signal(**kwargs)
    await insert_signal(env.pool, signal.signal_id)
    return signal


async def add_intent(env: Env, signal: TradingSignal, created_at: datetime) -> str:
    """A committed write-ahead intent of ``signal`` (leg 1: a 0.015 BTCUSDT market buy) created
    at ``created_at`` and never sent; returns its orderLinkId."""
    link = order_link_id("om", signal.signal_id, 1)
    intent = OrderState.submitting(
        order_link_id=link,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=Decimal("0.015"),
        price=None,
        time_in_force=TimeInForce.IOC,
        created_at=created_at,
    )
    async with env.uow() as uow:
        await uow.orders.add_intent(
            intent, signal_id=signal.signal_id, leg=1, trace_id="t", is_dry_run=False
        )
        await uow.commit()
    return link


@contextlib.asynccontextmanager
async def one_attempt_processor(
    env: Env, planner: PlannerConfig | None = None
) -> AsyncIterator[Processor]:
    """A processor whose client makes one attempt per call and waits 0.5 s for an answer."""
    config = client_config(env.sim_url, retry=RetryConfig(max_attempts=1), read_timeout=0.5)
    async with BybitRestClient(config, metrics=metrics_for(CollectorRegistry())) as rest:
        cache = InstrumentCache(rest, ["linear"])
        await cache.refresh()
        yield Processor(
            env.uow, BybitGateway(rest, cache), ProcessorConfig(planner or PlannerConfig())
        )


async def drain_into(tracker: Tracker, paper: PaperExchange) -> None:
    """Hand the paper exchange's pending updates to the (paper) tracker, as the feed does."""
    batch = []
    while not paper.updates.empty():
        item = paper.updates.get_nowait()
        batch.append((item["topic"], [item["data"]], None))
    await tracker.handle_many(batch)
