"""Instruments: a symbol's filters (from config) and its `instruments-info` rendering."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bybit_sim.config import InstrumentConfig
from bybit_sim.engine.numbers import fmt, fmt_step

LAUNCH_TIME = "1584230400000"


def _places(step: Decimal) -> int:
    exponent = step.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


class Instrument:
    """Read-only view of one instrument's configuration plus derived values (precomputed once:
    these are read on every order, so they are plain attributes)."""

    __slots__ = (
        "_price_fmt",
        "_qty_fmt",
        "category",
        "cfg",
        "is_spot",
        "step",
        "symbol",
        "symbol_id",
        "tick",
    )

    def __init__(self, cfg: InstrumentConfig, symbol_id: int) -> None:
        self.cfg = cfg
        self.symbol_id = symbol_id
        self.category: str = cfg.category
        self.symbol: str = cfg.symbol
        self.is_spot = cfg.category == "spot"
        self.tick: Decimal = cfg.tick_size
        self.step: Decimal = cfg.qty_step
        self._price_fmt = f"{{:.{_places(cfg.tick_size)}f}}".format
        self._qty_fmt = f"{{:.{_places(cfg.qty_step)}f}}".format

    def price_str(self, value: Decimal) -> str:
        return self._price_fmt(value)

    def qty_str(self, value: Decimal) -> str:
        return self._qty_fmt(value)

    def info(self) -> dict[str, Any]:
        """The `instruments-info` list item, shaped per category as Bybit's."""
        c = self.cfg
        if self.is_spot:
            return {
                "symbol": c.symbol,
                "symbolId": self.symbol_id,
                "baseCoin": c.base_coin,
                "quoteCoin": c.quote_coin,
                "innovation": "0",
                "symbolType": "",
                "xstockMultiplier": "",
                "status": "Trading",
                "marginTrading": "utaOnly",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": fmt(c.qty_step),
                    "quotePrecision": fmt(c.quote_precision),
                    "minOrderQty": fmt(c.min_order_qty),
                    "maxOrderQty": fmt(c.max_order_qty),
                    "minOrderAmt": fmt(c.min_notional),
                    "maxOrderAmt": "8000000",
                    "maxLimitOrderQty": fmt(c.max_order_qty),
                    "maxMarketOrderQty": fmt(c.max_mkt_order_qty),
                    "postOnlyMaxLimitOrderSize": fmt(c.max_order_qty),
                },
                "priceFilter": {"tickSize": fmt(c.tick_size)},
                "riskParameters": {
                    "priceLimitRatioX": fmt(c.price_limit_ratio),
                    "priceLimitRatioY": fmt(c.price_limit_ratio * 2),
                },
            }
        exponent = c.tick_size.as_tuple().exponent
        price_scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return {
            "symbol": c.symbol,
            "symbolId": self.symbol_id,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": c.base_coin,
            "quoteCoin": c.quote_coin,
            "settleCoin": c.quote_coin,
            "symbolType": "",
            "launchTime": LAUNCH_TIME,
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(price_scale),
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": fmt_step(c.max_leverage, Decimal("0.01")),
                "leverageStep": "0.01",
            },
            "priceFilter": {
                "minPrice": fmt_step(c.min_price or c.tick_size, c.tick_size),
                "maxPrice": fmt_step(c.max_price or c.initial_price * 1000, c.tick_size),
                "tickSize": fmt_step(c.tick_size, c.tick_size),
            },
            "lotSizeFilter": {
                "maxOrderQty": fmt_step(c.max_order_qty, c.qty_step),
                "minOrderQty": fmt_step(c.min_order_qty, c.qty_step),
                "qtyStep": fmt_step(c.qty_step, c.qty_step),
                "postOnlyMaxOrderQty": fmt_step(c.max_order_qty, c.qty_step),
                "maxMktOrderQty": fmt_step(c.max_mkt_order_qty, c.qty_step),
                "minNotionalValue": fmt(c.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "copyTrading": "both",
            "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "displayName": "",
            "forbidUplWithdrawal": False,
            "riskParameters": {
                "priceLimitRatioX": fmt(c.price_limit_ratio),
                "priceLimitRatioY": fmt(c.price_limit_ratio * 2),
            },
            "isPreListing": False,
            "preListingInfo": None,
        }
