"""The FastAPI application: probes, metrics, and the key-protected `/api/v1` routers.

`create_app(container)` knows the service only through the small `ApiContainer` protocol:
settings, probes, extra routers to mount under `/api/v1`, and `start`/`stop` hooks that the
application's lifespan calls (so uvicorn's graceful shutdown on SIGTERM also stops the
service's components). `bootstrap.py` provides the real container; tests can provide theirs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_manager.api.auth import PROTECTED_PREFIX, ApiKeyMiddleware
from order_manager.api.errors import install_error_handlers
from order_manager.api.probes import Probes, probes_router
from order_manager.config import Settings

HTTP_REQUESTS = Counter(
    "om_http_requests_total",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "om_http_request_duration_seconds",
    "HTTP request handling time, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def service_version() -> str:
    try:
        return package_version("order-manager")
    except PackageNotFoundError:
        return "0+unknown"


class ApiContainer(Protocol):
    """What the API needs from the running service."""

    settings: Settings
    probes: Probes

    @property
    def api_routers(self) -> Sequence[APIRouter]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MetricsMiddleware:
    """Count and time every HTTP request by route *template* (bounded label cardinality)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - start)


def _info_router(container: ApiContainer, version: str) -> APIRouter:
    router = APIRouter(tags=["service"])

    @router.get("/info")
    async def info() -> dict[str, Any]:
        """Which mode the service runs in (needs the API key)."""
        s = container.settings
        return {
            "service": "order-manager",
            "version": version,
            "bybit_environment": s.bybit_environment.value,
            "dry_run": s.dry_run,
            "event_source": s.event_source.value,
            "category": s.category.value,
            "position_mode": s.position_mode.value,
            "startup_complete": container.probes.startup_complete,
        }

    return router


def create_app(container: ApiContainer) -> FastAPI:
    version = service_version()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await container.start()
        try:
            yield
        finally:
            await container.stop()

    app = FastAPI(
        title="Order Manager",
        version=version,
        lifespan=lifespan,
        docs_url=f"{PROTECTED_PREFIX}/docs",
        openapi_url=f"{PROTECTED_PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.container = container
    install_error_handlers(app)
    app.include_router(probes_router(container.probes, version))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(_info_router(container, version), prefix=PROTECTED_PREFIX)
    for router in container.api_routers:
        app.include_router(router, prefix=PROTECTED_PREFIX)
    # Added last = outermost: the key check runs before routing, metrics see every answer.
    app.add_middleware(ApiKeyMiddleware, api_key=container.settings.effective_api_key)
    app.add_middleware(MetricsMiddleware)
    return app
