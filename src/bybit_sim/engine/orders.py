"""The order record and its rendering as Bybit's Order object (REST and WS `order` item)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bybit_sim.engine.instruments import Instrument
from bybit_sim.engine.numbers import ZERO, fmt
from bybit_sim.engine.slippage import NO_TOLERANCE, Tolerance

OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})
POSITION_TPSL = frozenset({"TakeProfit", "StopLoss", "PartialTakeProfit", "PartialStopLoss"})
ACTIVE_STATUSES = frozenset({"New", "PartiallyFilled"})


@dataclass(slots=True, eq=False)
class Order:
    """Mutable state of one order. Money and quantities are Decimal; times are ms.

    Compared by identity (`eq=False`): list lookups must not compare fifty fields."""

    order_id: str
    order_link_id: str
    inst: Instrument
    side: str
    order_type: str
    price: Decimal
    qty: Decimal
    time_in_force: str
    position_idx: int
    created_time: int
    seq: int
    status: str = "New"
    reduce_only: bool = False
    close_on_trigger: bool = False
    create_type: str = "CreateByUser"
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    cum_exec_qty: Decimal = ZERO
    cum_exec_value: Decimal = ZERO
    cum_exec_fee: Decimal = ZERO
    fee_coin: str = ""
    trigger_price: Decimal = ZERO
    trigger_direction: int = 0
    trigger_by: str = ""
    stop_order_type: str = ""
    take_profit: Decimal = ZERO
    stop_loss: Decimal = ZERO
    tp_trigger_by: str = ""
    sl_trigger_by: str = ""
    tpsl_mode: str = ""
    tp_limit_price: Decimal = ZERO
    sl_limit_price: Decimal = ZERO
    tp_order_type: str = ""
    sl_order_type: str = ""
    market_unit: str = ""
    is_leverage: str = ""
    order_filter: str = "Order"
    last_price_on_created: Decimal = ZERO
    updated_time: int = 0
    closed_pnl: Decimal = ZERO
    # initial margin reserved for the unfilled part (linear) / quote or base locked (spot)
    reserved: Decimal = ZERO
    smp_type: str = "None"
    parent_order_link_id: str = ""
    # Partial-mode TP/SL orders this order attached to its position (grow with its fills)
    tp_child_id: str = ""
    sl_child_id: str = ""
    # quote budget of a spot market buy expressed in quote coin (marketUnit=quoteCoin)
    quote_budget: Decimal | None = None
    # a market order's slippage tolerance (`slippageToleranceType`/`slippageTolerance`)
    slippage: Tolerance | None = None

    @property
    def category(self) -> str:
        return self.inst.category

    @property
    def symbol(self) -> str:
        return self.inst.symbol

    @property
    def leaves_qty(self) -> Decimal:
        if self.status not in OPEN_STATUSES:
            return ZERO
        if self.quote_budget is not None:
            return ZERO
        return self.qty - self.cum_exec_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_conditional(self) -> bool:
        return self.stop_order_type != ""

    def avg_price(self) -> Decimal:
        if self.cum_exec_qty == 0:
            return ZERO
        return self.cum_exec_value / self.cum_exec_qty

    def render(self, ws: bool) -> dict[str, Any]:
        """Bybit's Order object; `ws=True` adds the WS-only fields (`category`, `closedPnl`...)."""
        inst = self.inst
        leaves = self.leaves_qty
        avg = self.avg_price()
        if self.quote_budget is not None and self.is_open:
            leaves_value = self.quote_budget - self.cum_exec_value
        else:
            leaves_value = leaves * self.price
        spot = inst.is_spot
        fee_detail = {self.fee_coin: fmt(self.cum_exec_fee)} if self.cum_exec_fee else {}
        item: dict[str, Any] = {
            "orderId": self.order_id,
            "orderLinkId": self.order_link_id,
            "blockTradeId": "",
            "symbol": inst.symbol,
            "price": inst.price_str(self.price) if self.price else "0",
            "qty": fmt(self.qty) if self.quote_budget is not None else inst.qty_str(self.qty),
            "side": self.side,
            "isLeverage": self.is_leverage,
            "positionIdx": self.position_idx,
            "orderStatus": self.status,
            "cancelType": self.cancel_type,
            "rejectReason": self.reject_reason,
            "avgPrice": fmt(avg) if avg else "0",
            "leavesQty": inst.qty_str(leaves),
            "leavesValue": fmt(leaves_value),
            "cumExecQty": inst.qty_str(self.cum_exec_qty),
            "cumExecValue": fmt(self.cum_exec_value),
            "cumExecFee": fmt(self.cum_exec_fee),
            "cumFeeDetail": fee_detail,
            "timeInForce": self.time_in_force,
            "orderType": self.order_type,
            "stopOrderType": self.stop_order_type,
            "orderIv": "",
            "triggerPrice": inst.price_str(self.trigger_price) if self.trigger_price else "0",
            "takeProfit": inst.price_str(self.take_profit) if self.take_profit else "0",
            "stopLoss": inst.price_str(self.stop_loss) if self.stop_loss else "0",
            "tpTriggerBy": self.tp_trigger_by,
            "slTriggerBy": self.sl_trigger_by,
            "triggerDirection": self.trigger_direction,
            "triggerBy": self.trigger_by,
            "lastPriceOnCreated": "" if spot else inst.price_str(self.last_price_on_created),
            "basePrice": inst.price_str(self.last_price_on_created) if spot else "",
            "reduceOnly": self.reduce_only,
            "closeOnTrigger": self.close_on_trigger,
            "placeType": "",
            "smpType": self.smp_type,
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": self.tpsl_mode,
            "tpLimitPrice": inst.price_str(self.tp_limit_price) if self.tp_limit_price else "0",
            "slLimitPrice": inst.price_str(self.sl_limit_price) if self.sl_limit_price else "0",
            "parentOrderLinkId": self.parent_order_link_id,
            "marketUnit": self.market_unit,
            "ocoTriggerBy": "",
            "slippageToleranceType": self.slippage.kind if self.slippage else NO_TOLERANCE,
            "slippageTolerance": fmt(self.slippage.value) if self.slippage else "0",
            "createdTime": str(self.created_time),
            "updatedTime": str(self.updated_time),
            "extraFees": "",
            "rpiTakerAccess": False,
        }
        if not spot:
            item["createType"] = self.create_type
        if ws:
            item["category"] = inst.category
            item["closedPnl"] = fmt(self.closed_pnl)
            item["feeCurrency"] = self.fee_coin
            item["brokerOrderPrice"] = ""
        return item


def in_scope(o: Order, symbol: str, base_coin: str, settle_coin: str) -> bool:
    """Bybit's query scope: symbol, else baseCoin, else settleCoin, else everything."""
    if symbol:
        return o.inst.symbol == symbol
    if base_coin:
        return o.inst.cfg.base_coin == base_coin
    if settle_coin:
        return o.inst.cfg.quote_coin == settle_coin
    return True


def filter_ok(o: Order, order_filter: str) -> bool:
    """`orderFilter`: Order = plain orders, StopOrder/tpslOrder = conditional ones, OpenOrder or
    empty = all."""
    if not order_filter or order_filter == "OpenOrder":
        return True
    if order_filter == "Order":
        return not o.is_conditional
    if order_filter in ("StopOrder", "tpslOrder"):
        return o.is_conditional
    return False
