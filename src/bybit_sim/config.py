"""Simulator configuration.

One `SimConfig` describes a whole simulated exchange: where it listens, the seed that makes price
paths and ids reproducible, the API keys of its single account, the instruments with Bybit's
filters, how each price moves, fees, the initial wallet and Bybit's per-UID rate-limit table.

Every field has a default that mirrors Bybit (see `docs/bybit_sim.md`), so `SimConfig()` is a
usable exchange. A file given with `--config FILE` (JSON or TOML) overrides any subset of fields;
instruments given in a file replace the default list entirely.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Category = Literal["linear", "spot"]
PathMode = Literal["random_walk", "frozen", "scripted"]


class InstrumentConfig(BaseModel):
    """One tradable symbol with Bybit's filters and its simulated market."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category: Category
    symbol: str
    base_coin: str
    quote_coin: str = "USDT"
    tick_size: Decimal
    # linear: qtyStep; spot: basePrecision (spot has no qtyStep)
    qty_step: Decimal
    min_order_qty: Decimal
    max_order_qty: Decimal
    max_mkt_order_qty: Decimal
    # linear minNotionalValue / spot minOrderAmt (quote coin)
    min_notional: Decimal = Decimal("5")
    quote_precision: Decimal = Decimal("0.00000001")
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    max_leverage: Decimal = Decimal("100")
    price_limit_ratio: Decimal = Decimal("0.05")
    initial_price: Decimal
    path: PathMode = "random_walk"
    scripted_prices: list[Decimal] = Field(default_factory=list)
    # random walk: standard deviation of one step, in ticks (defaults give 2-4 % a day at the
    # default 250 ms tick)
    volatility_ticks: Decimal = Decimal("3")
    # synthetic book: quantity of the best level, each deeper level grows by `level_growth`
    level_qty: Decimal
    level_growth: Decimal = Decimal("0.25")
    # distance between synthetic levels, in ticks
    level_spacing_ticks: int = 1

    @model_validator(mode="after")
    def _check(self) -> InstrumentConfig:
        if self.path == "scripted" and not self.scripted_prices:
            raise ValueError(f"{self.symbol}: path 'scripted' needs scripted_prices")
        for name in ("tick_size", "qty_step", "min_order_qty", "level_qty", "initial_price"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.symbol}: {name} must be positive")
        if self.initial_price % self.tick_size != 0:
            raise ValueError(f"{self.symbol}: initial_price not a multiple of tick_size")
        return self


class FeeRates(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    taker: Decimal
    maker: Decimal


class RateLimitRule(BaseModel):
    """Requests per rolling second for one endpoint; `per_category` overrides by category."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int
    per_category: dict[str, int] = Field(default_factory=dict)

    def for_category(self, category: str) -> int:
        return self.per_category.get(category, self.limit)


def _default_instruments() -> list[InstrumentConfig]:
    d = Decimal
    return [
        InstrumentConfig(
            category="linear",
            symbol="BTCUSDT",
            base_coin="BTC",
            tick_size=d("0.10"),
            qty_step=d("0.001"),
            min_order_qty=d("0.001"),
            max_order_qty=d("1190.000"),
            max_mkt_order_qty=d("500.000"),
            min_price=d("0.10"),
            max_price=d("1999999.80"),
            max_leverage=d("100.00"),
            initial_price=d("65000.0"),
            volatility_ticks=d("20"),
            level_qty=d("0.5"),
        ),
        InstrumentConfig(
            category="linear",
            symbol="ETHUSDT",
            base_coin="ETH",
            tick_size=d("0.01"),
            qty_step=d("0.01"),
            min_order_qty=d("0.01"),
            max_order_qty=d("7240.00"),
            max_mkt_order_qty=d("1250.00"),
            min_price=d("0.01"),
            max_price=d("199999.98"),
            max_leverage=d("100.00"),
            initial_price=d("3500.00"),
            volatility_ticks=d("20"),
            level_qty=d("5"),
        ),
        InstrumentConfig(
            category="linear",
            symbol="SOLUSDT",
            base_coin="SOL",
            tick_size=d("0.010"),
            qty_step=d("0.1"),
            min_order_qty=d("0.1"),
            max_order_qty=d("79770.0"),
            max_mkt_order_qty=d("12000.0"),
            min_price=d("0.010"),
            max_price=d("19999.980"),
            max_leverage=d("100.00"),
            initial_price=d("150.000"),
            volatility_ticks=d("1"),
            level_qty=d("100"),
        ),
        InstrumentConfig(
            category="linear",
            symbol="XRPUSDT",
            base_coin="XRP",
            tick_size=d("0.0001"),
            qty_step=d("1"),
            min_order_qty=d("1"),
            max_order_qty=d("1990000"),
            max_mkt_order_qty=d("300000"),
            min_price=d("0.0001"),
            max_price=d("199.9998"),
            max_leverage=d("75.00"),
            initial_price=d("2.5000"),
            volatility_ticks=d("1"),
            level_qty=d("20000"),
        ),
        InstrumentConfig(
            category="spot",
            symbol="BTCUSDT",
            base_coin="BTC",
            tick_size=d("0.01"),
            qty_step=d("0.000001"),
            min_order_qty=d("0.000048"),
            max_order_qty=d("71.73956243"),
            max_mkt_order_qty=d("4.7681508"),
            min_notional=d("5"),
            max_leverage=d("1"),
            initial_price=d("65000.00"),
            volatility_ticks=d("200"),
            level_qty=d("0.3"),
        ),
        InstrumentConfig(
            category="spot",
            symbol="ETHUSDT",
            base_coin="ETH",
            tick_size=d("0.01"),
            qty_step=d("0.00001"),
            min_order_qty=d("0.00062"),
            max_order_qty=d("1229.2336343"),
            max_mkt_order_qty=d("115.8346"),
            min_notional=d("5"),
            max_leverage=d("1"),
            initial_price=d("3500.00"),
            volatility_ticks=d("20"),
            level_qty=d("3"),
        ),
    ]


def _default_rate_limits() -> dict[str, RateLimitRule]:
    """Bybit's default per-UID limits (v5-reference §2), keyed by request path."""
    trade = {"linear": 10, "spot": 20}
    return {
        "/v5/order/create": RateLimitRule(limit=10, per_category=trade),
        "/v5/order/amend": RateLimitRule(limit=10, per_category={"linear": 10, "spot": 10}),
        "/v5/order/cancel": RateLimitRule(limit=10, per_category=trade),
        "/v5/order/cancel-all": RateLimitRule(limit=10, per_category=trade),
        "/v5/order/create-batch": RateLimitRule(limit=10, per_category=trade),
        "/v5/order/amend-batch": RateLimitRule(limit=10, per_category=trade),
        "/v5/order/cancel-batch": RateLimitRule(limit=10, per_category=trade),
        "/v5/order/realtime": RateLimitRule(limit=50),
        "/v5/order/history": RateLimitRule(limit=50),
        "/v5/execution/list": RateLimitRule(limit=50),
        "/v5/position/list": RateLimitRule(limit=50),
        "/v5/position/trading-stop": RateLimitRule(limit=10),
        "/v5/position/switch-mode": RateLimitRule(limit=10),
        "/v5/position/set-leverage": RateLimitRule(limit=10),
        "/v5/account/wallet-balance": RateLimitRule(limit=50),
        "/v5/account/fee-rate": RateLimitRule(limit=5),
        "/v5/account/info": RateLimitRule(limit=50),
    }


# Endpoints whose limit is counted per category (trade endpoints).
PER_CATEGORY_ENDPOINTS = frozenset(
    {
        "/v5/order/create",
        "/v5/order/amend",
        "/v5/order/cancel",
        "/v5/order/cancel-all",
        "/v5/order/create-batch",
        "/v5/order/amend-batch",
        "/v5/order/cancel-batch",
    }
)
# Batch endpoints: one rate-limit unit per order in `request`
BATCH_ENDPOINTS = frozenset(
    {"/v5/order/create-batch", "/v5/order/amend-batch", "/v5/order/cancel-batch"}
)


class SimConfig(BaseModel):
    """Everything that defines one simulated exchange (see module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 1
    #: mixed into order and execution ids. 0: ids depend on the seed alone (reproducible, also
    #: after `/sim/reset`). Otherwise every start and every reset draws ids no earlier run drew:
    #: a real exchange never reuses an id, and a client's database keeps the old ones
    #: (`bybit-sim serve` sets it to the start time unless `--seed` is given).
    id_epoch: int = 0
    api_keys: dict[str, str] = Field(default_factory=lambda: {"sim-key": "sim-secret"})
    uid: int = 100001
    instruments: list[InstrumentConfig] = Field(default_factory=_default_instruments)
    tick_interval_ms: int = 250
    book_levels: int = 200
    fees: dict[str, FeeRates] = Field(
        default_factory=lambda: {
            "linear": FeeRates(taker=Decimal("0.00055"), maker=Decimal("0.0002")),
            "spot": FeeRates(taker=Decimal("0.001"), maker=Decimal("0.001")),
        }
    )
    initial_wallet: dict[str, Decimal] = Field(default_factory=lambda: {"USDT": Decimal("100000")})
    default_leverage: Decimal = Decimal("10")
    position_mode: Literal["one_way", "hedge"] = "one_way"
    # maintenance margin rate used for positionMM and the simple liquidation check
    maintenance_margin_rate: Decimal = Decimal("0.005")
    default_recv_window_ms: int = 5000
    future_tolerance_ms: int = 1000
    rate_limits_enabled: bool = True
    rate_limits: dict[str, RateLimitRule] = Field(default_factory=_default_rate_limits)
    max_active_orders_per_symbol: int = 500
    max_conditional_orders_per_symbol: int = 10
    closed_orders_kept: int = 500
    # One-way network latency added before the private and public WebSockets handle a client
    # request (auth, subscribe, ping). 0 answers at loopback speed; a few ms models a real
    # venue, which matters for clients that register a request only after sending it (pybit).
    ws_request_latency_ms: int = Field(default=0, ge=0, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        seen: set[tuple[str, str]] = set()
        for inst in self.instruments:
            key = (inst.category, inst.symbol)
            if key in seen:
                raise ValueError(f"duplicate instrument {inst.category}/{inst.symbol}")
            seen.add(key)
        for category in {i.category for i in self.instruments}:
            if category not in self.fees:
                raise ValueError(f"no fee rates for category {category}")
        if not self.api_keys:
            raise ValueError("at least one API key is required")
        if self.tick_interval_ms <= 0:
            raise ValueError("tick_interval_ms must be positive")
        return self

    def with_overrides(self, **changes: object) -> SimConfig:
        """A validated copy with some top-level fields replaced."""
        data = self.model_dump()
        data.update(changes)
        return SimConfig.model_validate(data)

    def with_path(self, mode: PathMode) -> SimConfig:
        """A copy where every instrument's price path uses `mode` (e.g. "frozen" for tests)."""
        data = self.model_dump()
        for inst in data["instruments"]:
            inst["path"] = mode
        return SimConfig.model_validate(data)

    @classmethod
    def load(cls, path: Path) -> SimConfig:
        """Load from a `.json` or `.toml` file; unknown keys are an error."""
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"config file must be .json or .toml, got {path.name}")
        return cls.model_validate(data)
