"""`GET /orders` (filters, sorting, pagination) and `GET /orders/{id}` (any of our three ids)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from order_manager.api import schemas
from order_manager.api.errors import ApiError
from order_manager.api.routers import params
from order_manager.domain.orders import OrderStatus
from order_manager.services.ports.queries import ORDER_SORTS

if TYPE_CHECKING:
    from order_manager.api.routers.deps import ServicesView

#: `status=active` is shorthand for every non-terminal status
ACTIVE = "active"
_STATUSES = {s.value for s in OrderStatus}
_ACTIVE_STATUSES = tuple(s.value for s in OrderStatus if s.is_open)
_SIDES = {"buy": "Buy", "sell": "Sell"}
MAX_PAGE_SIZE = 500


def parse_statuses(raw: str | None) -> tuple[str, ...]:
    """`status=filled,cancelled` (comma-separated, case-insensitive) or `status=active`."""
    return params.statuses(raw, _STATUSES, {ACTIVE: _ACTIVE_STATUSES})


def parse_side(raw: str | None) -> str | None:
    if raw is None:
        return None
    side = _SIDES.get(raw.strip().lower())
    if side is None:
        params.invalid("side", f"unknown side {raw!r}; allowed: buy, sell")
    return side


def router(services: ServicesView) -> APIRouter:
    api = APIRouter(tags=["orders"])

    @api.get("/orders", response_model=schemas.OrderPage)
    async def list_orders(
        asset: Annotated[str | None, Query(description="symbol, e.g. BTCUSDT")] = None,
        status: Annotated[
            str | None, Query(description="comma-separated statuses, or 'active'")
        ] = None,
        signal_id: Annotated[UUID | None, Query()] = None,
        side: Annotated[str | None, Query(description="buy or sell")] = None,
        created_from: Annotated[
            datetime | None, Query(alias="from", description="created at or after (ISO 8601)")
        ] = None,
        created_to: Annotated[
            datetime | None, Query(alias="to", description="created before (ISO 8601)")
        ] = None,
        dry_run: Annotated[bool | None, Query(description="only dry-run / only live")] = None,
        sort: Annotated[str, Query(description=f"one of {', '.join(ORDER_SORTS)}")] = (
            "-created_at"
        ),
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> schemas.OrderPage:
        """Orders, newest first by default. Filters combine with AND."""
        if asset is not None:
            params.asset(asset, "query")
        statuses = parse_statuses(status)
        side_value = parse_side(side)
        params.time_range(created_from, created_to)
        if sort not in ORDER_SORTS:
            params.invalid("sort", f"unknown sort {sort!r}; allowed: {', '.join(ORDER_SORTS)}")
        items, total = await services.queries.list_orders(
            symbol=asset,
            statuses=statuses,
            signal_id=str(signal_id) if signal_id is not None else None,
            side=side_value,
            created_from=created_from,
            created_to=created_to,
            is_dry_run=dry_run,
            sort=sort,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        return schemas.OrderPage(
            items=[schemas.Order.model_validate(item) for item in items],
            pagination=params.pagination(page, page_size, total),
        )

    @api.get("/orders/{order_ref}", response_model=schemas.OrderDetail)
    async def get_order(order_ref: str) -> schemas.OrderDetail:
        """One order by internal id, Bybit orderId or orderLinkId, with fills and signal links."""
        record = await services.queries.find_order(order_ref)
        if record is None:
            raise ApiError(
                404,
                "ORDER_NOT_FOUND",
                f"no order with internal id, orderId or orderLinkId {order_ref!r}",
                {"id": order_ref},
            )
        return schemas.OrderDetail.model_validate(record)

    return api
