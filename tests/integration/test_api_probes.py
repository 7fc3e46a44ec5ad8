"""REST probes, API-key guard and error shape, on the real container: real PostgreSQL, real
RabbitMQ (a fresh vhost), and the real `bybit_sim` as the exchange. The last test runs the
`order-manager run` process and stops it with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Query

from bybit_sim.server import SimServer
from order_manager.api.app import create_app
from order_manager.api.probes import Probes
from order_manager.bootstrap import Container, StartupError, build_container
from order_manager.config import Settings, load_settings
from tests.helpers import eventually, free_port

pytestmark = pytest.mark.integration

API_KEY = "probe-test-key-0123456789"


def settings_for(db_url: str, amqp_url: str, rest_url: str) -> Settings:
    return load_settings(
        environ={
            "ORDERMANAGER_DATABASE_URL": db_url,
            "ORDERMANAGER_RABBITMQ_URL": amqp_url,
            "ORDERMANAGER_BYBIT_REST_URL": rest_url,
            "ORDERMANAGER_API_KEY": API_KEY,
            "ORDERMANAGER_STARTUP_TIMEOUT_SECONDS": "10",
        }
    )


def _test_router() -> APIRouter:
    router = APIRouter()

    @router.get("/echo")
    async def echo(page_size: int = Query(50, le=500)) -> dict[str, int]:
        return {"page_size": page_size}

    @router.get("/boom")
    async def boom() -> dict[str, Any]:
        raise RuntimeError("secret internals /srv/app.py line 42")

    return router


@dataclass
class Running:
    container: Container
    client: httpx.AsyncClient
    reconciliation_gate: asyncio.Event


@pytest.fixture
async def running(db_url: str, amqp_url: str, sim: SimServer) -> AsyncIterator[Running]:
    """The service's container started for real, with a start-up task the test controls and a
    router that exercises the error handlers; wired like `build_container` does it."""
    container = Container(
        settings=settings_for(db_url, amqp_url, sim.url),
        probes=Probes(),
        api_routers=[_test_router()],
    )
    gate = asyncio.Event()
    container.add_startup_task("reconciliation", gate.wait)
    container.app = create_app(container)
    await container.start()
    transport = httpx.ASGITransport(app=container.app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://om") as client:
            yield Running(container, client, gate)
    finally:
        gate.set()
        await container.stop()


async def test_health_and_live_need_no_key(
    running: Running,
) -> None:
    client = running.client
    live = await client.get("/live")
    assert live.status_code == 200
    assert live.json() == {"status": "alive"}
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "exchange"}
    assert all(check["ok"] for check in body["checks"].values())


async def test_ready_waits_for_startup_tasks(
    running: Running,
) -> None:
    client = running.client
    before = await client.get("/ready")
    assert before.status_code == 503
    assert "start-up not complete" in before.json()["reasons"]
    running.reconciliation_gate.set()

    async def is_ready() -> bool:
        return (await client.get("/ready")).status_code == 200

    await eventually(is_ready, timeout=15, what="/ready to answer 200")
    assert (await client.get("/ready")).json()["status"] == "ready"


async def test_ready_is_503_when_the_exchange_is_unreachable(db_url: str, amqp_url: str) -> None:
    container = build_container(settings_for(db_url, amqp_url, f"http://127.0.0.1:{free_port()}"))
    await container.start()
    try:
        transport = httpx.ASGITransport(app=container.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://om") as client:

            async def startup_done() -> bool:
                return container.probes.startup_complete

            await eventually(startup_done, timeout=15, what="start-up tasks (none) to finish")
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["reasons"] == ["exchange check failing"]
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            assert health.json()["checks"]["exchange"]["ok"] is False
    finally:
        await container.stop()


async def test_start_fails_cleanly_when_a_dependency_is_unreachable(db_url: str) -> None:
    settings = load_settings(
        environ={
            "ORDERMANAGER_DATABASE_URL": db_url,
            "ORDERMANAGER_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
            "ORDERMANAGER_STARTUP_TIMEOUT_SECONDS": "0.5",
        }
    )
    container = build_container(settings)
    with pytest.raises(StartupError, match=re.escape("RabbitMQ at amqp://guest:***@127.0.0.1")):
        await container.start()
    assert container.db_pool is None  # the pool opened before the failure was closed


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
@pytest.mark.parametrize("path", ["/api/v1/info", "/api/v1/orders", "/api/v1"])
async def test_api_v1_needs_the_key(running: Running, path: str, headers: dict[str, str]) -> None:
    client = running.client
    response = await client.get(path, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "UNAUTHORIZED"
    assert set(body) == {"error", "code", "details"}


async def test_api_v1_with_the_key(running: Running) -> None:
    client = running.client
    info = await client.get("/api/v1/info", headers={"X-API-Key": API_KEY})
    assert info.status_code == 200
    assert info.json()["bybit_environment"] == "sim"
    missing = await client.get("/api/v1/nothing-here", headers={"x-api-key": API_KEY})
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


async def test_validation_errors_are_422_and_name_the_field(
    running: Running,
) -> None:
    client = running.client
    response = await client.get(
        "/api/v1/echo", params={"page_size": 501}, headers={"X-API-Key": API_KEY}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "query page_size" in body["error"]
    assert "less than or equal to 500" in body["error"]
    assert body["details"]["errors"][0]["field"] == "query page_size"


async def test_unexpected_errors_are_500_without_internals(
    running: Running,
) -> None:
    client = running.client
    response = await client.get("/api/v1/boom", headers={"X-API-Key": API_KEY})
    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text


async def test_metrics_are_exposed(running: Running) -> None:
    client = running.client
    await client.get("/live")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'om_http_requests_total{method="GET",route="/live",status="200"}' in metrics.text


def test_run_serves_health_and_stops_on_sigterm(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERMANAGER_")}
    env |= {
        "ORDERMANAGER_DATABASE_URL": db_url,
        "ORDERMANAGER_RABBITMQ_URL": os.environ["ORDERMANAGER_RABBITMQ_URL"],
        "ORDERMANAGER_PORT": str(port),
        "ORDERMANAGER_LOG_FORMAT": "json",
    }
    script = Path(sys.executable).parent / "order-manager"
    log_path = tmp_path / "service.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [str(script), "run"], cwd=tmp_path, env=env, stdout=log_file, stderr=log_file
        )
        try:
            deadline = time.monotonic() + 30
            status = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert status == 200, log_path.read_text()
            process.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM (or 0) is a
            # clean stop; the "stopped" log line below proves the components were closed.
            assert process.wait(timeout=30) in (0, -signal.SIGTERM), log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log_path.read_text()
    assert '"event": "stopped"' in text
    assert "om:om@" not in text  # the database password never reaches the log
