"""Response and request models of the `/api/v1` routes.

* Money and quantities are ``Decimal`` inside and **strings** on the wire, always in plain
  notation (``"0.00001"``, never ``"1E-5"``), so clients parse them exactly.
* Timestamps are ISO 8601 with the UTC offset.
* Every response model validates the record the read side returns, so a missing column fails
  loudly (500 with the standard error shape) instead of silently sending ``null``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


def plain_decimal(value: Decimal) -> str:
    """Exact plain-notation text of a Decimal (no exponent)."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


Dec = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="always")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Fill(_Model):
    exec_id: str
    exec_qty: Dec
    exec_price: Dec
    exec_value: Dec
    exec_fee: Dec
    fee_currency: str | None
    is_maker: bool | None
    exec_type: str
    exec_time: datetime


class SignalLink(_Model):
    signal_id: str
    relation: str
    sequence: int
    allocated_qty: Dec | None
    created_at: datetime


class Order(_Model):
    id: str
    order_id: str | None
    order_link_id: str
    signal_id: str | None
    leg: int | None
    category: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str | None
    qty: Dec
    price: Dec | None
    trigger_price: Dec | None
    take_profit: Dec | None
    stop_loss: Dec | None
    reduce_only: bool
    position_idx: int
    status: str
    exchange_status: str | None
    reject_reason: str | None
    cancel_type: str | None
    last_error_code: int | None
    last_error: str | None
    cum_exec_qty: Dec
    cum_exec_value: Dec
    cum_exec_fee: Dec
    fee_currency: str | None
    avg_price: Dec | None
    leaves_qty: Dec | None
    is_dry_run: bool
    is_external: bool
    trace_id: str | None
    submitted_at: datetime | None
    first_fill_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class OrderDetail(Order):
    fills: list[Fill]
    links: list[SignalLink]


class Pagination(_Model):
    page: int
    page_size: int
    total_items: int
    total_pages: int


class OrderPage(_Model):
    items: list[Order]
    pagination: Pagination


class SignalOrder(Order):
    relation: str | None


class SignalSummary(_Model):
    signal_id: str
    status: str
    symbol: str | None
    signal_type: str | None
    strategy_id: str | None
    amount: Dec | None
    amount_unit: str | None
    confidence: Dec | None
    signal_timestamp: datetime | None
    is_warmup: bool
    is_dry_run: bool
    reason_code: str | None
    reason_message: str | None
    attempts: int
    trace_id: str | None
    received_at: datetime
    completed_at: datetime | None
    updated_at: datetime


class Signal(SignalSummary):
    orders: list[SignalOrder]


class SignalPage(_Model):
    items: list[SignalSummary]
    pagination: Pagination


class Position(_Model):
    category: str
    symbol: str
    position_idx: int
    is_dry_run: bool
    side: str
    size: Dec
    avg_entry_price: Dec
    realized_pnl: Dec
    unrealized_pnl: Dec
    fees_paid: Dec
    mark_price: Dec | None
    position_value: Dec | None
    leverage: Dec | None
    liq_price: Dec | None
    take_profit: Dec | None
    stop_loss: Dec | None
    exchange_size: Dec | None
    exchange_avg_price: Dec | None
    validated_at: datetime | None
    drift_detected_at: datetime | None
    updated_at: datetime


class PositionList(_Model):
    items: list[Position]


class AssetPositions(_Model):
    asset: str
    items: list[Position]


class PositionSnapshot(_Model):
    id: int
    category: str
    symbol: str
    position_idx: int
    is_dry_run: bool
    side: str
    size: Dec
    avg_entry_price: Dec
    realized_pnl: Dec
    unrealized_pnl: Dec
    fees_paid: Dec
    mark_price: Dec | None
    source: str
    snapshot_at: datetime


class SnapshotPage(_Model):
    asset: str
    items: list[PositionSnapshot]
    pagination: Pagination


# ------------------------------------------------------------------ sync


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["active", "all"] = "active"
    asset: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Z0-9]+$")] | None = None


class SyncOrderChange(_Model):
    id: str
    order_link_id: str
    order_id: str | None
    symbol: str
    before: str
    after: str
    cum_exec_qty_before: Dec
    cum_exec_qty_after: Dec


class SyncReport(_Model):
    trigger: str
    scope: str
    asset: str | None
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    orders_checked: int
    orders_changed: int
    fills_added: int
    missing_on_exchange: int
    unknown_to_us: int
    submitting_unresolved: int
    positions_checked: int
    positions_drift: int
    positions_corrected: int
    errors: list[str]
    changed: list[SyncOrderChange]
    missing: list[dict[str, Any]]
    adopted: list[dict[str, Any]]


# ------------------------------------------------------------------ operator


class CancelAllRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Z0-9]+$")] | None = None


class CancelResult(_Model):
    order: Order
    exchange_ret_code: int | None
    exchange_message: str


class CancelAllResult(_Model):
    asset: str | None
    requested: int
    cancelled: list[str]
    failed: list[dict[str, Any]]
    sync: SyncReport | None


class TradingState(_Model):
    paused: bool
    changed_at: datetime | None
    reason: str | None


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=500)] | None = None
