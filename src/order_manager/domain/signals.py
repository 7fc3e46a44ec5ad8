"""Trading signals: exact parsing and validation of ``model-service.trading_signals`` messages.

The contract is ``shared/design/messages.md`` §1. Parsing never raises: every input, however
broken (arbitrary bytes included), ends as a ``TradingSignal`` or a ``SignalRejection``.

Public API:

- ``parse_signal(body: bytes | str) -> TradingSignal | SignalRejection``
  Structural validation that needs no outside state: JSON (numbers parsed to ``Decimal`` from the
  raw text, never via float), required fields, types, ranges (amount > 0, confidence 0..1),
  ``signal_type`` case-insensitive, ``asset`` upper-cased, ISO 8601 timestamps (no offset or
  ``Z`` = UTC), recognised ``metadata`` keys, advisory ``market_data_snapshot`` (an invalid one
  is set aside with a note in ``TradingSignal.notes``, never a reason to refuse). Unknown fields
  are kept in ``TradingSignal.extra`` (and everything in ``TradingSignal.raw``). An empty or
  whitespace-only ``trace_id`` is treated as absent (``trace_id=None``; the intake generates
  one), never as a reason to dead-letter the signal.
- ``validate_signal(signal, *, instruments, now, max_age, max_future_skew, default_category)
  -> TradingSignal | SignalRejection`` — checks that need state: the asset exists in the
  instrument cache under ``metadata.category`` or ``default_category`` (``unknown_asset``) and
  is trading (``asset_not_trading``); the signal is not older than ``max_age``
  (``stale_signal``) nor further than ``max_future_skew`` in the future
  (``timestamp_in_future``); ``metadata.expires_at`` has not passed (``signal_expired``).
- ``intake_signal(body, *, instruments, now, max_age, ...)``: both steps.
- ``SignalRejection``: a ``Rejection`` plus ``signal_id`` (when one could be read, so the intake
  can record the outcome) and ``trace_id``. ``dead_letter`` is True for malformed messages
  (see ``rejections.DEAD_LETTER_CODES``).
- ``TradingSignal``, ``SignalMetadata``, ``SignalMarketData``, ``SignalType``, ``AmountUnit``,
  ``Urgency``.

The ``instruments`` argument is a mapping ``(Category, symbol) -> Instrument``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.instruments import Instrument
from order_manager.domain.money import ONE, ZERO, parse_decimal
from order_manager.domain.rejections import RejectCode, Rejection

_E = TypeVar("_E", bound=StrEnum)

KNOWN_FIELDS: frozenset[str] = frozenset(
    {
        "signal_id",
        "signal_type",
        "asset",
        "amount",
        "amount_unit",
        "confidence",
        "timestamp",
        "strategy_id",
        "model_version",
        "is_warmup",
        "market_data_snapshot",
        "metadata",
        "trace_id",
    }
)
_ASSET = re.compile(r"[A-Z0-9]{2,40}")
MAX_TEXT_LENGTH = 256


class SignalType(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def side(self) -> Side:
        return Side.BUY if self is SignalType.BUY else Side.SELL


class AmountUnit(StrEnum):
    """Unit of ``amount``: quote currency (USDT) by default, or base coin."""

    QUOTE = "quote"
    BASE = "base"


class Urgency(StrEnum):
    """``metadata.urgency`` (free-form upstream; unrecognised values read as ``normal``)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


_URGENCY_WORDS: Mapping[str, Urgency] = {
    "low": Urgency.LOW,
    "normal": Urgency.NORMAL,
    "medium": Urgency.NORMAL,
    "high": Urgency.HIGH,
    "urgent": Urgency.HIGH,
    "immediate": Urgency.HIGH,
    "critical": Urgency.HIGH,
}


@dataclass(frozen=True, slots=True)
class SignalMarketData:
    """``market_data_snapshot``: advisory only (older than the exchange's book).

    ``price`` is the mid price, ``spread`` an absolute price difference (ask - bid).
    """

    price: Decimal | None = None
    spread: Decimal | None = None
    volume_24h: Decimal | None = None
    volatility: Decimal | None = None
    bid_depth: Decimal | None = None
    ask_depth: Decimal | None = None

    @property
    def spread_bps(self) -> Decimal | None:
        if self.price is None or self.spread is None or self.price <= 0:
            return None
        return self.spread / self.price * Decimal(10_000)


@dataclass(frozen=True, slots=True)
class SignalMetadata:
    """Recognised ``metadata`` keys (all optional); ``raw`` keeps the whole object."""

    order_type: OrderType | None = None
    limit_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool | None = None
    post_only: bool | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    category: Category | None = None  # None: the service's default (linear per messages.md)
    position_idx: PositionIdx | None = None
    max_slippage_bps: Decimal | None = None
    expires_at: datetime | None = None
    urgency: Urgency = Urgency.NORMAL
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))


@dataclass(frozen=True, slots=True)
class TradingSignal:
    """A structurally valid trading signal. All numbers are exact Decimals."""

    signal_id: str
    signal_type: SignalType
    asset: str
    amount: Decimal
    confidence: Decimal
    timestamp: datetime
    strategy_id: str
    amount_unit: AmountUnit | None = None
    model_version: str | None = None
    is_warmup: bool = False
    market_data_snapshot: SignalMarketData | None = None
    metadata: SignalMetadata = field(default_factory=SignalMetadata)
    trace_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: what the parser set aside without refusing the signal (an invalid advisory
    #: ``market_data_snapshot``); the intake logs them
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))

    @property
    def side(self) -> Side:
        return self.signal_type.side

    @property
    def category(self) -> Category:
        """``metadata.category``, else ``linear`` (the contract's default)."""
        return self.metadata.category or Category.LINEAR

    def category_or(self, default: Category) -> Category:
        """``metadata.category``, else the service's configured default category."""
        return self.metadata.category or default


@dataclass(frozen=True, slots=True)
class SignalRejection(Rejection):
    """A refused or malformed signal; ``signal_id`` is set whenever one could be read."""

    signal_id: str | None = None
    trace_id: str | None = None


class _Invalid(Exception):
    """Internal: first problem found while parsing; becomes a ``SignalRejection``."""

    def __init__(self, code: RejectCode, field_name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field_name = field_name
        self.message = message


def _fail(code: RejectCode, field_name: str, message: str) -> NoReturn:
    raise _Invalid(code, field_name, message)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _loads(body: bytes | str) -> object:
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
    return json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant)


# ---------------------------------------------------------------------------- field readers


def _present(obj: Mapping[str, Any], name: str) -> bool:
    return obj.get(name) is not None


def _required(obj: Mapping[str, Any], name: str) -> Any:
    if not _present(obj, name):
        _fail(RejectCode.MISSING_FIELD, name, f"required field {name!r} is missing")
    return obj[name]


def _text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        _fail(RejectCode.BAD_TYPE, name, f"{name} must be a string")
    if not allow_empty and not value.strip():
        _fail(RejectCode.INVALID_VALUE, name, f"{name} must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        _fail(RejectCode.INVALID_VALUE, name, f"{name} is longer than {MAX_TEXT_LENGTH}")
    return value


def _number(value: Any, name: str, *, allow_string: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | str):
        _fail(RejectCode.BAD_TYPE, name, f"{name} must be a number")
    if isinstance(value, str) and not allow_string:
        _fail(RejectCode.BAD_TYPE, name, f"{name} must be a JSON number")
    try:
        return parse_decimal(value)
    except ValueError as exc:
        _fail(RejectCode.INVALID_VALUE, name, f"{name}: {exc}")


def _positive(value: Any, name: str) -> Decimal:
    number = _number(value, name)
    if number <= 0:
        _fail(RejectCode.INVALID_VALUE, name, f"{name} must be greater than 0")
    return number


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        _fail(RejectCode.BAD_TYPE, name, f"{name} must be true or false")
    return value


def _timestamp(value: Any, name: str) -> datetime:
    text = _text(value, name)
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        _fail(RejectCode.INVALID_VALUE, name, f"{name} is not an ISO 8601 timestamp")


def _choice(value: Any, name: str, enum: type[_E], lookup: Callable[[str], str]) -> _E:
    text = _text(value, name)
    key = lookup(text)
    for member in enum:
        if lookup(member.value) == key:
            return member
    allowed = ", ".join(m.value for m in enum)
    _fail(RejectCode.INVALID_VALUE, name, f"{name} must be one of {allowed}")


def _optional_text(obj: Mapping[str, Any], name: str) -> str | None:
    return _text(obj[name], name) if _present(obj, name) else None


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        _fail(RejectCode.BAD_TYPE, name, f"{name} must be an object")
    return value


# ---------------------------------------------------------------------------- sections


def _signal_id(obj: Mapping[str, Any]) -> str:
    text = _text(_required(obj, "signal_id"), "signal_id")
    try:
        return str(uuid.UUID(text))
    except ValueError:
        _fail(RejectCode.INVALID_VALUE, "signal_id", "signal_id must be a UUID")


def _readable_signal_id(obj: object) -> str | None:
    """Best effort: a signal_id to record a malformed message under."""
    if not isinstance(obj, dict):
        return None
    value = obj.get("signal_id")
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_LENGTH:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _trace_id(obj: Mapping[str, Any]) -> str | None:
    """The optional ``trace_id``; empty or whitespace-only counts as absent (None), so one is
    generated downstream exactly as for a missing one instead of dead-lettering the signal.
    A non-string or an over-long one is still refused (``bad_type`` / ``invalid_value``)."""
    value = obj.get("trace_id")
    if isinstance(value, str) and not value.strip():
        return None
    return _optional_text(obj, "trace_id")


def _readable_trace_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        value = obj.get("trace_id")
        if isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT_LENGTH:
            return value
    return None


def _market_data(value: Any) -> SignalMarketData | None:
    if value is None:
        return None
    snap = _object(value, "market_data_snapshot")

    def opt(key: str) -> Decimal | None:
        name = f"market_data_snapshot.{key}"
        if not _present(snap, key):
            return None
        number = _number(snap[key], name)
        if number < 0:
            _fail(RejectCode.INVALID_VALUE, name, f"{name} must not be negative")
        return number

    bid_depth = ask_depth = None
    depth = snap.get("orderbook_depth")
    if depth is not None:
        depth_obj = _object(depth, "market_data_snapshot.orderbook_depth")
        for key in ("bid_depth", "ask_depth"):
            name = f"market_data_snapshot.orderbook_depth.{key}"
            if _present(depth_obj, key):
                number = _number(depth_obj[key], name)
                if number < 0:
                    _fail(RejectCode.INVALID_VALUE, name, f"{name} must not be negative")
                if key == "bid_depth":
                    bid_depth = number
                else:
                    ask_depth = number
    price = opt("price")
    if price is not None and price == 0:
        _fail(RejectCode.INVALID_VALUE, "market_data_snapshot.price", "price must be positive")
    return SignalMarketData(
        price=price,
        spread=opt("spread"),
        volume_24h=opt("volume_24h"),
        volatility=opt("volatility"),
        bid_depth=bid_depth,
        ask_depth=ask_depth,
    )


def _metadata(value: Any) -> SignalMetadata:
    if value is None:
        return SignalMetadata()
    meta = _object(value, "metadata")

    def name(key: str) -> str:
        return f"metadata.{key}"

    kwargs: dict[str, Any] = {"raw": meta}
    if _present(meta, "order_type"):
        kwargs["order_type"] = _choice(meta["order_type"], name("order_type"), OrderType, str.lower)
    if _present(meta, "limit_price"):
        kwargs["limit_price"] = _positive(meta["limit_price"], name("limit_price"))
    if _present(meta, "time_in_force"):
        kwargs["time_in_force"] = _choice(
            meta["time_in_force"], name("time_in_force"), TimeInForce, _tif_key
        )
    for key in ("reduce_only", "post_only"):
        if _present(meta, key):
            kwargs[key] = _bool(meta[key], name(key))
    for key in ("stop_loss", "take_profit"):
        if _present(meta, key):
            kwargs[key] = _positive(meta[key], name(key))
    if _present(meta, "category"):
        kwargs["category"] = _choice(meta["category"], name("category"), Category, str.lower)
    if _present(meta, "position_idx"):
        idx_value = meta["position_idx"]
        if isinstance(idx_value, bool) or not isinstance(idx_value, Decimal):
            _fail(RejectCode.BAD_TYPE, name("position_idx"), "position_idx must be 0, 1 or 2")
        if idx_value not in (0, 1, 2):
            _fail(RejectCode.INVALID_VALUE, name("position_idx"), "position_idx must be 0, 1 or 2")
        kwargs["position_idx"] = PositionIdx(int(idx_value))
    if _present(meta, "max_slippage_bps"):
        slippage = _number(meta["max_slippage_bps"], name("max_slippage_bps"))
        if slippage < 0:
            _fail(RejectCode.INVALID_VALUE, name("max_slippage_bps"), "must not be negative")
        kwargs["max_slippage_bps"] = slippage
    if _present(meta, "expires_at"):
        kwargs["expires_at"] = _timestamp(meta["expires_at"], name("expires_at"))
    urgency = meta.get("urgency")
    if isinstance(urgency, str):
        kwargs["urgency"] = _URGENCY_WORDS.get(urgency.strip().lower(), Urgency.NORMAL)
    return SignalMetadata(**kwargs)


def _tif_key(text: str) -> str:
    return text.replace("_", "").replace("-", "").lower()


def _build(obj: Mapping[str, Any]) -> TradingSignal:
    signal_id = _signal_id(obj)
    signal_type = _choice(_required(obj, "signal_type"), "signal_type", SignalType, str.lower)
    asset = _text(_required(obj, "asset"), "asset").upper()
    if _ASSET.fullmatch(asset) is None:
        _fail(RejectCode.INVALID_VALUE, "asset", "asset must be a Bybit symbol like BTCUSDT")
    amount = _number(_required(obj, "amount"), "amount")
    if amount <= 0:
        _fail(RejectCode.AMOUNT_NOT_POSITIVE, "amount", "amount must be greater than 0")
    amount_unit = None
    if _present(obj, "amount_unit"):
        amount_unit = _choice(obj["amount_unit"], "amount_unit", AmountUnit, str.lower)
    confidence = _number(_required(obj, "confidence"), "confidence", allow_string=False)
    if not ZERO <= confidence <= ONE:
        _fail(RejectCode.CONFIDENCE_OUT_OF_RANGE, "confidence", "confidence must be within 0..1")
    timestamp = _timestamp(_required(obj, "timestamp"), "timestamp")
    strategy_id = _text(_required(obj, "strategy_id"), "strategy_id")
    is_warmup = _bool(obj["is_warmup"], "is_warmup") if _present(obj, "is_warmup") else False
    notes: list[str] = []
    try:
        snapshot = _market_data(obj.get("market_data_snapshot"))
    except _Invalid as problem:  # advisory data: set aside, never a reason to refuse
        snapshot = None
        notes.append(f"{problem.field_name} ignored: {problem.message}")
    return TradingSignal(
        signal_id=signal_id,
        signal_type=signal_type,
        asset=asset,
        amount=amount,
        amount_unit=amount_unit,
        confidence=confidence,
        timestamp=timestamp,
        strategy_id=strategy_id,
        model_version=_optional_text(obj, "model_version"),
        is_warmup=is_warmup,
        market_data_snapshot=snapshot,
        metadata=_metadata(obj.get("metadata")),
        trace_id=_trace_id(obj),
        extra={k: v for k, v in obj.items() if k not in KNOWN_FIELDS},
        raw=obj,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------- public API


def parse_signal(body: bytes | str) -> TradingSignal | SignalRejection:
    """Parse one message body. Never raises; see the module docstring for the rules."""
    try:
        obj = _loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError/JSONDecodeError included
        return SignalRejection(
            RejectCode.INVALID_JSON,
            f"message is not valid UTF-8 JSON: {str(exc)[:200]}",
            {},
        )
    if not isinstance(obj, dict):
        return SignalRejection(
            RejectCode.NOT_AN_OBJECT, "message must be a JSON object", {"field": "$"}
        )
    try:
        return _build(obj)
    except _Invalid as problem:
        return SignalRejection(
            problem.code,
            problem.message,
            {"field": problem.field_name},
            signal_id=_readable_signal_id(obj),
            trace_id=_readable_trace_id(obj),
        )


def validate_signal(
    signal: TradingSignal,
    *,
    instruments: Mapping[tuple[Category, str], Instrument],
    now: datetime,
    max_age: timedelta,
    max_future_skew: timedelta = timedelta(seconds=5),
    default_category: Category = Category.LINEAR,
) -> TradingSignal | SignalRejection:
    """Checks against the instrument cache and the clock (``now`` must be aware UTC).

    The instrument is looked up under ``metadata.category`` or ``default_category``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")

    def reject(code: RejectCode, message: str, **details: str) -> SignalRejection:
        return SignalRejection(
            code, message, details, signal_id=signal.signal_id, trace_id=signal.trace_id
        )

    category = signal.category_or(default_category)
    instrument = instruments.get((category, signal.asset))
    if instrument is None:
        return reject(
            RejectCode.UNKNOWN_ASSET,
            f"{signal.asset} is not a known {category.value} instrument",
            field="asset",
            asset=signal.asset,
            category=category.value,
        )
    if not instrument.is_trading:
        return reject(
            RejectCode.ASSET_NOT_TRADING,
            f"{signal.asset} is not trading (status {instrument.status.value})",
            asset=signal.asset,
            status=instrument.status.value,
        )
    age = now - signal.timestamp
    if age > max_age:
        return reject(
            RejectCode.STALE_SIGNAL,
            f"signal is {age.total_seconds():.3f}s old (max {max_age.total_seconds():g}s)",
            age_seconds=f"{age.total_seconds():.3f}",
            max_age_seconds=f"{max_age.total_seconds():g}",
        )
    if -age > max_future_skew:
        return reject(
            RejectCode.TIMESTAMP_IN_FUTURE,
            f"signal timestamp is {-age.total_seconds():.3f}s in the future",
            ahead_seconds=f"{-age.total_seconds():.3f}",
        )
    expires_at = signal.metadata.expires_at
    if expires_at is not None and now >= expires_at:
        return reject(
            RejectCode.SIGNAL_EXPIRED,
            f"signal expired at {expires_at.isoformat()}",
            expires_at=expires_at.isoformat(),
        )
    return signal


def intake_signal(
    body: bytes | str,
    *,
    instruments: Mapping[tuple[Category, str], Instrument],
    now: datetime,
    max_age: timedelta,
    max_future_skew: timedelta = timedelta(seconds=5),
    default_category: Category = Category.LINEAR,
) -> TradingSignal | SignalRejection:
    """``parse_signal`` then ``validate_signal``."""
    parsed = parse_signal(body)
    if isinstance(parsed, SignalRejection):
        return parsed
    return validate_signal(
        parsed,
        instruments=instruments,
        now=now,
        max_age=max_age,
        max_future_skew=max_future_skew,
        default_category=default_category,
    )
