"""The real container mounts the `/api/v1` routers at build time and binds their services at
start-up: before `bind` they answer 503 STARTING, after it they serve the database."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from order_manager.adapters.postgres.queries_repo import PgReadQueries
from order_manager.api.routers import ApiServices
from order_manager.bootstrap import build_container
from tests.integration.api.support import API_KEY, api_settings, seed_order

pytestmark = pytest.mark.integration


async def test_routes_answer_503_until_the_services_are_bound(
    pool: asyncpg.Pool, db_url: str
) -> None:
    container = build_container(api_settings(db_url))
    assert container.app is not None
    order = await seed_order(pool)
    transport = httpx.ASGITransport(app=container.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://om.test", headers={"X-API-Key": API_KEY}
    ) as client:
        early = await client.get("/api/v1/orders")
        assert early.status_code == 503
        assert early.json()["code"] == "STARTING"

        container.api_services.bind(ApiServices(queries=PgReadQueries(pool)))
        listed = await client.get("/api/v1/orders")
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["items"]] == [order["id"]]
        no_sync = await client.post("/api/v1/sync", json={})
        assert no_sync.status_code == 503
        assert no_sync.json()["code"] == "SYNC_UNAVAILABLE"
