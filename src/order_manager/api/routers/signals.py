"""`GET /signals` (filters, sorting, pagination) and `GET /signals/{signal_id}`: the signal's
outcome, reason and the orders it created or touched."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from order_manager.api import schemas
from order_manager.api.errors import ApiError
from order_manager.api.routers import params
from order_manager.services.ports.queries import SIGNAL_SORTS

if TYPE_CHECKING:
    from order_manager.api.routers.deps import ServicesView

#: `status=open` is shorthand for the signals not settled yet
OPEN = "open"
_STATUSES = ("received", "processing", "executed", "rejected", "failed")
_OPEN_STATUSES = ("received", "processing")
_REASON = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_PAGE_SIZE = 500


def parse_statuses(raw: str | None) -> tuple[str, ...]:
    """`status=failed,rejected` (comma-separated, case-insensitive) or `status=open`."""
    return params.statuses(raw, _STATUSES, {OPEN: _OPEN_STATUSES})


def parse_reasons(raw: str | None) -> tuple[str, ...]:
    """`reason=insufficient_balance,stale_signal`: reason codes (lower case, digits, `_`)."""
    if raw is None:
        return ()
    out = []
    for part in raw.split(","):
        value = part.strip()
        if not _REASON.match(value):
            params.invalid("reason", f"{value!r} is not a reason code (e.g. stale_signal)")
        out.append(value)
    return tuple(dict.fromkeys(out))


def router(services: ServicesView) -> APIRouter:
    api = APIRouter(tags=["signals"])

    @api.get("/signals", response_model=schemas.SignalPage)
    async def list_signals(
        asset: Annotated[str | None, Query(description="symbol, e.g. BTCUSDT")] = None,
        status: Annotated[
            str | None, Query(description="comma-separated statuses, or 'open'")
        ] = None,
        reason: Annotated[
            str | None, Query(description="comma-separated reason codes, e.g. stale_signal")
        ] = None,
        strategy_id: Annotated[str | None, Query(max_length=200)] = None,
        received_from: Annotated[
            datetime | None, Query(alias="from", description="received at or after (ISO 8601)")
        ] = None,
        received_to: Annotated[
            datetime | None, Query(alias="to", description="received before (ISO 8601)")
        ] = None,
        dry_run: Annotated[bool | None, Query(description="only dry-run / only live")] = None,
        sort: Annotated[str, Query(description=f"one of {', '.join(SIGNAL_SORTS)}")] = (
            "-received_at"
        ),
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> schemas.SignalPage:
        """Signals, newest first by default, without their orders (`GET /signals/{id}` has
        them). Filters combine with AND."""
        if asset is not None:
            params.asset(asset, "query")
        statuses = parse_statuses(status)
        reasons = parse_reasons(reason)
        params.time_range(received_from, received_to)
        if sort not in SIGNAL_SORTS:
            params.invalid("sort", f"unknown sort {sort!r}; allowed: {', '.join(SIGNAL_SORTS)}")
        items, total = await services.queries.list_signals(
            symbol=asset,
            statuses=statuses,
            reason_codes=reasons,
            strategy_id=strategy_id,
            received_from=received_from,
            received_to=received_to,
            is_dry_run=dry_run,
            sort=sort,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        return schemas.SignalPage(
            items=[schemas.SignalSummary.model_validate(item) for item in items],
            pagination=params.pagination(page, page_size, total),
        )

    @api.get("/signals/{signal_id}", response_model=schemas.Signal)
    async def get_signal(signal_id: UUID) -> schemas.Signal:
        record = await services.queries.get_signal(str(signal_id))
        if record is None:
            raise ApiError(
                404, "SIGNAL_NOT_FOUND", f"no signal {signal_id}", {"signal_id": str(signal_id)}
            )
        return schemas.Signal.model_validate(record)

    return api
