"""Take-profit / stop-loss orders of linear positions.

Full mode: one `TakeProfit` and one `StopLoss` order per position (qty "0" = the whole
position), set by `trading-stop` or by an order's TP/SL once it fills. Partial mode: any number
of `PartialTakeProfit` / `PartialStopLoss` orders of their own size (an order's filled qty, or
trading-stop's tpSize/slSize), Market or Limit. All are Untriggered conditional orders of the
exchange; a closed or flipped position deactivates them (`CancelByTpSlTsClear`).

These functions are part of the engine and work on the `Exchange`'s internals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from bybit_sim.engine.book import BUY, SELL
from bybit_sim.engine.errors import ApiError, params_error
from bybit_sim.engine.numbers import ZERO, is_multiple
from bybit_sim.engine.orders import Order
from bybit_sim.engine.params import Params, get_opt_decimal
from bybit_sim.engine.positions import Position
from bybit_sim.engine.validation import TpslSpec

if TYPE_CHECKING:
    from bybit_sim.engine.exchange import Exchange


def attach_after_fill(ex: Exchange, order: Order) -> None:
    """Attach an order's TP/SL once it has (partly) filled: Full mode sets the position's
    TP/SL; Partial mode keeps one PartialTakeProfit / PartialStopLoss order per kind whose
    size follows the order's filled quantity."""
    if order.inst.is_spot or not (order.take_profit or order.stop_loss):
        return
    pos = ex._position_for_order(order)
    if pos.size == 0:
        return
    if order.tpsl_mode != "Partial":
        set_position_tpsl(
            ex,
            pos,
            order.take_profit or None,
            order.stop_loss or None,
            order.tp_trigger_by,
            order.sl_trigger_by,
        )
        return
    for kind, trigger in (("TakeProfit", order.take_profit), ("StopLoss", order.stop_loss)):
        if not trigger:
            continue
        attr = "tp_child_id" if kind == "TakeProfit" else "sl_child_id"
        child_id: str = getattr(order, attr)
        child = ex.orders.get(child_id) if child_id else None
        if child is None:
            tp = kind == "TakeProfit"
            child = new_tpsl_order(
                ex,
                pos,
                "Partial" + kind,
                trigger,
                order.tp_trigger_by if tp else order.sl_trigger_by,
                order.cum_exec_qty,
                order.tp_order_type if tp else order.sl_order_type,
                order.tp_limit_price if tp else order.sl_limit_price,
                order.order_link_id,
            )
            setattr(order, attr, child.order_id)
        elif child.status == "Untriggered" and child.qty != order.cum_exec_qty:
            child.qty = order.cum_exec_qty
            ex._stamp(child)
            ex._emit_order(child)


def new_tpsl_order(
    ex: Exchange,
    pos: Position,
    stop_type: str,
    trigger: Decimal,
    trigger_by: str,
    qty: Decimal,
    order_type: str,
    limit_price: Decimal,
    parent_link_id: str = "",
) -> Order:
    """An Untriggered reduce-only order closing (part of) `pos` at `trigger`.

    `stop_type` TakeProfit/StopLoss (Full: qty "0" = whole position, Market) or
    PartialTakeProfit/PartialStopLoss (its own qty; Market or Limit at `limit_price`)."""
    long = pos.side == BUY
    rising = stop_type.endswith("TakeProfit") == long
    partial = stop_type.startswith("Partial")
    ex._order_seq += 1
    now = ex.now()
    m = ex.markets[("linear", pos.inst.symbol)]
    order = Order(
        order_id=ex._new_order_id(False),
        order_link_id="",
        inst=pos.inst,
        side=SELL if long else BUY,
        order_type=order_type,
        price=limit_price if order_type == "Limit" else ZERO,
        qty=qty,
        time_in_force="GTC" if order_type == "Limit" else "IOC",
        position_idx=pos.idx,
        created_time=now,
        updated_time=now,
        seq=ex._order_seq,
        status="Untriggered",
        reduce_only=True,
        close_on_trigger=True,
        create_type="CreateBy" + stop_type,
        trigger_price=trigger,
        trigger_direction=1 if rising else 2,
        trigger_by=trigger_by,
        stop_order_type=stop_type,
        tpsl_mode="Partial" if partial else "Full",
        last_price_on_created=m.last,
        order_filter="StopOrder",
        parent_order_link_id=parent_link_id,
    )
    ex.orders[order.order_id] = order
    ex.open_orders[order.order_id] = order
    m.conditionals.append(order)
    if partial:
        pos.partial_ids.append(order.order_id)
    ex._emit_order(order)
    return order


def set_position_tpsl(
    ex: Exchange,
    pos: Position,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    tp_trigger_by: str,
    sl_trigger_by: str,
) -> None:
    """Full mode: set (price), clear (0) or keep (None) a position's TP and SL orders."""
    for kind, value, trig in (
        ("TakeProfit", take_profit, tp_trigger_by),
        ("StopLoss", stop_loss, sl_trigger_by),
    ):
        if value is None:
            continue
        attr_id = "tp_order_id" if kind == "TakeProfit" else "sl_order_id"
        existing_id: str = getattr(pos, attr_id)
        existing = ex.orders.get(existing_id) if existing_id else None
        if kind == "TakeProfit":
            pos.take_profit = value
            pos.tp_trigger_by = trig
        else:
            pos.stop_loss = value
            pos.sl_trigger_by = trig
        if value == 0:
            if existing is not None and existing.is_open:
                ex._finish(existing, "Deactivated", cancel_type="CancelByUser")
            setattr(pos, attr_id, "")
            continue
        if existing is not None and existing.is_open:
            existing.trigger_price = value
            existing.trigger_by = trig
            ex._stamp(existing)
            ex._emit_order(existing)
            continue
        order = new_tpsl_order(ex, pos, kind, value, trig, ZERO, "Market", ZERO)
        setattr(pos, attr_id, order.order_id)
    ex._dirty_positions[(pos.inst.symbol, pos.idx)] = None


def detach_tpsl(ex: Exchange, order: Order) -> None:
    """Forget a TP/SL order on its position (it triggered or was cancelled)."""
    pos = ex._position_for_order(order)
    if pos.tp_order_id == order.order_id:
        pos.tp_order_id = ""
        pos.take_profit = ZERO
    if pos.sl_order_id == order.order_id:
        pos.sl_order_id = ""
        pos.stop_loss = ZERO
    if order.order_id in pos.partial_ids:
        pos.partial_ids.remove(order.order_id)
    ex._dirty_positions[(pos.inst.symbol, pos.idx)] = None


def clear_position_tpsl(ex: Exchange, pos: Position) -> None:
    """A closed (or flipped) position loses its TP/SL: their orders are deactivated."""
    ids = [pos.tp_order_id, pos.sl_order_id, *pos.partial_ids]
    pos.tp_order_id = pos.sl_order_id = ""
    pos.partial_ids = []
    pos.take_profit = ZERO
    pos.stop_loss = ZERO
    for oid in ids:
        order = ex.orders.get(oid) if oid else None
        if order is not None and order.status == "Untriggered":
            ex._finish(order, "Deactivated", cancel_type="CancelByTpSlTsClear")


def add_partial_tpsl(ex: Exchange, pos: Position, spec: TpslSpec, p: Params) -> None:
    """trading-stop in Partial mode: new PartialTakeProfit / PartialStopLoss orders of
    tpSize / slSize (equal when both are given), each at most the position size."""
    inst = pos.inst
    tp_size = get_opt_decimal(p, "tpSize")
    sl_size = get_opt_decimal(p, "slSize")
    if spec.take_profit and spec.stop_loss and tp_size != sl_size:
        raise params_error("params error: tpSize and slSize must be equal")
    wanted = []
    for kind, price, size in (
        ("TakeProfit", spec.take_profit, tp_size),
        ("StopLoss", spec.stop_loss, sl_size),
    ):
        if not price:
            continue
        name = "tpSize" if kind == "TakeProfit" else "slSize"
        if size is None or size <= 0 or not is_multiple(size, inst.step):
            raise params_error(f"params error: {name} must be a positive multiple of qtyStep")
        if size > pos.size:
            raise ApiError(110058, f"{name} exceeds the position size {inst.qty_str(pos.size)}")
        wanted.append((kind, price, size))
    if not wanted:
        raise ApiError(34040, "not modified")
    for kind, price, size in wanted:
        tp = kind == "TakeProfit"
        new_tpsl_order(
            ex,
            pos,
            "Partial" + kind,
            price,
            spec.tp_trigger_by if tp else spec.sl_trigger_by,
            size,
            spec.tp_order_type if tp else spec.sl_order_type,
            spec.tp_limit if tp else spec.sl_limit,
        )
    ex._dirty_positions[(inst.symbol, pos.idx)] = None
