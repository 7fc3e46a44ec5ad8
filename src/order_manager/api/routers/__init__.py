"""The `/api/v1` routers (mounted by `api.app.create_app` through `ApiContainer.api_routers`).

`build_routers(services)` returns every router; each route reaches the service only through
a `ServicesView` (`deps.py`). The `X-API-Key` check happens in
`api.auth.ApiKeyMiddleware` before any of these routes runs.
"""

from __future__ import annotations

from fastapi import APIRouter

from order_manager.api.routers import operator as operator_routes
from order_manager.api.routers import orders as order_routes
from order_manager.api.routers import positions as position_routes
from order_manager.api.routers import signals as signal_routes
from order_manager.api.routers import sync as sync_routes
from order_manager.api.routers.deps import ApiServices, LateServices, ServicesView

__all__ = ["ApiServices", "LateServices", "ServicesView", "build_routers"]


def build_routers(services: ServicesView) -> list[APIRouter]:
    return [
        order_routes.router(services),
        signal_routes.router(services),
        position_routes.router(services),
        sync_routes.router(services),
        operator_routes.router(services),
    ]
