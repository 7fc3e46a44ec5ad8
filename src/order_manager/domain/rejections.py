"""Every machine-readable refusal the domain can produce.

Public API:

- ``RejectCode``: the ``reason`` codes recorded with a rejected signal and published in
  ``signal_rejected`` events (``rejection_reason.code``). Values are stable strings.
- ``DEAD_LETTER_CODES``: codes that mean "the message itself is malformed and cannot be trusted
  as a signal" -> the intake republishes it to ``order-manager.signals.dlq`` (and records it when
  a signal_id could be read). Every other code is "a valid signal that we refuse": recorded as
  ``rejected`` and published as ``signal_rejected``, never dead-lettered.
- ``Rejection(code, message, details)``: a refusal with a human message and string details.
  ``Rejection.dead_letter`` tells the intake where it goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class RejectCode(StrEnum):
    # --- malformed message (dead-lettered) ---
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    INVALID_VALUE = "invalid_value"
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    CONFIDENCE_OUT_OF_RANGE = "confidence_out_of_range"
    UNKNOWN_ASSET = "unknown_asset"
    # --- valid message, refused by time or instrument state ---
    STALE_SIGNAL = "stale_signal"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    SIGNAL_EXPIRED = "signal_expired"
    ASSET_NOT_TRADING = "asset_not_trading"
    # --- planner ---
    CONFIDENCE_BELOW_MINIMUM = "confidence_below_minimum"
    MARKET_DATA_UNAVAILABLE = "market_data_unavailable"
    MARKET_DATA_STALE = "market_data_stale"
    BELOW_MIN_QTY = "below_min_qty"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    TOO_MANY_LEGS = "too_many_legs"
    NO_POSITION_TO_REDUCE = "no_position_to_reduce"
    SHORT_NOT_ALLOWED = "short_not_allowed"
    POSITION_MODE_MISMATCH = "position_mode_mismatch"
    INVALID_TPSL = "invalid_tpsl"
    UNSUPPORTED_ORDER = "unsupported_order"
    # --- risk ---
    TRADING_PAUSED = "trading_paused"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    MAX_ORDER_SIZE = "max_order_size"
    MAX_ORDER_SIZE_RATIO = "max_order_size_ratio"
    MAX_POSITION_SIZE = "max_position_size"
    MAX_TOTAL_EXPOSURE = "max_total_exposure"
    MAX_DAILY_VOLUME = "max_daily_volume"
    RATE_LIMITED = "rate_limited"
    # --- exchange (late rejection, e.g. Bybit 110007 with the balance check disabled) ---
    EXCHANGE_REJECTED = "exchange_rejected"


DEAD_LETTER_CODES: frozenset[RejectCode] = frozenset(
    {
        RejectCode.INVALID_JSON,
        RejectCode.NOT_AN_OBJECT,
        RejectCode.MISSING_FIELD,
        RejectCode.BAD_TYPE,
        RejectCode.INVALID_VALUE,
        RejectCode.AMOUNT_NOT_POSITIVE,
        RejectCode.CONFIDENCE_OUT_OF_RANGE,
        RejectCode.UNKNOWN_ASSET,
    }
)


def _freeze(details: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(details))


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal: stable ``code``, human ``message``, string ``details`` (e.g. ``field``)."""

    code: RejectCode
    message: str
    details: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", _freeze(self.details))

    @property
    def dead_letter(self) -> bool:
        """True when the message is malformed and belongs in the dead-letter queue."""
        return self.code in DEAD_LETTER_CODES

    def as_dict(self) -> dict[str, object]:
        """The ``rejection_reason`` object of a ``signal_rejected`` event."""
        return {"code": self.code.value, "message": self.message, "details": dict(self.details)}
