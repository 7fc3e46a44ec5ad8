"""Per-symbol market state: price path, synthetic book, 24h statistics, resting/conditional
orders of our account, and the ticker / orderbook renderings."""

from __future__ import annotations

from bisect import bisect_left, insort
from decimal import Decimal
from typing import Any

from bybit_sim.engine.book import BUY, SELL, SyntheticBook
from bybit_sim.engine.instruments import Instrument
from bybit_sim.engine.numbers import ZERO, fmt
from bybit_sim.engine.orders import Order
from bybit_sim.engine.pricepath import PricePath

FUNDING_INTERVAL_MS = 8 * 3600 * 1000


def _buy_key(o: Order) -> tuple[Decimal, int]:
    return (-o.price, o.seq)


def _sell_key(o: Order) -> tuple[Decimal, int]:
    return (o.price, o.seq)


class Market:
    """State of one (category, symbol)."""

    def __init__(self, inst: Instrument, seed: int, levels: int) -> None:
        cfg = inst.cfg
        self.inst = inst
        self.path = PricePath(cfg, seed)
        self.last = cfg.initial_price
        self.book = SyntheticBook(cfg, levels, cfg.initial_price)
        self.frozen = False
        self.prev24h = cfg.initial_price
        self.high = cfg.initial_price
        self.low = cfg.initial_price
        self.volume = ZERO
        self.turnover = ZERO
        self.exec_seq = 0
        # our resting orders in price-time priority
        self.buys: list[Order] = []
        self.sells: list[Order] = []
        self.conditionals: list[Order] = []

    def set_last(self, price: Decimal) -> None:
        self.last = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.book.reprice(price)

    def rest(self, order: Order) -> None:
        if order.side == BUY:
            insort(self.buys, order, key=_buy_key)
        else:
            insort(self.sells, order, key=_sell_key)

    def unrest(self, order: Order) -> None:
        """Take an order out of its side's list (a binary search on its priority key; the key
        must be the one it was inserted with, so re-pricing unrests before changing price)."""
        if order.side == BUY:
            side, key = self.buys, _buy_key
        else:
            side, key = self.sells, _sell_key
        i = bisect_left(side, key(order), key=key)
        if i < len(side) and side[i] is order:
            del side[i]

    def next_exec_seq(self) -> int:
        self.exec_seq += 1
        return self.exec_seq

    def ticker(self, now: int) -> dict[str, Any]:
        inst = self.inst
        bid = self.book.best(BUY)
        ask = self.book.best(SELL)
        change = (self.last - self.prev24h) / self.prev24h if self.prev24h else ZERO
        last = inst.price_str(self.last)
        item: dict[str, Any] = {
            "symbol": inst.symbol,
            "bid1Price": inst.price_str(bid[0]) if bid else "",
            "bid1Size": inst.qty_str(bid[1]) if bid else "",
            "ask1Price": inst.price_str(ask[0]) if ask else "",
            "ask1Size": inst.qty_str(ask[1]) if ask else "",
            "lastPrice": last,
            "prevPrice24h": inst.price_str(self.prev24h),
            "price24hPcnt": fmt(change.quantize(Decimal("0.000001"))),
            "highPrice24h": inst.price_str(self.high),
            "lowPrice24h": inst.price_str(self.low),
            "turnover24h": fmt(self.turnover),
            "volume24h": fmt(self.volume),
        }
        if inst.is_spot:
            item["usdIndexPrice"] = last
            return item
        next_funding = (now // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
        item.update(
            {
                "indexPrice": last,
                "markPrice": last,
                "prevPrice1h": inst.price_str(self.prev24h),
                "openInterest": "0",
                "openInterestValue": "0",
                "fundingRate": "0.0001",
                "nextFundingTime": str(next_funding),
                "predictedDeliveryPrice": "",
                "basisRate": "",
                "basis": "",
                "deliveryFeeRate": "",
                "deliveryTime": "0",
                "preOpenPrice": "",
                "preQty": "",
                "curPreListingPhase": "",
                "fundingIntervalHour": "8",
                "fundingCap": "0.005",
                "basisRateYear": "",
            }
        )
        return item

    def orderbook(self, depth: int, now: int) -> dict[str, Any]:
        inst = self.inst
        return {
            "s": inst.symbol,
            "b": [[inst.price_str(p), inst.qty_str(q)] for p, q in self.book.depth(BUY, depth)],
            "a": [[inst.price_str(p), inst.qty_str(q)] for p, q in self.book.depth(SELL, depth)],
            "ts": now,
            "u": self.book.update_id,
            "seq": self.book.seq,
            "cts": now,
        }
