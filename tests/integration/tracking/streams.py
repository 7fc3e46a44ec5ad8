"""Raw Bybit V5 objects (as the private WebSocket sends them) for tracker tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

T0 = 1_795_000_000_000  # ms


def order_obj(
    *,
    order_id: str,
    link: str,
    symbol: str,
    side: str,
    qty: str,
    price: str,
    status: str,
    cum_qty: Decimal,
    cum_value: Decimal,
    cum_fee: Decimal,
    updated_ms: int,
    created_ms: int = T0,
    order_type: str = "Limit",
    tif: str = "GTC",
    position_idx: int = 0,
    category: str = "linear",
    cancel_type: str = "UNKNOWN",
) -> dict[str, Any]:
    qty_d = Decimal(qty)
    return {
        "category": category,
        "orderId": order_id,
        "orderLinkId": link,
        "symbol": symbol,
        "side": side,
        "orderType": order_type,
        "price": price,
        "qty": qty,
        "timeInForce": tif,
        "orderStatus": status,
        "positionIdx": position_idx,
        "cancelType": cancel_type,
        "rejectReason": "EC_NoError",
        "avgPrice": str(cum_value / cum_qty) if cum_qty else "0",
        "leavesQty": str(qty_d - cum_qty) if status not in ("Cancelled", "Filled") else "0",
        "leavesValue": "0",
        "cumExecQty": str(cum_qty),
        "cumExecValue": str(cum_value),
        "cumExecFee": "",
        "cumFeeDetail": {"USDT": str(cum_fee)} if cum_fee else {},
        "reduceOnly": False,
        "closeOnTrigger": False,
        "createdTime": str(created_ms),
        "updatedTime": str(updated_ms),
        "takeProfit": "",
        "stopLoss": "",
        "triggerPrice": "",
    }


def exec_obj(
    *,
    exec_id: str,
    order_id: str,
    link: str,
    symbol: str,
    side: str,
    qty: str,
    price: str,
    fee: str,
    exec_ms: int,
    seq: int,
    order_qty: str,
    order_price: str,
    order_type: str = "Limit",
    category: str = "linear",
    is_maker: bool = True,
) -> dict[str, Any]:
    return {
        "category": category,
        "symbol": symbol,
        "orderId": order_id,
        "orderLinkId": link,
        "side": side,
        "orderPrice": order_price,
        "orderQty": order_qty,
        "leavesQty": "0",
        "orderType": order_type,
        "stopOrderType": "UNKNOWN",
        "execFee": fee,
        "execId": exec_id,
        "execPrice": price,
        "execQty": qty,
        "execType": "Trade",
        "execValue": str(Decimal(qty) * Decimal(price)),
        "execTime": str(exec_ms),
        "isMaker": is_maker,
        "feeRate": "0.0002",
        "markPrice": price,
        "closedSize": "0",
        "seq": seq,
        "feeCurrency": "USDT",
    }


@dataclass(frozen=True)
class Fill:
    qty: str
    price: str
    fee: str


def lifecycle(
    *,
    order_id: str,
    link: str,
    symbol: str,
    side: str,
    qty: str,
    price: str,
    fills: list[Fill],
    t0: int = T0,
    seq0: int = 1,
    cancel_at_end: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, item) pairs of one limit order in exchange order: New, then per fill an
    execution and an order update, then Filled (or Cancelled after the fills)."""
    out: list[tuple[str, dict[str, Any]]] = []
    common: dict[str, Any] = {"order_id": order_id, "link": link, "symbol": symbol, "side": side}
    out.append(
        (
            "order",
            order_obj(
                **common,
                qty=qty,
                price=price,
                status="New",
                cum_qty=Decimal(0),
                cum_value=Decimal(0),
                cum_fee=Decimal(0),
                updated_ms=t0,
                created_ms=t0,
            ),
        )
    )
    cum_qty = cum_value = cum_fee = Decimal(0)
    for i, fill in enumerate(fills, start=1):
        t = t0 + 10 * i
        cum_qty += Decimal(fill.qty)
        cum_value += Decimal(fill.qty) * Decimal(fill.price)
        cum_fee += Decimal(fill.fee)
        out.append(
            (
                "execution",
                exec_obj(
                    **common,
                    exec_id=f"{order_id}-e{i}",
                    qty=fill.qty,
                    price=fill.price,
                    fee=fill.fee,
                    exec_ms=t,
                    seq=seq0 + i,
                    order_qty=qty,
                    order_price=price,
                ),
            )
        )
        full = cum_qty == Decimal(qty)
        out.append(
            (
                "order",
                order_obj(
                    **common,
                    qty=qty,
                    price=price,
                    status="Filled" if full else "PartiallyFilled",
                    cum_qty=cum_qty,
                    cum_value=cum_value,
                    cum_fee=cum_fee,
                    updated_ms=t,
                    created_ms=t0,
                ),
            )
        )
    if cancel_at_end and cum_qty < Decimal(qty):
        out.append(
            (
                "order",
                order_obj(
                    **common,
                    qty=qty,
                    price=price,
                    status="Cancelled",
                    cum_qty=cum_qty,
                    cum_value=cum_value,
                    cum_fee=cum_fee,
                    updated_ms=t0 + 10 * (len(fills) + 1),
                    created_ms=t0,
                    cancel_type="CancelByUser",
                ),
            )
        )
    return out
