"""Instruments: a symbol's filters (from config) and its `instruments-info` rendering."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bybit_sim.config import InstrumentConfig
from bybit_sim.engine.numbers import fmt, fmt_step

LAUNCH_TIME = "1584230400000"


@dataclass(frozen=True, slots=True)
class Instrument:
    """Read-only view of one instrument's configuration plus derived values."""

    cfg: InstrumentConfig
    symbol_id: int

    @property
    def category(self) -> str:
        return self.cfg.category

    @property
    def symbol(self) -> str:
        return self.cfg.symbol

    @property
    def is_spot(self) -> bool:
        return self.cfg.category == "spot"

    @property
    def tick(self) -> Decimal:
        return self.cfg.tick_size

    @property
    def step(self) -> Decimal:
        return self.cfg.qty_step

    def price_str(self, value: Decimal) -> str:
        return fmt_step(value, self.cfg.tick_size)

    def qty_str(self, value: Decimal) -> str:
        return fmt_step(value, self.cfg.qty_step)

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
