"""Operator controls: cancel one order, cancel all (kill switch), pause/resume trading.

* `POST /orders/{id}/cancel` — 200 with the order as reconciled after the cancel; 404 unknown
  id; 409 ORDER_NOT_OPEN when it is already final; 502 EXCHANGE_ERROR when Bybit refused.
* `POST /cancel-all` `{"asset": optional}` — cancels on the exchange, then reconciles.
* `GET /trading`, `POST /trading/pause` / `POST /trading/resume` `{"reason": optional}` — the
  pause persists across restarts; while paused only reducing orders are placed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Body

from order_manager.api import schemas
from order_manager.api.errors import ApiError
from order_manager.services.operator import (
    ExchangeRefusedError,
    OperatorActions,
    OrderNotFoundError,
    OrderNotOpenError,
)
from order_manager.services.reconciler import SyncInProgressError
from order_manager.services.trading_control import TradingControl

if TYPE_CHECKING:
    from order_manager.api.routers.deps import ServicesView


def _operator(services: ServicesView) -> OperatorActions:
    if services.operator is None:
        raise ApiError(503, "OPERATOR_UNAVAILABLE", "operator actions are not available")
    return services.operator


def _trading(services: ServicesView) -> TradingControl:
    if services.trading is None:
        raise ApiError(503, "TRADING_CONTROL_UNAVAILABLE", "the trading switch is not available")
    return services.trading


def router(services: ServicesView) -> APIRouter:
    api = APIRouter(tags=["operator"])

    @api.post("/orders/{order_ref}/cancel", response_model=schemas.CancelResult)
    async def cancel_order(order_ref: str) -> schemas.CancelResult:
        operator = _operator(services)
        try:
            outcome = await operator.cancel_order(order_ref)
        except OrderNotFoundError as exc:
            raise ApiError(
                404,
                "ORDER_NOT_FOUND",
                f"no order with internal id, orderId or orderLinkId {order_ref!r}",
                {"id": order_ref},
            ) from exc
        except OrderNotOpenError as exc:
            raise ApiError(
                409,
                "ORDER_NOT_OPEN",
                str(exc),
                {"id": str(exc.order["id"]), "status": str(exc.order["status"])},
            ) from exc
        except ExchangeRefusedError as exc:
            raise ApiError(
                502,
                "EXCHANGE_ERROR",
                str(exc),
                {"ret_code": exc.ret_code, "error_kind": exc.error_kind},
            ) from exc
        return schemas.CancelResult(
            order=schemas.Order.model_validate(outcome.order),
            exchange_ret_code=outcome.ret_code,
            exchange_message=outcome.message,
        )

    @api.post("/cancel-all", response_model=schemas.CancelAllResult)
    async def cancel_all(
        request: Annotated[schemas.CancelAllRequest | None, Body()] = None,
    ) -> schemas.CancelAllResult:
        body = request or schemas.CancelAllRequest()
        try:
            outcome = await _operator(services).cancel_all(body.asset)
        except SyncInProgressError as exc:  # not raised (cancel-all waits), kept for safety
            raise ApiError(409, "SYNC_IN_PROGRESS", str(exc)) from exc
        return schemas.CancelAllResult(
            asset=outcome.asset,
            requested=outcome.requested,
            cancelled=outcome.cancelled,
            failed=outcome.failed,
            sync=schemas.SyncReport.model_validate(outcome.sync.as_dict())
            if outcome.sync is not None
            else None,
        )

    @api.get("/trading", response_model=schemas.TradingState)
    async def trading_state() -> schemas.TradingState:
        return schemas.TradingState.model_validate(_trading(services).state.as_dict())

    @api.post("/trading/pause", response_model=schemas.TradingState)
    async def pause(
        request: Annotated[schemas.PauseRequest | None, Body()] = None,
    ) -> schemas.TradingState:
        state = await _trading(services).pause(request.reason if request else None)
        return schemas.TradingState.model_validate(state.as_dict())

    @api.post("/trading/resume", response_model=schemas.TradingState)
    async def resume(
        request: Annotated[schemas.PauseRequest | None, Body()] = None,
    ) -> schemas.TradingState:
        state = await _trading(services).resume(request.reason if request else None)
        return schemas.TradingState.model_validate(state.as_dict())

    return api
