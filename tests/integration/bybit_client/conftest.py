"""Fixtures for the Bybit client's integration tests: a client wired to the `sim` simulator and
a small admin helper for its `/sim/` API (faults, drops, fills)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from order_manager.adapters.bybit.config import BybitClientConfig, RetryConfig, WebSocketConfig
from order_manager.adapters.bybit.metrics import BybitMetrics, metrics_for
from order_manager.adapters.bybit.rest import BybitRestClient


class SimAdmin:
    """Thin client of the simulator's admin API."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def fault(self, **rule: Any) -> str:
        response = await self.http.post("/sim/faults", json=rule)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def clear_faults(self) -> None:
        response = await self.http.delete("/sim/faults")
        assert response.status_code == 200, response.text

    async def drop_ws(self, stream: str = "private") -> int:
        response = await self.http.post("/sim/ws/drop", json={"stream": stream})
        assert response.status_code == 200, response.text
        return int(response.json()["dropped"])

    async def state(self) -> dict[str, Any]:
        response = await self.http.get("/sim/state")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def fault_rule(self, rule_id: str) -> dict[str, Any]:
        response = await self.http.get("/sim/faults")
        assert response.status_code == 200, response.text
        return next(r for r in response.json()["rules"] if r["id"] == rule_id)


@pytest.fixture
async def sim_admin(sim: Any) -> AsyncIterator[SimAdmin]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as http:
        admin = SimAdmin(http)
        yield admin
        await admin.clear_faults()


@pytest.fixture
def metrics() -> BybitMetrics:
    """Metrics in a private registry, so a test can count exactly its own requests."""
    return metrics_for(CollectorRegistry())


@pytest.fixture
def bybit_config(sim: Any) -> BybitClientConfig:
    return BybitClientConfig.for_simulator(
        sim.url,
        retry=RetryConfig(max_attempts=5, base_delay=0.02, multiplier=2.0, max_delay=0.2),
        read_timeout=2.0,
        websocket=WebSocketConfig(ping_interval=5.0, pong_timeout=5.0),
    )


@pytest.fixture
async def client(
    bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> AsyncIterator[BybitRestClient]:
    async with BybitRestClient(bybit_config, metrics=metrics) as rest:
        yield rest


def with_changes(config: BybitClientConfig, **changes: Any) -> BybitClientConfig:
    return dataclasses.replace(config, **changes)


def counter_value(metrics: BybitMetrics, name: str, **labels: str) -> float:
    """Sum of a counter's samples whose labels include ``labels``."""
    counter = getattr(metrics, name)
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total
