"""Position settings: leverage, position mode (one-way / hedge) and trading-stop.

Each function is a REST endpoint body: it takes the `Exchange` and the request parameters,
returns Bybit's `result` and delivers the resulting events (`position`, `order`) when it ends.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bybit_sim.engine import tpsl
from bybit_sim.engine.errors import ApiError, params_error
from bybit_sim.engine.exchange import HEDGE, ONE_WAY
from bybit_sim.engine.numbers import fmt, is_multiple
from bybit_sim.engine.params import Params, get_decimal, get_int, get_opt_decimal, get_str
from bybit_sim.engine.validation import parse_tpsl

if TYPE_CHECKING:
    from bybit_sim.engine.exchange import Exchange


def set_leverage(ex: Exchange, p: Params) -> dict[str, Any]:
    """POST /v5/position/set-leverage."""
    try:
        category = ex.category_of(p, ("linear",))
        inst = ex.instrument(category, get_str(p, "symbol", required=True))
        buy = get_decimal(p, "buyLeverage")
        sell = get_decimal(p, "sellLeverage")
        if buy != sell:
            raise params_error("params error: buyLeverage must equal sellLeverage")
        if buy < 1 or buy > inst.cfg.max_leverage or not is_multiple(buy, Decimal("0.01")):
            raise params_error(
                f"params error: leverage must be in [1, {fmt(inst.cfg.max_leverage)}]"
            )
        if buy == ex.leverage[inst.symbol]:
            raise ApiError(110043, "leverage not modified")
        ex.leverage[inst.symbol] = buy
        now = ex.now()
        for idx in (0, 1, 2):
            pos = ex.positions.get((inst.symbol, idx))
            if pos is not None:
                pos.leverage = buy
                pos.updated_time = now
                ex._dirty_positions[(inst.symbol, idx)] = None
        return {}
    finally:
        ex._flush()


def switch_mode(ex: Exchange, p: Params) -> dict[str, Any]:
    """POST /v5/position/switch-mode (mode 0 one-way, 3 hedge), by symbol or coin."""
    try:
        category = ex.category_of(p, ("linear",))
        symbol = get_str(p, "symbol")
        coin = get_str(p, "coin")
        mode_raw = get_int(p, "mode")
        if mode_raw not in (0, 3):
            raise params_error("params error: position_mode invalid")
        mode = HEDGE if mode_raw == 3 else ONE_WAY
        if symbol:
            inst = ex.instrument(category, symbol)
            if ex.position_mode[inst.symbol] == mode:
                raise ApiError(110025, "Position mode is not modified")
            check_switchable(ex, inst.symbol, raise_error=True)
            targets = [inst]
        elif coin:
            targets = [
                i
                for i in ex._instruments.values()
                if not i.is_spot
                and i.cfg.quote_coin == coin
                and ex.position_mode[i.symbol] != mode
                and check_switchable(ex, i.symbol, raise_error=False)
            ]
        else:
            raise params_error("params error: symbol or coin is required")
        now = ex.now()
        for inst in targets:
            ex.position_mode[inst.symbol] = mode
            ex._make_positions(inst, now)
            for idx in (1, 2) if mode == HEDGE else (0,):
                ex._dirty_positions[(inst.symbol, idx)] = None
        return {}
    finally:
        ex._flush()


def check_switchable(ex: Exchange, symbol: str, raise_error: bool) -> bool:
    if any(pos.size for (s, _), pos in ex.positions.items() if s == symbol):
        if raise_error:
            raise ApiError(
                110024, "You have an existing position, so position mode cannot be switched"
            )
        return False
    if any(o.symbol == symbol and o.category == "linear" for o in ex.open_orders.values()):
        if raise_error:
            raise ApiError(110028, "You have open orders, so position mode cannot be switched")
        return False
    return True


def trading_stop(ex: Exchange, p: Params) -> dict[str, Any]:
    """POST /v5/position/trading-stop (Full mode TP/SL of a position)."""
    try:
        category = ex.category_of(p, ("linear",))
        inst = ex.instrument(category, get_str(p, "symbol", required=True))
        idx = get_int(p, "positionIdx")
        if idx is None:
            raise params_error("params error: positionIdx is required")
        pos = ex.positions.get((inst.symbol, idx))
        if pos is None:
            raise params_error("position idx not match position mode")
        if get_opt_decimal(p, "trailingStop"):
            raise params_error("params error: trailingStop is not supported by the simulator")
        if get_opt_decimal(p, "takeProfit") is None and get_opt_decimal(p, "stopLoss") is None:
            raise ApiError(34040, "not modified")
        if pos.size == 0:
            raise params_error("can not set tp/sl/ts for zero position")
        m = ex.markets[("linear", inst.symbol)]
        spec = parse_tpsl(inst, p, pos.side, m.last, pos.tp_trigger_by, pos.sl_trigger_by)
        assert spec is not None
        if spec.mode == "Partial":
            tpsl.add_partial_tpsl(ex, pos, spec, p)
            return {}
        tp, sl = spec.take_profit, spec.stop_loss
        if (tp is None or tp == pos.take_profit) and (sl is None or sl == pos.stop_loss):
            raise ApiError(34040, "not modified")
        tpsl.set_position_tpsl(ex, pos, tp, sl, spec.tp_trigger_by, spec.sl_trigger_by)
        return {}
    finally:
        ex._flush()
