"""Configuration: one `Settings` class, every `ORDERMANAGER_*` variable, validated at start-up.

Values come from the process environment first, then from a `.env` file in the working
directory (or the file named by `ORDERMANAGER_ENV_FILE`), then from the defaults below. The
defaults run the service against the local simulator (`bybit_environment=sim`) and the private
PostgreSQL / RabbitMQ started by `scripts/infra`, so `scripts/run` needs no configuration.

Rules worth knowing:

* Money (limits in USDT, ratios, thresholds) is `Decimal`, parsed from the variable's text.
* Secrets (`api_key`, `bybit_api_secret`, ...) are `SecretStr`: they print as `**********`.
  `Settings.redacted_dict()` is the form to log or print.
* `api_key` (the REST API's `X-API-Key`) defaults to `DEV_API_KEY` only with the simulator;
  against a real Bybit environment it must be set, at least 16 characters, and not the dev key.
* Bybit keys are required against a real Bybit environment unless `dry_run` is on; with the
  simulator they default to `SIM_API_KEY` / `SIM_API_SECRET`.
* Exchange URLs are derived from `bybit_environment` unless set explicitly.
* An `ORDERMANAGER_*` variable that matches no setting is an error (a typo must not silently
  fall back to a default).

`load_settings()` turns every problem into one `ConfigError` whose lines each name the variable
and the rule it broke; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self, cast
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from order_manager.domain.enums import Category, PositionMode, TimeInForce
from order_manager.domain.planner import PendingLimitPolicy, PlannerConfig
from order_manager.domain.risk import RiskLimits
from order_manager.domain.signals import AmountUnit

ENV_PREFIX = "ORDERMANAGER_"
ENV_FILE_VARIABLE = "ORDERMANAGER_ENV_FILE"
DEV_API_KEY = "om-dev-key-change-me"
SIM_API_KEY = "sim-key"  # bybit_sim's default key pair (SimConfig.api_keys)
SIM_API_SECRET = "sim-secret"
SIM_DEFAULT_PORT = 8900
MAX_ORDER_LINK_ID_PREFIX = 8

# While set, Settings reads only its constructor arguments (load_settings has merged the sources).
_EXPLICIT_VALUES_ONLY: ContextVar[bool] = ContextVar("explicit_values_only", default=False)

PositiveDecimal = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ConfigError(Exception):
    """Invalid configuration; `problems` holds one `(variable, rule)` pair per problem."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"{variable}: {rule}" for variable, rule in problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class BybitEnvironment(StrEnum):
    MAINNET = "mainnet"
    TESTNET = "testnet"
    DEMO = "demo"
    SIM = "sim"


class EventSource(StrEnum):
    BYBIT_WS = "bybit_ws"
    WS_GATEWAY = "ws_gateway"


class WarmupHandling(StrEnum):
    EXECUTE = "execute"
    DRY_RUN = "dry_run"
    IGNORE = "ignore"


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


# Real hosts (shared/bybit/v5-reference.md §7). Demo trading has no public stream of its own.
_BYBIT_HOSTS: dict[BybitEnvironment, tuple[str, str, str]] = {
    BybitEnvironment.MAINNET: (
        "https://api.bybit.com",
        "wss://stream.bybit.com/v5/private",
        "wss://stream.bybit.com/v5/public/{category}",
    ),
    BybitEnvironment.TESTNET: (
        "https://api-testnet.bybit.com",
        "wss://stream-testnet.bybit.com/v5/private",
        "wss://stream-testnet.bybit.com/v5/public/{category}",
    ),
    BybitEnvironment.DEMO: (
        "https://api-demo.bybit.com",
        "wss://stream-demo.bybit.com/v5/private",
        "wss://stream.bybit.com/v5/public/{category}",
    ),
}


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a URL with scheme {' or '.join(schemes)} and a host")
    return value


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


class Settings(BaseSettings):
    """Every setting of the service; environment variable = `ORDERMANAGER_` + upper-cased name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # ---- infrastructure
    database_url: str = "postgresql://om:om@127.0.0.1:55432/order_manager"
    database_pool_min_size: int = Field(default=2, ge=1)
    database_pool_max_size: int = Field(default=10, ge=1, le=500)
    database_command_timeout_seconds: PositiveSeconds = 10.0
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:55672/"
    signals_queue: str = Field(default="model-service.trading_signals", min_length=1)
    signals_dlq: str = Field(default="order-manager.signals.dlq", min_length=1)
    order_events_queue: str = Field(default="order-manager.order_events", min_length=1)
    position_events_queue: str = Field(default="order-manager.position_events", min_length=1)
    consumer_prefetch: int = Field(default=64, ge=1, le=65535)
    lane_queue_bound: int = Field(default=256, ge=1)
    outbox_batch_size: int = Field(default=100, ge=1, le=10000)
    outbox_poll_interval_seconds: PositiveSeconds = 1.0
    #: after a NOTIFY the relay waits this long so a signal's other commits join the batch
    outbox_relay_coalesce_ms: float = Field(default=5.0, ge=0, le=1000)
    #: published events older than this are deleted, except each aggregate's newest (0: keep)
    outbox_retention_hours: float = Field(default=168.0, ge=0, allow_inf_nan=False)
    outbox_prune_interval_seconds: PositiveSeconds = 600.0

    # ---- REST API
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=4600, ge=1, le=65535)
    api_key: SecretStr | None = None
    shutdown_grace_seconds: PositiveSeconds = 10.0
    startup_timeout_seconds: PositiveSeconds = 30.0

    # ---- logging
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.AUTO

    # ---- behaviour switches
    enable_balance_check: bool = True
    #: where a signal's balances and positions come from: REST per signal, or the tracker's
    #: store (kept from the private stream; REST while it is not trusted or behind)
    account_source: Literal["exchange", "store"] = "exchange"
    #: `store`: how long a lane waits for the tracker to apply our taker's fill before REST
    account_store_wait_ms: float = Field(default=250.0, ge=0, le=10000)
    dry_run: bool = False
    warmup_signals: WarmupHandling = WarmupHandling.EXECUTE
    sell_amount_unit: AmountUnit = AmountUnit.QUOTE
    signal_max_age_seconds: PositiveSeconds = 60.0
    position_mode: PositionMode = PositionMode.ONE_WAY
    category: Category = Category.LINEAR
    allow_position_flip: bool = False
    order_link_id_prefix: str = Field(default="om", pattern=r"^[A-Za-z0-9_]{1,8}$")

    # ---- positions, reconciliation, protection
    position_snapshot_interval: int = Field(default=300, ge=1)
    position_validation_interval: int = Field(default=60, ge=1)
    reconcile_interval_seconds: int = Field(default=300, ge=1)
    stale_order_timeout_seconds: int = Field(default=300, ge=1)
    cancel_stale_orders: bool = True
    stale_order_sweep_interval_seconds: int = Field(default=15, ge=1)
    #: seconds between two run-time passes over the intents of failed signals (services.recovery)
    intent_settle_interval_seconds: int = Field(default=30, ge=1)
    #: seconds between two samples of the backlog gauges (services.backlog)
    backlog_sample_interval_seconds: PositiveSeconds = 15.0
    loss_warning_threshold_pct: PositiveDecimal = Decimal("5")

    # ---- risk limits (USDT unless the name says otherwise)
    max_order_size_usdt: PositiveDecimal = Decimal("10000")
    max_position_size_usdt: PositiveDecimal = Decimal("50000")
    max_total_exposure_usdt: PositiveDecimal = Decimal("100000")
    #: 0 = off (then, with the balance check off too, no wallet is read per signal)
    max_order_size_ratio: Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)] = Decimal(
        "0.5"
    )
    max_daily_volume_usdt: NonNegativeDecimal = Decimal("0")
    risk_reduce_instead_of_reject: bool = False
    max_orders_per_minute_per_symbol: int = Field(default=30, ge=1)

    # ---- order type selection and splitting
    market_confidence_threshold: Fraction = Decimal("0.75")
    market_max_spread_bps: NonNegativeDecimal = Decimal("10")
    limit_price_offset_bps: NonNegativeDecimal = Decimal("1")
    limit_time_in_force: TimeInForce = TimeInForce.GTC
    max_slippage_bps: PositiveDecimal = Decimal("50")
    max_book_depth_share: Fraction = Decimal("0.25")
    max_split_orders: int = Field(default=5, ge=1, le=50)

    # ---- planner rules (docs/decisions.md explains each)
    allow_short: bool = True
    min_confidence: Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)] = Decimal("0")
    market_data_max_age_seconds: PositiveSeconds = 5.0
    post_only_limits: bool = False
    amend_resting_orders: bool = True
    cancel_opposite_orders: bool = True
    pending_limits_on_market_signal: PendingLimitPolicy = PendingLimitPolicy.KEEP
    warmup_uses_limit: bool = True
    default_stop_loss_pct: PositiveDecimal | None = None
    default_take_profit_pct: PositiveDecimal | None = None
    risk_fee_rate: Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False)] = Decimal("0.001")
    signal_max_future_skew_seconds: PositiveSeconds = 5.0

    # ---- exchange
    bybit_environment: BybitEnvironment = BybitEnvironment.SIM
    bybit_api_key: SecretStr | None = None
    bybit_api_secret: SecretStr | None = None
    bybit_rest_url: str | None = None
    bybit_ws_private_url: str | None = None
    bybit_ws_public_url: str | None = None
    bybit_sim_port: int = Field(default=SIM_DEFAULT_PORT, ge=1, le=65535)
    bybit_recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    bybit_request_timeout_seconds: PositiveSeconds = 10.0
    bybit_connect_timeout_seconds: PositiveSeconds = 5.0
    bybit_api_retry_max_attempts: int = Field(default=5, ge=1, le=100)
    bybit_api_retry_base_delay: PositiveSeconds = 0.2
    bybit_api_retry_multiplier: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    bybit_api_retry_max_delay: PositiveSeconds = 10.0
    ws_ping_interval_seconds: PositiveSeconds = 20.0
    ws_reconnect_max_delay_seconds: PositiveSeconds = 30.0

    # ---- event source
    event_source: EventSource = EventSource.BYBIT_WS
    ws_gateway_url: str = "http://127.0.0.1:4400"
    ws_gateway_api_key: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _EXPLICIT_VALUES_ONLY.get():
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings, file_secret_settings)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                yield name, redact_url(value)
            else:
                yield name, value

    @field_validator(
        "bybit_environment",
        "event_source",
        "sell_amount_unit",
        "warmup_signals",
        "position_mode",
        "category",
        "log_format",
        mode="before",
    )
    @classmethod
    def _lower_case_choice(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return _check_url(value, ("postgresql", "postgres"))

    @field_validator("rabbitmq_url")
    @classmethod
    def _rabbitmq_url(cls, value: str) -> str:
        return _check_url(value, ("amqp", "amqps"))

    @field_validator("ws_gateway_url")
    @classmethod
    def _ws_gateway_url(cls, value: str) -> str:
        return _check_url(value, ("http", "https"))

    @field_validator("bybit_rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("http", "https")).rstrip("/")

    @field_validator("bybit_ws_private_url", "bybit_ws_public_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, ("ws", "wss"))

    @field_validator("api_key", "bybit_api_key", "bybit_api_secret", "ws_gateway_api_key")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty (unset it to use the default)")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        problems: list[str] = []
        live_exchange = self.bybit_environment is not BybitEnvironment.SIM
        if self.api_key is None:
            if live_exchange:
                problems.append(
                    f"{ENV_PREFIX}API_KEY: required when "
                    f"{ENV_PREFIX}BYBIT_ENVIRONMENT is {self.bybit_environment.value}"
                )
            else:
                self.api_key = SecretStr(DEV_API_KEY)
        elif live_exchange:
            key = self.api_key.get_secret_value()
            if len(key) < 16 or key == DEV_API_KEY:
                problems.append(
                    f"{ENV_PREFIX}API_KEY: must be at least 16 characters and not the development "
                    f"key when {ENV_PREFIX}BYBIT_ENVIRONMENT is {self.bybit_environment.value}"
                )
        if live_exchange and not self.dry_run:
            for name in ("bybit_api_key", "bybit_api_secret"):
                if getattr(self, name) is None:
                    problems.append(
                        f"{ENV_PREFIX}{name.upper()}: required when "
                        f"{ENV_PREFIX}BYBIT_ENVIRONMENT is {self.bybit_environment.value} "
                        f"and {ENV_PREFIX}DRY_RUN is false"
                    )
        if not live_exchange:
            if self.bybit_api_key is None:
                self.bybit_api_key = SecretStr(SIM_API_KEY)
            if self.bybit_api_secret is None:
                self.bybit_api_secret = SecretStr(SIM_API_SECRET)
        if self.database_pool_min_size > self.database_pool_max_size:
            problems.append(
                f"{ENV_PREFIX}DATABASE_POOL_MIN_SIZE: must not exceed "
                f"{ENV_PREFIX}DATABASE_POOL_MAX_SIZE ({self.database_pool_max_size})"
            )
        if self.bybit_api_retry_max_delay < self.bybit_api_retry_base_delay:
            problems.append(
                f"{ENV_PREFIX}BYBIT_API_RETRY_MAX_DELAY: must be at least "
                f"{ENV_PREFIX}BYBIT_API_RETRY_BASE_DELAY ({self.bybit_api_retry_base_delay})"
            )
        if self.max_order_size_usdt > self.max_position_size_usdt:
            problems.append(
                f"{ENV_PREFIX}MAX_ORDER_SIZE_USDT: must not exceed "
                f"{ENV_PREFIX}MAX_POSITION_SIZE_USDT ({self.max_position_size_usdt})"
            )
        if self.max_position_size_usdt > self.max_total_exposure_usdt:
            problems.append(
                f"{ENV_PREFIX}MAX_POSITION_SIZE_USDT: must not exceed "
                f"{ENV_PREFIX}MAX_TOTAL_EXPOSURE_USDT ({self.max_total_exposure_usdt})"
            )
        if self.event_source is EventSource.WS_GATEWAY and self.ws_gateway_api_key is None:
            problems.append(
                f"{ENV_PREFIX}WS_GATEWAY_API_KEY: required when {ENV_PREFIX}EVENT_SOURCE is "
                "ws_gateway"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # ---- derived values

    @property
    def is_simulated_exchange(self) -> bool:
        return self.bybit_environment is BybitEnvironment.SIM

    @property
    def effective_api_key(self) -> str:
        """The REST API key to compare `X-API-Key` against (never empty after validation)."""
        assert self.api_key is not None  # set by _cross_checks
        return self.api_key.get_secret_value()

    @property
    def traded_categories(self) -> tuple[Category, ...]:
        """Categories the service trades and watches: ``ORDERMANAGER_CATEGORY`` (the default
        of signals without ``metadata.category``) plus linear and spot, which signals may
        always name. Instruments are loaded, and orders reconciled, for exactly these."""
        return tuple(dict.fromkeys((self.category, Category.LINEAR, Category.SPOT)))

    @property
    def rest_url(self) -> str:
        """Bybit REST base URL: explicit setting, else derived from the environment."""
        if self.bybit_rest_url:
            return self.bybit_rest_url
        if self.is_simulated_exchange:
            return f"http://127.0.0.1:{self.bybit_sim_port}"
        return _BYBIT_HOSTS[self.bybit_environment][0]

    @property
    def _sim_ws_base(self) -> str:
        """The simulator serves REST and WebSockets on one port: its streams follow an explicit
        ORDERMANAGER_BYBIT_REST_URL (http→ws), else ORDERMANAGER_BYBIT_SIM_PORT."""
        if self.bybit_rest_url:
            parts = urlsplit(self.bybit_rest_url)
            scheme = "wss" if parts.scheme == "https" else "ws"
            return urlunsplit((scheme, parts.netloc, "", "", ""))
        return f"ws://127.0.0.1:{self.bybit_sim_port}"

    @property
    def ws_private_url(self) -> str:
        if self.bybit_ws_private_url:
            return self.bybit_ws_private_url
        if self.is_simulated_exchange:
            return f"{self._sim_ws_base}/v5/private"
        return _BYBIT_HOSTS[self.bybit_environment][1]

    @property
    def ws_public_url(self) -> str:
        """Public stream for `category` (Bybit has one public endpoint per category)."""
        if self.bybit_ws_public_url:
            return self.bybit_ws_public_url
        if self.is_simulated_exchange:
            return f"{self._sim_ws_base}/v5/public/{self.category.value}"
        return _BYBIT_HOSTS[self.bybit_environment][2].format(category=self.category.value)

    def planner_config(self) -> PlannerConfig:
        """The domain planner's parameters from these settings (one mapping, used by bootstrap)."""
        return PlannerConfig(
            order_link_id_prefix=self.order_link_id_prefix,
            position_mode=self.position_mode,
            market_confidence_threshold=self.market_confidence_threshold,
            market_max_spread_bps=self.market_max_spread_bps,
            limit_price_offset_bps=self.limit_price_offset_bps,
            limit_time_in_force=self.limit_time_in_force,
            post_only_limits=self.post_only_limits,
            max_slippage_bps=self.max_slippage_bps,
            max_order_notional=self.max_order_size_usdt,
            max_book_depth_share=self.max_book_depth_share,
            max_split_orders=self.max_split_orders,
            sell_amount_unit=self.sell_amount_unit,
            allow_short=self.allow_short,
            allow_position_flip=self.allow_position_flip,
            min_confidence=self.min_confidence,
            market_data_max_age=timedelta(seconds=self.market_data_max_age_seconds),
            amend_resting_orders=self.amend_resting_orders,
            cancel_opposite_orders=self.cancel_opposite_orders,
            pending_limits_on_market=self.pending_limits_on_market_signal,
            warmup_uses_limit=self.warmup_uses_limit,
            default_stop_loss_pct=self.default_stop_loss_pct,
            default_take_profit_pct=self.default_take_profit_pct,
            reduce_instead_of_reject=self.risk_reduce_instead_of_reject,
        )

    def risk_limits(self) -> RiskLimits:
        """The domain risk check's limits from these settings (0 daily volume = no limit)."""
        return RiskLimits(
            enable_balance_check=self.enable_balance_check,
            max_order_notional=self.max_order_size_usdt,
            max_position_notional=self.max_position_size_usdt,
            max_total_exposure=self.max_total_exposure_usdt,
            max_order_size_ratio=self.max_order_size_ratio or None,
            max_daily_volume=self.max_daily_volume_usdt or None,
            max_orders_per_minute_per_symbol=self.max_orders_per_minute_per_symbol,
            reduce_instead_of_reject=self.risk_reduce_instead_of_reject,
            fee_rate=self.risk_fee_rate,
        )

    def redacted_dict(self) -> dict[str, Any]:
        """Effective configuration safe to log or print: secrets masked, URL passwords masked,
        Decimals as exact strings, derived exchange URLs included."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                out[name] = "**********"
            elif isinstance(value, Decimal):
                out[name] = str(value)
            elif isinstance(value, StrEnum):
                out[name] = value.value
            elif isinstance(value, str) and "://" in value:
                out[name] = redact_url(value)
            else:
                out[name] = value
        out["effective_bybit_rest_url"] = self.rest_url
        out["effective_bybit_ws_private_url"] = self.ws_private_url
        out["effective_bybit_ws_public_url"] = self.ws_public_url
        return out


def variable_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _unknown_variables(sources: Mapping[str, str | None]) -> list[tuple[str, str]]:
    known = {variable_name(name) for name in Settings.model_fields} | {ENV_FILE_VARIABLE}
    problems = []
    for key in sorted(sources):
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            close = difflib.get_close_matches(upper, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append((upper, f"unknown setting{hint}"))
    return problems


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    loc = error.get("loc") or ()
    message = str(error.get("msg", "invalid value"))
    if loc:
        variable = variable_name(str(loc[0]))
        raw = error.get("input")
        if isinstance(raw, dict) or variable_name_is_secret(variable):
            shown = ""
        else:
            shown = f" (got {(redact_url(raw) if isinstance(raw, str) else raw)!r})"
        return variable, f"{message.removeprefix('Value error, ')}{shown}"
    # model-level checks put the variable name first: "ORDERMANAGER_X: rule"
    message = message.removeprefix("Value error, ")
    variable, _, rule = message.partition(": ")
    return variable, rule


def variable_name_is_secret(variable: str) -> bool:
    lowered = variable.lower()
    return any(word in lowered for word in ("key", "secret", "password", "token"))


def load_settings(
    env_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read and validate the configuration, or raise `ConfigError` naming every bad variable.

    `env_file` defaults to `$ORDERMANAGER_ENV_FILE` or `.env` (ignored when absent).
    `environ` is for tests; by default the process environment is used.
    """
    env = dict(os.environ if environ is None else environ)
    path = Path(env_file or env.get(ENV_FILE_VARIABLE) or ".env")
    file_values: dict[str, str | None] = dotenv_values(path) if path.is_file() else {}
    problems = _unknown_variables({**file_values, **env})
    if (env_file is not None or ENV_FILE_VARIABLE in env) and not path.is_file():
        problems.append((ENV_FILE_VARIABLE, f"file {str(path)!r} does not exist"))
    values: dict[str, str] = {}
    for source in (file_values, env):
        for key, value in source.items():
            upper = key.upper()
            if not upper.startswith(ENV_PREFIX) or upper == ENV_FILE_VARIABLE:
                continue
            name = upper.removeprefix(ENV_PREFIX).lower()
            if value is None or value == "":
                values.pop(name, None)  # an empty value means "use the default"
            else:
                values[name] = value
    token = _EXPLICIT_VALUES_ONLY.set(True)
    try:
        # The sources were merged above (environment over .env); Settings reads nothing else,
        # so a custom `environ` is used exactly as given.
        settings = Settings(**cast(dict[str, Any], values))
    except ValidationError as exc:
        for error in exc.errors():
            variable, rule = _describe(error)
            for line in rule.split("\n"):
                var, _, text = line.partition(": ")
                problems.append((var, text) if var.startswith(ENV_PREFIX) else (variable, line))
    finally:
        _EXPLICIT_VALUES_ONLY.reset(token)
    if problems:
        raise ConfigError(problems)
    return settings
