"""`POST /sync` (manual reconciliation, spec FR-016/SC-007) and `GET /sync` (the last report).

One sync at a time: a request while another sync runs (manual, periodic, after a reconnect or
at start-up) answers **409 SYNC_IN_PROGRESS** with what is running — that is the manual sync's
rate limit, and it keeps two runs from fetching and applying the same orders twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Body

from order_manager.api import schemas
from order_manager.api.errors import ApiError
from order_manager.services.reconciler import Reconciler, SyncInProgressError

if TYPE_CHECKING:
    from order_manager.api.routers.deps import ServicesView


def _reconciler(services: ServicesView) -> Reconciler:
    if services.reconciler is None:
        raise ApiError(503, "SYNC_UNAVAILABLE", "reconciliation is not available in this mode")
    return services.reconciler


def router(services: ServicesView) -> APIRouter:
    api = APIRouter(tags=["sync"])

    @api.post("/sync", response_model=schemas.SyncReport)
    async def sync(
        request: Annotated[schemas.SyncRequest | None, Body()] = None,
    ) -> schemas.SyncReport:
        """Compare our orders (and positions) with the exchange and apply what differs."""
        body = request or schemas.SyncRequest()
        reconciler = _reconciler(services)
        try:
            report = await reconciler.sync(
                trigger="manual", scope=body.scope, asset=body.asset, wait=False
            )
        except SyncInProgressError as exc:
            running = exc.running
            raise ApiError(
                409,
                "SYNC_IN_PROGRESS",
                f"a {running.trigger} sync is already running; retry when it has finished",
                {
                    "trigger": running.trigger,
                    "scope": running.scope,
                    "asset": running.asset,
                    "started_at": running.started_at.isoformat(),
                },
                headers={"Retry-After": "1"},
            ) from exc
        return schemas.SyncReport.model_validate(report.as_dict())

    @api.get("/sync", response_model=schemas.SyncReport)
    async def last_sync() -> schemas.SyncReport:
        """The most recent reconciliation report of this process."""
        report = _reconciler(services).last_report
        if report is None:
            raise ApiError(404, "NO_SYNC_YET", "no reconciliation has finished yet")
        return schemas.SyncReport.model_validate(report.as_dict())

    return api
