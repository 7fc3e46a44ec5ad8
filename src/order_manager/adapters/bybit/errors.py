"""Typed errors of the Bybit adapter and the one table that classifies retCodes.

Every failure the exchange (or the network) can produce arrives as one of a few kinds the rest of
the service can reason about:

=================  ==========================================================================
kind               what the caller does
=================  ==========================================================================
RETRYABLE          nothing: the client retries with backoff, then raises RetryableError
RATE_LIMITED       nothing: the client waits for X-Bapi-Limit-Reset-Timestamp and retries
CLOCK_SKEW         nothing: the client re-syncs its clock with the server and retries
ALREADY_EXISTS     create_order resolves it to the existing order (110072)
INSUFFICIENT_FUNDS reject the order (balance/margin)
INVALID_REQUEST    reject the order: parameters, filters, state of the order or position
NOT_FOUND          the order is gone (filled, cancelled or never existed): reconcile
AUTH               fatal: wrong key, signature, permission or IP; logged loudly, never retried
REJECTED           any other business error: reject, keep retCode and retMsg
=================  ==========================================================================

:data:`RET_CODES` is the single source for ``docs/bybit_errors.md`` (a unit test checks that the
document is generated from it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorKind(enum.Enum):
    RETRYABLE = "retryable"
    RATE_LIMITED = "rate_limited"
    CLOCK_SKEW = "clock_skew"
    ALREADY_EXISTS = "already_exists"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    AUTH = "auth"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class RetCodeInfo:
    kind: ErrorKind
    meaning: str


_K = ErrorKind

RET_CODES: dict[int, RetCodeInfo] = {
    # --- transient: retried with backoff ---------------------------------------------------------
    -1: RetCodeInfo(_K.RETRYABLE, "request expired"),
    429: RetCodeInfo(_K.RATE_LIMITED, "trading service under high load (UTA), retry"),
    10000: RetCodeInfo(_K.RETRYABLE, "server timeout"),
    10002: RetCodeInfo(_K.CLOCK_SKEW, "timestamp outside recv_window: re-sync clock, retry"),
    10006: RetCodeInfo(_K.RATE_LIMITED, "UID rate limit (Too many visits!)"),
    10016: RetCodeInfo(_K.RETRYABLE, "server error / service restarting"),
    10019: RetCodeInfo(_K.RETRYABLE, "trade service restarting"),
    10429: RetCodeInfo(_K.RATE_LIMITED, "system-level frequency protection"),
    110079: RetCodeInfo(_K.RETRYABLE, "order is being processed, retry later"),
    170001: RetCodeInfo(_K.RETRYABLE, "spot internal error"),
    170007: RetCodeInfo(_K.RETRYABLE, "spot backend timeout"),
    170234: RetCodeInfo(_K.RETRYABLE, "spot system error"),
    # --- duplicate client order id ----------------------------------------------------------------
    110072: RetCodeInfo(_K.ALREADY_EXISTS, "duplicate orderLinkId: fetch the existing order"),
    170141: RetCodeInfo(_K.ALREADY_EXISTS, "duplicate clientOrderId (spot): fetch existing order"),
    # --- money ------------------------------------------------------------------------------------
    110004: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "wallet balance insufficient"),
    110006: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "assets cannot cover position margin"),
    110007: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "available balance insufficient"),
    110012: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "insufficient available balance"),
    110044: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "available margin insufficient"),
    110045: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "wallet balance insufficient"),
    170131: RetCodeInfo(_K.INSUFFICIENT_FUNDS, "spot balance insufficient"),
    # --- invalid request / state ------------------------------------------------------------------
    10001: RetCodeInfo(_K.INVALID_REQUEST, "request parameter error"),
    10014: RetCodeInfo(_K.INVALID_REQUEST, "invalid duplicate request"),
    10017: RetCodeInfo(_K.INVALID_REQUEST, "route not found"),
    34040: RetCodeInfo(_K.INVALID_REQUEST, "not modified (trading-stop)"),
    110003: RetCodeInfo(_K.INVALID_REQUEST, "price outside the allowed range"),
    110005: RetCodeInfo(_K.INVALID_REQUEST, "position status error"),
    110008: RetCodeInfo(_K.INVALID_REQUEST, "order already completed or cancelled"),
    110009: RetCodeInfo(_K.INVALID_REQUEST, "too many stop orders"),
    110010: RetCodeInfo(_K.INVALID_REQUEST, "order already cancelled"),
    110017: RetCodeInfo(_K.INVALID_REQUEST, "reduce-only order with zero position / qty to zero"),
    110020: RetCodeInfo(_K.INVALID_REQUEST, "more than 500 active orders"),
    110021: RetCodeInfo(_K.INVALID_REQUEST, "open-interest position limit"),
    110022: RetCodeInfo(_K.INVALID_REQUEST, "qty restricted, cannot amend upward"),
    110023: RetCodeInfo(_K.INVALID_REQUEST, "symbol is reduce-only"),
    110024: RetCodeInfo(_K.INVALID_REQUEST, "cannot switch position mode: has position"),
    110025: RetCodeInfo(_K.INVALID_REQUEST, "position mode not modified"),
    110028: RetCodeInfo(_K.INVALID_REQUEST, "cannot switch position mode: has open orders"),
    110029: RetCodeInfo(_K.INVALID_REQUEST, "hedge mode not supported for symbol"),
    110032: RetCodeInfo(_K.INVALID_REQUEST, "order illegal"),
    110040: RetCodeInfo(_K.INVALID_REQUEST, "order would trigger liquidation"),
    110043: RetCodeInfo(_K.INVALID_REQUEST, "leverage not modified"),
    110057: RetCodeInfo(_K.INVALID_REQUEST, "conditional/limit order contains TP/SL params"),
    110058: RetCodeInfo(_K.INVALID_REQUEST, "TP/SL: remaining position size insufficient"),
    110064: RetCodeInfo(_K.INVALID_REQUEST, "amended qty not above filled qty"),
    110066: RetCodeInfo(_K.INVALID_REQUEST, "trading not allowed"),
    110074: RetCodeInfo(_K.INVALID_REQUEST, "contract not live"),
    110090: RetCodeInfo(_K.INVALID_REQUEST, "position may exceed max limit"),
    110092: RetCodeInfo(_K.INVALID_REQUEST, "triggerDirection inconsistent (rising)"),
    110093: RetCodeInfo(_K.INVALID_REQUEST, "triggerDirection inconsistent (falling)"),
    110094: RetCodeInfo(_K.INVALID_REQUEST, "order notional below minimum"),
    110120: RetCodeInfo(_K.INVALID_REQUEST, "price below price limit"),
    110121: RetCodeInfo(_K.INVALID_REQUEST, "price above price limit"),
    170121: RetCodeInfo(_K.INVALID_REQUEST, "invalid symbol (spot)"),
    170124: RetCodeInfo(_K.INVALID_REQUEST, "order amount too large"),
    170130: RetCodeInfo(_K.INVALID_REQUEST, "invalid parameter value"),
    170132: RetCodeInfo(_K.INVALID_REQUEST, "order price too high"),
    170133: RetCodeInfo(_K.INVALID_REQUEST, "order price below minimum"),
    170134: RetCodeInfo(_K.INVALID_REQUEST, "price has too many decimals"),
    170136: RetCodeInfo(_K.INVALID_REQUEST, "qty below minimum"),
    170137: RetCodeInfo(_K.INVALID_REQUEST, "qty has too many decimals"),
    170139: RetCodeInfo(_K.INVALID_REQUEST, "order already filled"),
    170140: RetCodeInfo(_K.INVALID_REQUEST, "order value below minimum"),
    170142: RetCodeInfo(_K.INVALID_REQUEST, "order already cancelled"),
    170148: RetCodeInfo(_K.INVALID_REQUEST, "market order amount has too many decimals"),
    170151: RetCodeInfo(_K.INVALID_REQUEST, "pair not open yet"),
    170157: RetCodeInfo(_K.INVALID_REQUEST, "pair not available for API trading"),
    170193: RetCodeInfo(_K.INVALID_REQUEST, "buy price too high"),
    170194: RetCodeInfo(_K.INVALID_REQUEST, "sell price too low"),
    # --- not found --------------------------------------------------------------------------------
    110001: RetCodeInfo(_K.NOT_FOUND, "order does not exist or too late to cancel/amend"),
    170213: RetCodeInfo(_K.NOT_FOUND, "spot order does not exist"),
    # --- authentication: fatal --------------------------------------------------------------------
    10003: RetCodeInfo(_K.AUTH, "API key invalid or for another environment"),
    10004: RetCodeInfo(_K.AUTH, "invalid signature"),
    10005: RetCodeInfo(_K.AUTH, "permission denied"),
    10007: RetCodeInfo(_K.AUTH, "user authentication failed"),
    10008: RetCodeInfo(_K.AUTH, "account banned / wrong account mode"),
    10009: RetCodeInfo(_K.AUTH, "region restricted"),
    10010: RetCodeInfo(_K.AUTH, "request IP not whitelisted"),
    10024: RetCodeInfo(_K.AUTH, "compliance rules triggered"),
    10027: RetCodeInfo(_K.AUTH, "transactions banned"),
    33004: RetCodeInfo(_K.AUTH, "API key expired"),
}

# HTTP statuses that are not 200. A JSON envelope with a non-zero retCode wins over the status.
HTTP_STATUSES: dict[int, RetCodeInfo] = {
    400: RetCodeInfo(_K.INVALID_REQUEST, "bad method"),
    401: RetCodeInfo(_K.AUTH, "wrong key / auth params not in headers"),
    403: RetCodeInfo(_K.RATE_LIMITED, "IP rate limit or forbidden region (waits >= 10 min on ban)"),
    404: RetCodeInfo(_K.INVALID_REQUEST, "wrong path or category"),
    408: RetCodeInfo(_K.RETRYABLE, "request timeout"),
    429: RetCodeInfo(_K.RATE_LIMITED, "system frequency protection"),
}


def classify(ret_code: int | None, http_status: int | None) -> ErrorKind:
    """Kind of an exchange answer: the retCode when there is one, else the HTTP status.

    Unknown retCodes are ``REJECTED`` (a business refusal that is not retried); any 5xx and any
    network failure (``http_status is None`` and ``ret_code is None``) are ``RETRYABLE``.
    """
    if ret_code is not None and ret_code != 0:
        info = RET_CODES.get(ret_code)
        return info.kind if info else ErrorKind.REJECTED
    if http_status is None or http_status >= 500:
        return ErrorKind.RETRYABLE
    info = HTTP_STATUSES.get(http_status)
    return info.kind if info else ErrorKind.REJECTED


class BybitError(Exception):
    """Base of every error raised by the adapter.

    ``ret_code``/``ret_msg`` are Bybit's when the exchange answered; ``http_status`` is the
    HTTP status, ``None`` when no response arrived at all.
    """

    kind: ErrorKind = ErrorKind.REJECTED

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        ret_code: int | None = None,
        ret_msg: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.ret_code = ret_code
        self.ret_msg = ret_msg
        self.http_status = http_status

    def __str__(self) -> str:
        detail = []
        if self.endpoint:
            detail.append(self.endpoint)
        if self.ret_code is not None:
            detail.append(f"retCode={self.ret_code}")
        if self.http_status is not None:
            detail.append(f"http={self.http_status}")
        base = super().__str__()
        return f"{base} ({', '.join(detail)})" if detail else base


class RetryableError(BybitError):
    """Transient failure; raised only after every retry was used up."""

    kind = ErrorKind.RETRYABLE


class TransportError(RetryableError):
    """No usable HTTP answer: connection error, timeout, malformed body.

    ``maybe_executed`` is true when the request may have reached the exchange (e.g. a read
    timeout), so a non-idempotent request has an unknown outcome.
    """

    def __init__(self, message: str, *, endpoint: str = "", maybe_executed: bool = True) -> None:
        super().__init__(message, endpoint=endpoint)
        self.maybe_executed = maybe_executed


class RateLimitedError(RetryableError):
    """10006 / 429 / 403: ``reset_at_ms`` is X-Bapi-Limit-Reset-Timestamp when sent."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self,
        message: str,
        *,
        reset_at_ms: int | None = None,
        endpoint: str = "",
        ret_code: int | None = None,
        ret_msg: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(
            message, endpoint=endpoint, ret_code=ret_code, ret_msg=ret_msg, http_status=http_status
        )
        self.reset_at_ms = reset_at_ms


class ClockSkewError(RetryableError):
    """10002: the client re-syncs its clock with the server and retries."""

    kind = ErrorKind.CLOCK_SKEW


class OrderAlreadyExistsError(BybitError):
    """110072: an order with this orderLinkId exists (create_order resolves it itself)."""

    kind = ErrorKind.ALREADY_EXISTS


class InsufficientFundsError(BybitError):
    kind = ErrorKind.INSUFFICIENT_FUNDS


class InvalidRequestError(BybitError):
    kind = ErrorKind.INVALID_REQUEST


class NotFoundError(BybitError):
    kind = ErrorKind.NOT_FOUND


class AuthError(BybitError):
    """Fatal: key, signature, permission, IP. Never retried; logged at error level."""

    kind = ErrorKind.AUTH


class RejectedError(BybitError):
    """A business refusal not covered by a more precise kind."""

    kind = ErrorKind.REJECTED


class OrderOutcomeUnknownError(RetryableError):
    """An order create may or may not have been executed and every lookup of its orderLinkId
    failed. The reconciler must resolve it later by ``order_link_id``."""

    def __init__(self, message: str, *, endpoint: str = "", order_link_id: str) -> None:
        super().__init__(message, endpoint=endpoint)
        self.order_link_id = order_link_id


class ProtocolError(BybitError):
    """The exchange answered something that does not match its documented shape."""


class StaleMarketDataError(BybitError):
    """No market data fresher than the staleness limit: never price an order with it."""


class UnknownInstrumentError(BybitError):
    """The symbol is not in the instrument cache for that category."""


_ERROR_TYPES: dict[ErrorKind, type[BybitError]] = {
    ErrorKind.RETRYABLE: RetryableError,
    ErrorKind.CLOCK_SKEW: ClockSkewError,
    ErrorKind.ALREADY_EXISTS: OrderAlreadyExistsError,
    ErrorKind.INSUFFICIENT_FUNDS: InsufficientFundsError,
    ErrorKind.INVALID_REQUEST: InvalidRequestError,
    ErrorKind.NOT_FOUND: NotFoundError,
    ErrorKind.AUTH: AuthError,
    ErrorKind.REJECTED: RejectedError,
}


def error_from_response(
    *,
    endpoint: str,
    ret_code: int | None,
    ret_msg: str,
    http_status: int | None,
    reset_at_ms: int | None = None,
) -> BybitError:
    """The typed error for a failed exchange answer."""
    kind = classify(ret_code, http_status)
    message = (
        ret_msg
        or (RET_CODES[ret_code].meaning if ret_code in RET_CODES else "")
        or (f"HTTP {http_status}")
    )
    if kind is ErrorKind.RATE_LIMITED:
        return RateLimitedError(
            message,
            reset_at_ms=reset_at_ms,
            endpoint=endpoint,
            ret_code=ret_code,
            ret_msg=ret_msg,
            http_status=http_status,
        )
    return _ERROR_TYPES[kind](
        message, endpoint=endpoint, ret_code=ret_code, ret_msg=ret_msg, http_status=http_status
    )


def render_markdown() -> str:
    """``docs/bybit_errors.md``, generated from :data:`RET_CODES` and :data:`HTTP_STATUSES`."""
    lines = [
        "# Bybit errors: how the client classifies them",
        "",
        "Generated from `order_manager.adapters.bybit.errors` (`RET_CODES`, `HTTP_STATUSES`)",
        "by `uv run python -m order_manager.adapters.bybit.errors > docs/bybit_errors.md`;",
        "a unit test keeps the two identical. Sources: `shared/bybit/v5-reference.md` §1, §2, §6.",
        "",
        "## Kinds and what happens",
        "",
        "| Kind | Exception | Behaviour |",
        "|---|---|---|",
        "| retryable | `RetryableError` | retried with exponential backoff + full jitter; "
        "network errors, timeouts and every HTTP 5xx are retryable too. An order create whose "
        "outcome is unknown is resolved by querying its orderLinkId before any retry |",
        "| rate_limited | `RateLimitedError` | waits until `X-Bapi-Limit-Reset-Timestamp` "
        "(else backoff), then retries; the limiter blocks that endpoint until the reset |",
        "| clock_skew | `ClockSkewError` | re-syncs the clock from `/v5/market/time`, re-signs, "
        "retries |",
        "| already_exists | `OrderAlreadyExistsError` | `create_order` fetches the existing "
        "order by orderLinkId and returns it (`CreateResult.outcome == 'existing'`) |",
        "| insufficient_funds | `InsufficientFundsError` | not retried: reject the order |",
        "| invalid_request | `InvalidRequestError` | not retried: reject the order |",
        "| not_found | `NotFoundError` | not retried: order gone, reconcile |",
        "| auth | `AuthError` | fatal, logged at error level, never retried |",
        "| rejected | `RejectedError` | any other non-zero retCode: not retried |",
        "",
        "## retCodes",
        "",
        "| retCode | Kind | Meaning |",
        "|---:|---|---|",
    ]
    for code in sorted(RET_CODES):
        info = RET_CODES[code]
        lines.append(f"| {code} | {info.kind.value} | {info.meaning} |")
    lines += [
        "| any other | rejected | business refusal, retCode and retMsg kept on the error |",
        "",
        "## HTTP statuses (when there is no non-zero retCode in the body)",
        "",
        "| HTTP | Kind | Meaning |",
        "|---:|---|---|",
    ]
    for status in sorted(HTTP_STATUSES):
        info = HTTP_STATUSES[status]
        lines.append(f"| {status} | {info.kind.value} | {info.meaning} |")
    lines += [
        "| 5xx | retryable | exchange-side failure |",
        "| no answer | retryable | connection error or timeout (`TransportError`) |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
