"""One way to put an exchange call into the audit log (mechanism 10 of the architecture).

Every create, amend, cancel and lookup — from the executor, recovery, the operator's cancel or
the stale-order sweeper — becomes one ``audit_log`` row through ``record_call``: the wire
request (never secrets), ok, retCode, error kind, message, duration and attempts, the exchange's
order id and, for creates, how it was settled (``created|existing|recovered``), plus what the
caller adds (e.g. ``reason``). The row is written in the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping

from order_manager.services.ports.exchange import CallReport
from order_manager.services.ports.orders import OrderRepository


async def record_call(
    orders: OrderRepository,
    report: CallReport,
    *,
    trace_id: str | None,
    signal_id: str | None,
    order_uuid: str | None,
    order_link_id: str,
    is_dry_run: bool,
    extra: Mapping[str, object] | None = None,
) -> None:
    response: dict[str, object] = {"attempts": report.attempts}
    if report.order_id:
        response["orderId"] = report.order_id
    outcome = getattr(report, "outcome", None)
    if outcome:
        response["outcome"] = outcome
    response.update(extra or {})
    await orders.record_exchange_call(
        action=report.action,
        request=report.request,
        response=response,
        ok=report.ok,
        ret_code=report.ret_code,
        error_kind=report.error_kind,
        message=report.message,
        duration_ms=report.duration_ms,
        trace_id=trace_id,
        signal_id=signal_id,
        order_uuid=order_uuid,
        order_link_id=order_link_id,
        is_dry_run=is_dry_run,
    )
