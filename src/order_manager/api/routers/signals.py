"""`GET /signals/{signal_id}`: the signal's outcome, reason and the orders it created or touched."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from fastapi import APIRouter

from order_manager.api import schemas
from order_manager.api.errors import ApiError

if TYPE_CHECKING:
    from order_manager.api.routers.deps import ServicesView


def router(services: ServicesView) -> APIRouter:
    api = APIRouter(tags=["signals"])

    @api.get("/signals/{signal_id}", response_model=schemas.Signal)
    async def get_signal(signal_id: UUID) -> schemas.Signal:
        record = await services.queries.get_signal(str(signal_id))
        if record is None:
            raise ApiError(
                404, "SIGNAL_NOT_FOUND", f"no signal {signal_id}", {"signal_id": str(signal_id)}
            )
        return schemas.Signal.model_validate(record)

    return api
