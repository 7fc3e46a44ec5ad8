"""Wire models of Bybit V5 (REST results and WebSocket messages).

Bybit sends every business number as a JSON string; they are parsed straight into ``Decimal``
(never float: JSON bodies are also decoded with ``parse_float=Decimal``). ``""`` means "no value"
and becomes ``None``. Millisecond timestamps become timezone-aware UTC datetimes. Field names are
snake_case and read from Bybit's camelCase. Unknown fields are ignored, so additions on Bybit's
side do not break parsing; a missing required field or a malformed number raises
``pydantic.ValidationError``, which the client reports as a ``ProtocolError``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def loads(text: str | bytes) -> Any:
    """JSON decoding that never produces a float."""
    return json.loads(text, parse_float=Decimal)


def _empty_to_none(value: object) -> object:
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise ValueError("float received where a decimal string was expected")
    return value


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("float received where a decimal string was expected")
    return value


def ms_to_datetime(value: object) -> datetime | None:
    """Bybit ms timestamp (string or int) → aware UTC datetime; ``""``/``0`` → None."""
    if isinstance(value, datetime):
        return value
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError(f"not a millisecond timestamp: {value!r}")
    ms = int(value)
    if ms <= 0:
        return None
    return _EPOCH + timedelta(milliseconds=ms)


Dec = Annotated[Decimal, BeforeValidator(_no_float)]
OptDec = Annotated[Decimal | None, BeforeValidator(_empty_to_none)]
Timestamp = Annotated[datetime | None, BeforeValidator(ms_to_datetime)]


class WireModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class Envelope(WireModel):
    """Every REST answer: ``{retCode, retMsg, result, retExtInfo, time}``."""

    ret_code: int
    ret_msg: str = ""
    result: Any = None
    ret_ext_info: Any = None
    time: int | None = None


class ServerTime(WireModel):
    time_second: int
    time_nano: int


class OrderAck(WireModel):
    """Result of create / amend / cancel: an acknowledgement, not a final state."""

    order_id: str
    order_link_id: str = ""


class Order(WireModel):
    """An order as REST realtime/history and the WS ``order`` topic describe it (§4)."""

    order_id: str
    order_link_id: str = ""
    symbol: str
    side: str
    order_type: str
    price: OptDec = None
    qty: Dec
    time_in_force: str = ""
    order_status: str
    position_idx: int = 0
    avg_price: OptDec = None
    leaves_qty: OptDec = None
    leaves_value: OptDec = None
    cum_exec_qty: Dec = Decimal(0)
    cum_exec_value: OptDec = None
    cum_exec_fee: OptDec = None
    cum_fee_detail: dict[str, Dec] = Field(default_factory=dict)
    reduce_only: bool = False
    close_on_trigger: bool = False
    trigger_price: OptDec = None
    trigger_direction: int = 0
    take_profit: OptDec = None
    stop_loss: OptDec = None
    stop_order_type: str = ""
    cancel_type: str = ""
    reject_reason: str = ""
    created_time: Timestamp = None
    updated_time: Timestamp = None
    category: str | None = None
    closed_pnl: OptDec = None

    @property
    def is_open(self) -> bool:
        return self.order_status in {"New", "PartiallyFilled", "Untriggered", "Triggered"}


class Execution(WireModel):
    """A fill (REST execution/list, WS ``execution`` and ``execution.fast``)."""

    exec_id: str
    order_id: str
    order_link_id: str = ""
    symbol: str
    side: str
    exec_price: Dec
    exec_qty: Dec
    exec_value: OptDec = None
    exec_fee: OptDec = None
    fee_rate: OptDec = None
    fee_currency: str = ""
    exec_type: str = "Trade"
    exec_time: Timestamp = None
    is_maker: bool = False
    order_price: OptDec = None
    order_qty: OptDec = None
    leaves_qty: OptDec = None
    closed_size: OptDec = None
    exec_pnl: OptDec = None
    seq: int | None = None
    category: str | None = None


class Position(WireModel):
    """REST ``position/list`` row or WS ``position`` item (WS calls avgPrice entryPrice)."""

    symbol: str
    side: str = ""
    size: Dec = Decimal(0)
    position_idx: int = 0
    avg_price: OptDec = None
    entry_price: OptDec = None
    position_value: OptDec = None
    mark_price: OptDec = None
    leverage: OptDec = None
    liq_price: OptDec = None
    take_profit: OptDec = None
    stop_loss: OptDec = None
    unrealised_pnl: OptDec = None
    cur_realised_pnl: OptDec = None
    cum_realised_pnl: OptDec = None
    position_status: str = ""
    seq: int | None = None
    created_time: Timestamp = None
    updated_time: Timestamp = None
    category: str | None = None

    @property
    def entry(self) -> Decimal | None:
        return self.avg_price if self.avg_price is not None else self.entry_price


class WalletCoin(WireModel):
    coin: str
    equity: OptDec = None
    wallet_balance: OptDec = None
    usd_value: OptDec = None
    locked: OptDec = None
    total_order_im: OptDec = Field(default=None, alias="totalOrderIM")
    total_position_im: OptDec = Field(default=None, alias="totalPositionIM")
    total_position_mm: OptDec = Field(default=None, alias="totalPositionMM")
    unrealised_pnl: OptDec = None
    cum_realised_pnl: OptDec = None
    borrow_amount: OptDec = None
    spot_borrow: OptDec = None
    bonus: OptDec = None


class WalletAccount(WireModel):
    account_type: str
    total_equity: OptDec = None
    total_wallet_balance: OptDec = None
    total_margin_balance: OptDec = None
    total_available_balance: OptDec = None
    total_perp_upl: OptDec = Field(default=None, alias="totalPerpUPL")
    total_initial_margin: OptDec = None
    total_maintenance_margin: OptDec = None
    account_im_rate: OptDec = Field(default=None, alias="accountIMRate")
    account_mm_rate: OptDec = Field(default=None, alias="accountMMRate")
    coin: tuple[WalletCoin, ...] = ()

    def coin_balance(self, coin: str) -> WalletCoin | None:
        return next((c for c in self.coin if c.coin == coin), None)


class PriceFilter(WireModel):
    tick_size: Dec
    min_price: OptDec = None
    max_price: OptDec = None


class LotSizeFilter(WireModel):
    min_order_qty: OptDec = None
    max_order_qty: OptDec = None
    max_mkt_order_qty: OptDec = None
    qty_step: OptDec = None
    min_notional_value: OptDec = None
    # spot
    base_precision: OptDec = None
    quote_precision: OptDec = None
    min_order_amt: OptDec = None
    max_limit_order_qty: OptDec = None
    max_market_order_qty: OptDec = None


class RawInstrument(WireModel):
    symbol: str
    status: str
    base_coin: str
    quote_coin: str
    settle_coin: str = ""
    contract_type: str = ""
    price_filter: PriceFilter
    lot_size_filter: LotSizeFilter


class Ticker(WireModel):
    symbol: str
    last_price: OptDec = None
    mark_price: OptDec = None
    index_price: OptDec = None
    bid1_price: OptDec = None
    bid1_size: OptDec = None
    ask1_price: OptDec = None
    ask1_size: OptDec = None


def _levels(value: object) -> object:
    if not isinstance(value, list):
        raise ValueError("order book side must be a list")
    return [tuple(level) for level in value]


class OrderBook(WireModel):
    symbol: str = Field(alias="s")
    bids: Annotated[list[tuple[Dec, Dec]], BeforeValidator(_levels)] = Field(
        default_factory=list, alias="b"
    )
    asks: Annotated[list[tuple[Dec, Dec]], BeforeValidator(_levels)] = Field(
        default_factory=list, alias="a"
    )
    ts: int = 0
    update_id: int = Field(default=0, alias="u")
    seq: int = 0


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(WireModel, Generic[ItemT]):
    """One page of a cursor-paginated list; ``next_page_cursor == ""`` on the last page."""

    category: str = ""
    list: tuple[ItemT, ...] = ()
    next_page_cursor: str = ""


class PrivateMessage(WireModel):
    """Data message of the private stream: ``{id, topic, creationTime, data: [...]}``."""

    id: str = ""
    topic: str
    creation_time: Timestamp = None
    data: tuple[dict[str, Any], ...]

    @property
    def base_topic(self) -> str:
        """``order.linear`` → ``order``; ``execution.fast.linear`` → ``execution``."""
        return self.topic.split(".", 1)[0]

    def orders(self) -> list[Order]:
        return [Order.model_validate(item) for item in self.data]

    def executions(self) -> list[Execution]:
        return [Execution.model_validate(item) for item in self.data]

    def positions(self) -> list[Position]:
        return [Position.model_validate(item) for item in self.data]

    def wallets(self) -> list[WalletAccount]:
        return [WalletAccount.model_validate(item) for item in self.data]
