"""Validation of `order/create` requests, in Bybit's order of checks and with its retCodes.

`validate_create` reads the exchange's state (positions, balances, open orders) but changes
nothing: it returns a `NewOrder` with every field parsed and the amount to reserve, or raises
`ApiError`. The price rules (`check_price`, `check_band`, `protective_price`) are shared with
amend and the conditional-order trigger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from bybit_sim.engine.book import BUY, SELL
from bybit_sim.engine.errors import ApiError, params_error
from bybit_sim.engine.instruments import Instrument
from bybit_sim.engine.market import Market
from bybit_sim.engine.numbers import ZERO, fine, fmt, is_multiple
from bybit_sim.engine.params import (
    Params,
    get_bool,
    get_decimal,
    get_int,
    get_opt_decimal,
    get_str,
)
from bybit_sim.engine.slippage import Tolerance, parse_tolerance

if TYPE_CHECKING:
    from bybit_sim.engine.exchange import Exchange

ORDER_LINK_ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,36}$")
TIME_IN_FORCE = frozenset({"GTC", "IOC", "FOK", "PostOnly"})
TRIGGER_BY = frozenset({"LastPrice", "MarkPrice", "IndexPrice"})
ZERO_POSITION_MSG = "current position is zero, cannot fix reduce-only order qty"


@dataclass(frozen=True, slots=True)
class TpslSpec:
    """Take-profit / stop-loss parameters of an order or a trading-stop request.

    `mode` Full: whole position, Market only. Partial: a given size (an order's filled qty, or
    tpSize/slSize), Market or Limit at `tp_limit`/`sl_limit`."""

    mode: str
    take_profit: Decimal | None
    stop_loss: Decimal | None
    tp_trigger_by: str
    sl_trigger_by: str
    tp_order_type: str
    sl_order_type: str
    tp_limit: Decimal
    sl_limit: Decimal


@dataclass(slots=True)
class NewOrder:
    """A create request that passed every check."""

    inst: Instrument
    market: Market
    side: str
    order_type: str
    time_in_force: str
    link_id: str
    qty: Decimal
    price: Decimal | None
    position_idx: int
    reduce_only: bool
    close_on_trigger: bool
    market_unit: str
    quote_budget: Decimal | None
    trigger_price: Decimal | None
    trigger_direction: int
    trigger_by: str
    tpsl: TpslSpec | None
    smp_type: str
    slippage: Tolerance | None
    # margin (linear) or coin amount (spot) to reserve for a resting limit order
    reserve: Decimal


def check_price(inst: Instrument, price: Decimal, what: str = "price") -> None:
    """Positive, on the tick grid, inside the instrument's min/max price."""
    if price <= 0:
        raise params_error(f"params error: {what} invalid")
    if not is_multiple(price, inst.tick):
        if inst.is_spot:
            raise ApiError(170134, "Order price has too many decimals.")
        raise params_error(f"params error: {what} invalid, not a multiple of tickSize")
    if not inst.is_spot:
        if inst.cfg.min_price is not None and price < inst.cfg.min_price:
            raise params_error(f"params error: {what} is below minPrice")
        if inst.cfg.max_price is not None and price > inst.cfg.max_price:
            raise params_error(f"params error: {what} is above maxPrice")


def check_band(inst: Instrument, last: Decimal, side: str, price: Decimal) -> None:
    """Bybit's price limit: a buy may not exceed last × (1 + X), a sell not go below
    last × (1 − X) (linear 110003, spot 170193 / 170194)."""
    if side == BUY:
        ceiling = protective_price(inst, last, BUY)
        if price > ceiling:
            if inst.is_spot:
                raise ApiError(
                    170193, f"Buy order price cannot be higher than {inst.price_str(ceiling)}."
                )
            raise ApiError(110003, "Order price is out of permissible range")
    else:
        floor = protective_price(inst, last, SELL)
        if price < floor:
            if inst.is_spot:
                raise ApiError(
                    170194, f"Sell order price cannot be lower than {inst.price_str(floor)}."
                )
            raise ApiError(110003, "Order price is out of permissible range")


def protective_price(inst: Instrument, last: Decimal, side: str) -> Decimal:
    """The band edge; also the limit price a Market order is converted to (IOC)."""
    ratio = inst.cfg.price_limit_ratio
    tick = inst.tick
    if side == BUY:
        return (last * (1 + ratio) / tick).to_integral_value(ROUND_FLOOR) * tick
    return max((last * (1 - ratio) / tick).to_integral_value(ROUND_CEILING) * tick, tick)


def check_tpsl_sides(
    inst: Instrument,
    position_side: str,
    base: Decimal,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
) -> None:
    """A long's TP must be above the base price and its SL below (a short's the reverse);
    10001 with Bybit's observed wording otherwise."""
    long = position_side == BUY
    shown = inst.price_str(base)
    if take_profit:
        check_price(inst, take_profit, what="takeProfit")
        if (long and take_profit <= base) or (not long and take_profit >= base):
            word = "higher" if long else "lower"
            raise params_error(
                f"TakeProfit:{inst.price_str(take_profit)} set for {position_side} position "
                f"should {word} than base_price:{shown}"
            )
    if stop_loss:
        check_price(inst, stop_loss, what="stopLoss")
        if (long and stop_loss >= base) or (not long and stop_loss <= base):
            word = "lower" if long else "higher"
            raise params_error(
                f"StopLoss:{inst.price_str(stop_loss)} set for {position_side} position "
                f"should {word} than base_price:{shown}"
            )


def parse_tpsl(
    inst: Instrument,
    p: Params,
    position_side: str,
    base: Decimal,
    tp_trigger_default: str = "LastPrice",
    sl_trigger_default: str = "LastPrice",
) -> TpslSpec | None:
    """TP/SL fields of a request (None when neither takeProfit nor stopLoss is given; "0"
    means "remove" and is kept as 0)."""
    take_profit = get_opt_decimal(p, "takeProfit")
    stop_loss = get_opt_decimal(p, "stopLoss")
    if take_profit is None and stop_loss is None:
        return None
    mode = get_str(p, "tpslMode", default="Full")
    if mode not in ("Full", "Partial"):
        raise params_error("params error: tpslMode must be Full or Partial")
    triggers = []
    for name, default in (("tpTriggerBy", tp_trigger_default), ("slTriggerBy", sl_trigger_default)):
        value = get_str(p, name, default=default)
        if value not in TRIGGER_BY:
            raise params_error(f"params error: {name} invalid")
        triggers.append(value)
    types = []
    limits = []
    for prefix in ("tp", "sl"):
        order_type = get_str(p, f"{prefix}OrderType", default="Market")
        if order_type not in ("Market", "Limit"):
            raise params_error(f"params error: {prefix}OrderType invalid")
        if order_type == "Limit" and mode == "Full":
            raise params_error(
                f"params error: tpslMode Full supports {prefix}OrderType Market only"
            )
        limit = get_opt_decimal(p, f"{prefix}LimitPrice") or ZERO
        if order_type == "Limit":
            if not limit:
                raise params_error(f"params error: {prefix}LimitPrice is required for Limit")
            check_price(inst, limit, what=f"{prefix}LimitPrice")
        types.append(order_type)
        limits.append(limit if order_type == "Limit" else ZERO)
    check_tpsl_sides(inst, position_side, base, take_profit, stop_loss)
    return TpslSpec(
        mode=mode,
        take_profit=take_profit,
        stop_loss=stop_loss,
        tp_trigger_by=triggers[0],
        sl_trigger_by=triggers[1],
        tp_order_type=types[0],
        sl_order_type=types[1],
        tp_limit=limits[0],
        sl_limit=limits[1],
    )


def validate_create(ex: Exchange, p: Params, external: bool) -> NewOrder:
    """All checks of `order/create`, in this order: category → symbol → side/type/tif →
    orderLinkId format → position idx → qty → price → slippage tolerance → trigger → duplicate
    orderLinkId → order caps → price band → trigger direction → reduce-only → min notional →
    balance/margin."""
    category = ex.category_of(p)
    inst = ex.instrument(category, get_str(p, "symbol", required=True))
    m = ex.markets[(category, inst.symbol)]
    spot = inst.is_spot
    side = get_str(p, "side", required=True)
    if side not in (BUY, SELL):
        raise params_error("params error: side invalid")
    order_type = get_str(p, "orderType", required=True)
    if order_type not in ("Market", "Limit"):
        raise params_error("params error: orderType invalid")
    tif = get_str(p, "timeInForce", default="GTC")
    if tif not in TIME_IN_FORCE:
        raise params_error("params error: timeInForce invalid")
    if order_type == "Market":
        tif = "IOC"
    link_id = "" if external else get_str(p, "orderLinkId")
    if link_id and not ORDER_LINK_ID_RE.match(link_id):
        raise params_error("params error: orderLinkId invalid (max 36 chars of [0-9A-Za-z_-])")
    reduce_only = False if spot else get_bool(p, "reduceOnly")
    close_on_trigger = False if spot else get_bool(p, "closeOnTrigger")
    qty = get_decimal(p, "qty")
    position_idx = 0
    hedge = False
    if not spot:
        position_idx = get_int(p, "positionIdx", 0) or 0
        hedge = ex.is_hedge(inst.symbol)
        if position_idx not in ((1, 2) if hedge else (0,)):
            raise params_error("position idx not match position mode")
        if hedge and not reduce_only:
            # in hedge mode an order against its idx's side can only close that side
            reduce_only = (position_idx == 1 and side == SELL) or (
                position_idx == 2 and side == BUY
            )

    price = get_opt_decimal(p, "price")
    if order_type == "Limit":
        if price is None:
            raise params_error("params error: price is required for Limit orders")
        check_price(inst, price)
    slippage = parse_tolerance(p, order_type)
    trigger_price = get_opt_decimal(p, "triggerPrice")
    market_unit = get_str(p, "marketUnit")
    quote_budget: Decimal | None = None
    if spot:
        if market_unit not in ("", "baseCoin", "quoteCoin"):
            raise params_error("params error: marketUnit invalid")
        if order_type == "Market" and not market_unit:
            market_unit = "quoteCoin" if side == BUY else "baseCoin"
        if order_type == "Market" and market_unit == "quoteCoin":
            quote_budget = qty
            if not is_multiple(qty, inst.cfg.quote_precision):
                raise ApiError(170148, "Market order amount decimal too long.")
        elif not is_multiple(qty, inst.step):
            raise ApiError(170137, "Order quantity has too many decimals.")
        if qty <= 0:
            raise ApiError(170136, "Order quantity below the lower limit.")
        cap = inst.cfg.max_mkt_order_qty if order_type == "Market" else inst.cfg.max_order_qty
        if quote_budget is None and qty > cap:
            raise ApiError(170124, "Order amount too large.")
    else:
        market_unit = ""
        # qty "0" + reduceOnly + closeOnTrigger closes the whole position (fixed below)
        if not (qty == 0 and reduce_only and close_on_trigger):
            if not is_multiple(qty, inst.step):
                raise params_error("params error: qty invalid, not a multiple of qtyStep")
            if qty < inst.cfg.min_order_qty:
                raise params_error("The number of contracts exceeds minimum limit allowed")
            cap = inst.cfg.max_mkt_order_qty if order_type == "Market" else inst.cfg.max_order_qty
            if qty > cap:
                raise params_error("The number of contracts exceeds maximum limit allowed")

    trigger_direction = 0
    trigger_by = ""
    if trigger_price:
        check_price(inst, trigger_price, what="triggerPrice")
        trigger_by = get_str(p, "triggerBy", default="LastPrice")
        if trigger_by not in TRIGGER_BY:
            raise params_error("params error: triggerBy invalid")
        if spot:
            trigger_direction = 1 if trigger_price > m.last else 2
        else:
            trigger_direction = get_int(p, "triggerDirection", 0) or 0
            if trigger_direction not in (1, 2):
                raise params_error("params error: triggerDirection must be 1 or 2")
    else:
        trigger_price = None

    if link_id and link_id in ex.link_ids:
        raise ApiError(110072, "OrderLinkedID is duplicate")

    cfg = ex.config
    if trigger_price is not None:
        conditional = sum(1 for o in m.conditionals if o.stop_order_type == "Stop")
        if conditional >= cfg.max_conditional_orders_per_symbol:
            raise ApiError(110009, "The number of stop orders exceeds maximum limit allowed")
    elif len(m.buys) + len(m.sells) >= cfg.max_active_orders_per_symbol:
        raise ApiError(110020, "Number of active orders exceeds the limit")

    if order_type == "Limit" and price is not None:
        check_band(inst, m.last, side, price)

    if trigger_price is not None and not spot:
        shown = f"trigger_price[{inst.price_str(trigger_price)}]"
        current = f"current[{inst.price_str(m.last)}]"
        if trigger_direction == 1 and trigger_price <= m.last:
            raise ApiError(110092, f"expect Rising, but {shown} <= {current}")
        if trigger_direction == 2 and trigger_price >= m.last:
            raise ApiError(110093, f"expect Falling, but {shown} >= {current}")

    # the price the order's value and margin are judged at
    ref_price = price if order_type == "Limit" and price is not None else trigger_price or m.last
    reserve = ZERO
    tpsl: TpslSpec | None = None
    if not spot:
        pos = ex.position(inst.symbol, position_idx)
        closable = ex.closable(side, pos, hedge)
        if reduce_only:
            if trigger_price is None and closable == 0:
                raise ApiError(110017, ZERO_POSITION_MSG)
            if qty == 0 or (trigger_price is None and qty > closable):
                cap = (
                    inst.cfg.max_mkt_order_qty if order_type == "Market" else inst.cfg.max_order_qty
                )
                qty = min(closable if closable else qty, cap)
                if qty == 0:
                    raise ApiError(110017, ZERO_POSITION_MSG)
        else:
            if qty * ref_price < inst.cfg.min_notional:
                raise ApiError(
                    110094,
                    f"Order does not meet minimum order value {fmt(inst.cfg.min_notional)}USDT",
                )
            if trigger_price is None:
                open_qty = max(qty - closable, ZERO)
                needed = fine(open_qty * ref_price / ex.leverage[inst.symbol])
                if needed > ex.available_usdt():
                    raise ApiError(110007, "ab not enough for new order")
                if order_type == "Limit":
                    reserve = needed
        tpsl = parse_tpsl(inst, p, side, ref_price)
        if tpsl is not None and reduce_only:
            raise ApiError(110057, "reduce-only orders cannot carry TP/SL")
    else:
        if get_opt_decimal(p, "takeProfit") or get_opt_decimal(p, "stopLoss"):
            raise params_error(
                "params error: TP/SL on spot orders is not supported by the simulator"
            )
        notional = quote_budget if quote_budget is not None else qty * ref_price
        if notional < inst.cfg.min_notional:
            raise ApiError(170140, "Order value exceeded lower limit.")
        if side == BUY:
            if quote_budget is not None:
                need = quote_budget
            elif order_type == "Market":
                need = qty * protective_price(inst, m.last, side)
            else:
                need = qty * ref_price
            coin = inst.cfg.quote_coin
        else:
            need = qty
            coin = inst.cfg.base_coin
        if trigger_price is None and need > ex.spot_available(coin):
            raise ApiError(170131, "Insufficient balance.")
        if order_type == "Limit":
            reserve = need

    return NewOrder(
        inst=inst,
        market=m,
        side=side,
        order_type=order_type,
        time_in_force=tif,
        link_id=link_id,
        qty=qty,
        price=price if order_type == "Limit" else None,
        position_idx=position_idx,
        reduce_only=reduce_only,
        close_on_trigger=close_on_trigger,
        market_unit=market_unit,
        quote_budget=quote_budget,
        trigger_price=trigger_price,
        trigger_direction=trigger_direction,
        trigger_by=trigger_by,
        tpsl=tpsl,
        smp_type=get_str(p, "smpType", default="None"),
        slippage=slippage,
        reserve=reserve,
    )
