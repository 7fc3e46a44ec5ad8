"""Operator actions behind the REST API: cancel one order, cancel everything (kill switch).

* **Cancel one** (`POST /api/v1/orders/{id}/cancel`): through the same `ExchangeGateway.cancel`
  the executor uses (reason `operator`), audited like every exchange call, then the order is
  reconciled at once so the answer already shows the exchange's final state (the stream event
  that follows is a harmless duplicate for the state machine).
* **Cancel all** (`POST /api/v1/cancel-all`): Bybit's cancel-all for every category the service
  trades (one asset or all), an operator audit row, then an `active` reconciliation of the same
  scope so every cancelled order is recorded before the answer.

Pausing new exposure is separate (`TradingControl`): the usual emergency sequence is pause,
then cancel-all; reduce-only signals still work while paused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from order_manager.domain.enums import Category, Side
from order_manager.domain.orders import OrderStatus
from order_manager.domain.plans import Cancel, CancelReason
from order_manager.services.audit import record_call
from order_manager.services.ports.exchange import ExchangeErrorKind, ExchangeGateway
from order_manager.services.ports.exchange_queries import ReconcileExchange
from order_manager.services.ports.operator_log import OperatorLog
from order_manager.services.ports.queries import ReadQueries, Record
from order_manager.services.ports.uow import UnitOfWorkFactory
from order_manager.services.reconciler import Reconciler, SyncReport

log = structlog.get_logger(__name__)


class OrderNotFoundError(LookupError):
    pass


class OrderNotOpenError(RuntimeError):
    """Nothing to cancel: the order is final, or it belongs to the other (dry-run/live) world."""

    def __init__(self, order: Record, kind: str | None = None) -> None:
        if kind is None:
            message = f"order {order['order_link_id']} is {order['status']}: nothing to cancel"
        else:
            message = (
                f"order {order['order_link_id']} is {kind}; this service instance trades the"
                " other mode and cannot cancel it"
            )
        super().__init__(message)
        self.order = order


class ExchangeRefusedError(RuntimeError):
    def __init__(self, ret_code: int | None, message: str, error_kind: str | None) -> None:
        super().__init__(f"exchange refused the cancel (retCode {ret_code}): {message}")
        self.ret_code = ret_code
        self.message = message
        self.error_kind = error_kind


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    order: Record
    ret_code: int | None
    message: str


@dataclass(slots=True)
class CancelAllOutcome:
    asset: str | None
    requested: int = 0
    cancelled: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    sync: SyncReport | None = None


class OperatorActions:
    def __init__(
        self,
        *,
        queries: ReadQueries,
        gateway: ExchangeGateway,
        exchange: ReconcileExchange,
        uow_factory: UnitOfWorkFactory,
        log_store: OperatorLog,
        reconciler: Reconciler | None,
        categories: Sequence[Category] = (Category.LINEAR,),
    ) -> None:
        self._queries = queries
        self._gateway = gateway
        self._exchange = exchange
        self._uow_factory = uow_factory
        self._log = log_store
        self._reconciler = reconciler
        self._categories = tuple(categories)

    async def cancel_order(self, order_ref: str) -> CancelOutcome:
        order = await self._queries.find_order(order_ref)
        if order is None:
            raise OrderNotFoundError(order_ref)
        if not OrderStatus(order["status"]).is_open:
            raise OrderNotOpenError(order)
        if bool(order["is_dry_run"]) != self._gateway.is_dry_run:
            raise OrderNotOpenError(
                order,
                "a dry-run order" if order["is_dry_run"] else "a live order",
            )
        trace_id = order["trace_id"] or uuid.uuid4().hex
        action = Cancel(
            order_link_id=str(order["order_link_id"]),
            order_id=order["order_id"],
            category=Category(order["category"]),
            symbol=str(order["symbol"]),
            side=Side(order["side"]),
            reason=CancelReason.OPERATOR,
            remaining_qty=Decimal(order["qty"]) - Decimal(order["cum_exec_qty"]),
            reduce_only=bool(order["reduce_only"]),
        )
        report = await self._gateway.cancel(action, trace_id=trace_id)
        async with self._uow_factory() as uow:
            await record_call(
                uow.orders,
                report,
                trace_id=trace_id,
                signal_id=None,
                order_uuid=str(order["id"]),
                order_link_id=str(order["order_link_id"]),
                is_dry_run=bool(order["is_dry_run"]),
                extra={"reason": CancelReason.OPERATOR.value},
            )
            await uow.commit()
        await self._log.record(
            "cancel_order",
            {"order": str(order["id"]), "ok": report.ok, "ret_code": report.ret_code},
        )
        log.warning(
            "operator cancel",
            order_uuid=str(order["id"]),
            ok=report.ok,
            ret_code=report.ret_code,
            message=report.message,
        )
        if self._reconciler is not None and not order["is_dry_run"]:
            await self._reconciler.sync_orders([str(order["id"])])
        fresh = await self._queries.find_order(str(order["id"])) or order
        if not report.ok:
            if (
                report.error_kind == ExchangeErrorKind.NOT_FOUND
                and not OrderStatus(fresh["status"]).is_open
            ):
                raise OrderNotOpenError(fresh)
            raise ExchangeRefusedError(report.ret_code, report.message, report.error_kind)
        return CancelOutcome(fresh, report.ret_code, report.message)

    async def cancel_all(self, asset: str | None) -> CancelAllOutcome:
        outcome = CancelAllOutcome(asset=asset)
        for category in self._categories:
            if category is Category.INVERSE and asset is None:
                continue  # inverse cancel-all needs a symbol
            try:
                acks: Sequence[Mapping[str, Any]] = await self._exchange.cancel_all(
                    category.value, symbol=asset
                )
            except Exception as exc:  # reported to the operator, who may retry
                outcome.failed.append(
                    {"category": category.value, "error": f"{type(exc).__name__}: {exc}"}
                )
                continue
            outcome.cancelled.extend(
                str(a.get("orderLinkId") or a.get("orderId") or "") for a in acks
            )
        outcome.requested = len(outcome.cancelled)
        await self._log.record(
            "cancel_all",
            {"asset": asset, "cancelled": len(outcome.cancelled), "failed": outcome.failed},
        )
        log.warning(
            "operator cancel-all",
            asset=asset,
            cancelled=len(outcome.cancelled),
            failed=outcome.failed,
        )
        if self._reconciler is not None:
            outcome.sync = await self._reconciler.sync(
                trigger="operator", scope="active", asset=asset, wait=True
            )
        return outcome
