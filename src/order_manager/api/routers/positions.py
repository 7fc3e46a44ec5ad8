"""`GET /positions`, `GET /positions/{asset}`, `GET /positions/{asset}/history`.

Positions are served from the database (the tracker keeps them current from every fill, mark
prices from the exchange's position pushes; `validated_at`/`drift_detected_at` say when they
were last checked against the exchange). In hedge mode a symbol has two books (position_idx 1
= long, 2 = short), so `/positions/{asset}` returns a list.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query

from order_manager.api import schemas
from order_manager.api.errors import ApiError
from order_manager.api.routers import params

if TYPE_CHECKING:
    from order_manager.api.routers.deps import ServicesView

MAX_PAGE_SIZE = 500


def router(services: ServicesView) -> APIRouter:
    api = APIRouter(tags=["positions"])

    @api.get("/positions", response_model=schemas.PositionList)
    async def list_positions(
        include_flat: Annotated[bool, Query(description="also books with size 0")] = False,
        dry_run: Annotated[bool | None, Query()] = None,
    ) -> schemas.PositionList:
        rows = await services.queries.list_positions(
            symbol=None, include_flat=include_flat, is_dry_run=dry_run
        )
        return schemas.PositionList(items=[schemas.Position.model_validate(r) for r in rows])

    @api.get("/positions/{asset}", response_model=schemas.AssetPositions)
    async def asset_positions(
        asset: str, dry_run: Annotated[bool | None, Query()] = None
    ) -> schemas.AssetPositions:
        params.asset(asset)
        rows = await services.queries.list_positions(
            symbol=asset, include_flat=True, is_dry_run=dry_run
        )
        if not rows:
            raise ApiError(
                404, "POSITION_NOT_FOUND", f"no position book for {asset}", {"asset": asset}
            )
        return schemas.AssetPositions(
            asset=asset, items=[schemas.Position.model_validate(r) for r in rows]
        )

    @api.get("/positions/{asset}/history", response_model=schemas.SnapshotPage)
    async def position_history(
        asset: str,
        since: Annotated[datetime | None, Query(alias="from")] = None,
        until: Annotated[datetime | None, Query(alias="to")] = None,
        dry_run: Annotated[bool | None, Query()] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> schemas.SnapshotPage:
        """Snapshots (periodic, on reconciliation, on drift correction), newest first."""
        params.asset(asset)
        params.time_range(since, until)
        rows, total = await services.queries.position_history(
            asset,
            since=since,
            until=until,
            is_dry_run=dry_run,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        return schemas.SnapshotPage(
            asset=asset,
            items=[schemas.PositionSnapshot.model_validate(r) for r in rows],
            pagination=params.pagination(page, page_size, total),
        )

    return api
