"""Linear positions: size, average entry, realised PnL; one row per (symbol, positionIdx)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bybit_sim.engine.instruments import Instrument
from bybit_sim.engine.numbers import ZERO, fine, fmt

BUY = "Buy"
SELL = "Sell"


@dataclass(slots=True)
class Position:
    """`side` is "" when flat; `size` is never negative."""

    inst: Instrument
    idx: int
    leverage: Decimal
    side: str = ""
    size: Decimal = ZERO
    avg_price: Decimal = ZERO
    cum_realised: Decimal = ZERO
    cur_realised: Decimal = ZERO
    take_profit: Decimal = ZERO
    stop_loss: Decimal = ZERO
    tp_trigger_by: str = "LastPrice"
    sl_trigger_by: str = "LastPrice"
    created_time: int = 0
    updated_time: int = 0
    open_time: int = 0
    seq: int = -1
    # ids of the Untriggered TakeProfit / StopLoss orders that carry this position's TP/SL
    tp_order_id: str = ""
    sl_order_id: str = ""
    # ids of Untriggered PartialTakeProfit / PartialStopLoss orders on this position
    partial_ids: list[str] = field(default_factory=list)

    def signed_size(self) -> Decimal:
        return self.size if self.side == BUY else -self.size

    def apply_fill(
        self, side: str, qty: Decimal, price: Decimal, now: int
    ) -> tuple[Decimal, Decimal]:
        """Apply a fill; returns (closed qty, gross realised PnL of the closed part).

        A fill against the position's side reduces it (realising PnL against the average entry);
        any remainder opens a position on the fill's side at the fill price (one-way flip).
        """
        closed = ZERO
        pnl = ZERO
        if self.size > 0 and side != self.side:
            closed = min(qty, self.size)
            direction = 1 if self.side == BUY else -1
            pnl = fine((price - self.avg_price) * closed * direction)
            self.size -= closed
            qty -= closed
            if self.size == 0:
                self.side = ""
                self.avg_price = ZERO
        if qty > 0:
            if self.size == 0:
                self.side = side
                self.avg_price = price
                self.size = qty
                self.open_time = now
                self.cur_realised = ZERO
            else:
                total = self.size + qty
                self.avg_price = fine((self.avg_price * self.size + price * qty) / total)
                self.size = total
        self.updated_time = now
        return closed, pnl

    def unrealised(self, mark: Decimal) -> Decimal:
        if self.size == 0:
            return ZERO
        direction = 1 if self.side == BUY else -1
        return (mark - self.avg_price) * self.size * direction

    def initial_margin(self) -> Decimal:
        return fine(self.size * self.avg_price / self.leverage)

    def render(self, mark: Decimal, taker_fee: Decimal, mmr: Decimal, ws: bool) -> dict[str, Any]:
        """REST `position/list` row, or the WS `position` item when `ws` is true."""
        inst = self.inst
        value = self.size * self.avg_price
        im = value / self.leverage if self.size else ZERO
        mm = value * mmr
        im_mp = self.size * mark / self.leverage
        mm_mp = self.size * mark * mmr
        if self.size:
            direction = 1 if self.side == BUY else -1
            break_even = self.avg_price * (1 + direction * 2 * taker_fee)
            entry = inst.price_str(self.avg_price)
            break_even_text = inst.price_str(break_even.quantize(inst.tick))
        else:
            entry = "0"
            break_even_text = "0"
        item: dict[str, Any] = {
            "positionIdx": self.idx,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": inst.symbol,
            "side": self.side,
            "size": inst.qty_str(self.size),
            "positionValue": fmt(value),
            "markPrice": inst.price_str(mark),
            "leverage": fmt(self.leverage),
            "breakEvenPrice": break_even_text,
            "autoAddMargin": 0,
            "positionIM": fmt(im),
            "positionIMByMp": fmt(im_mp),
            "positionMM": fmt(mm),
            "positionMMByMp": fmt(mm_mp),
            "liqPrice": "",
            "takeProfit": inst.price_str(self.take_profit) if self.take_profit else "0",
            "stopLoss": inst.price_str(self.stop_loss) if self.stop_loss else "0",
            "trailingStop": "0",
            "unrealisedPnl": fmt(self.unrealised(mark)),
            "curRealisedPnl": fmt(self.cur_realised),
            "cumRealisedPnl": fmt(self.cum_realised),
            "sessionAvgPrice": "",
            "positionStatus": "Normal",
            "adlRankIndicator": 2 if self.size else 0,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "createdTime": str(self.created_time),
            "updatedTime": str(self.updated_time),
            "openTime": self.open_time,
            "seq": self.seq,
            "tpslMode": "Full",
            "bustPrice": "",
            "positionBalance": fmt(im),
            "tradeMode": 0,
        }
        if ws:
            item["category"] = inst.category
            item["entryPrice"] = entry
            item["delta"] = item["gamma"] = item["vega"] = item["theta"] = ""
        else:
            item["avgPrice"] = entry
        return item
