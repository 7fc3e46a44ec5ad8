"""Signed Bybit V5 REST client.

One pooled ``aiohttp`` session (keep-alive, bounded pool, connect and read timeouts) serves every
call. Each attempt of a call:

1. waits for a slot in the client-side :class:`~.ratelimit.RateLimiter` (priority by endpoint);
2. encodes the query or body once, signs exactly that text with a fresh server-synchronised
   timestamp (so every retry is re-signed), sends it;
3. feeds the rate-limit headers back to the limiter, decodes the envelope with Decimal numbers,
   maps failures onto the typed errors of :mod:`.errors`;
4. records a latency histogram sample, an outcome counter and a debug log line (trace_id, path,
   params, retCode, elapsed; never headers, keys or signatures).

Failed attempts are retried by :mod:`.retry` rules. Order creation is special, see
:meth:`BybitRestClient.create_order`.
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import structlog
import structlog.contextvars
from pydantic import BaseModel, ValidationError
from yarl import URL

from . import signing
from .clock import OffsetSample, ServerClock, estimate_offset
from .config import BybitClientConfig
from .errors import (
    AuthError,
    BybitError,
    ClockSkewError,
    ErrorKind,
    InvalidRequestError,
    NotFoundError,
    OrderAlreadyExistsError,
    OrderOutcomeUnknownError,
    ProtocolError,
    RateLimitedError,
    TransportError,
    error_from_response,
)
from .metrics import BybitMetrics, metrics_for, redact
from .models import (
    Envelope,
    Execution,
    Order,
    OrderAck,
    OrderBook,
    Page,
    Position,
    RawInstrument,
    ServerTime,
    Ticker,
    WalletAccount,
    WireModel,
    loads,
)
from .ratelimit import Priority, RateLimiter
from .retry import (
    UniformSource,
    delay_before_retry,
    full_jitter_delay,
    is_retryable,
    may_have_executed,
)
from .slippage import check_tolerance

log = structlog.get_logger("order_manager.adapters.bybit.rest")

ModelT = TypeVar("ModelT", bound=BaseModel)

ORDER_LINK_ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,36}$")

CREATE_PATH = "/v5/order/create"


class CreateOutcome(enum.Enum):
    CREATED = "created"  # the exchange acknowledged this call
    EXISTING = "existing"  # 110072: an earlier call had placed it; fetched by orderLinkId
    RECOVERED = "recovered"  # an attempt's outcome was unknown; found by orderLinkId


@dataclass(frozen=True, slots=True)
class CreateResult:
    order_id: str
    order_link_id: str
    outcome: CreateOutcome
    attempts: int
    order: Order | None = None  # the exchange's record when it was fetched


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """Parameters of ``POST /v5/order/create``. ``order_link_id`` is mandatory: it is what makes a
    retry safe (a duplicate answers 110072 instead of placing a second order)."""

    category: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    order_link_id: str
    price: Decimal | None = None
    time_in_force: str | None = None
    position_idx: int | None = None
    reduce_only: bool | None = None
    close_on_trigger: bool | None = None
    trigger_price: Decimal | None = None
    trigger_direction: int | None = None
    trigger_by: str | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tp_trigger_by: str | None = None
    sl_trigger_by: str | None = None
    tpsl_mode: str | None = None
    market_unit: str | None = None
    #: market orders only: ``Percent`` or ``TickSize`` with its value (see :mod:`.slippage`)
    slippage_tolerance_type: str | None = None
    slippage_tolerance: Decimal | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not ORDER_LINK_ID_RE.match(self.order_link_id):
            raise InvalidRequestError(
                f"orderLinkId {self.order_link_id!r} must be 1-36 characters of [0-9A-Za-z_-]",
                endpoint=CREATE_PATH,
            )
        if self.qty <= 0 and not self.reduce_only:
            raise InvalidRequestError(f"qty must be > 0, got {self.qty}", endpoint=CREATE_PATH)
        self._check_slippage()

    def _check_slippage(self) -> None:
        """A tolerance is a pair, for market orders only, inside Bybit's range. Anything else is
        a bug of the caller (the gateway clamps the planner's bps), so ValueError, not a request
        for the exchange to refuse."""
        kind, value = self.slippage_tolerance_type, self.slippage_tolerance
        if kind is None and value is None:
            return
        if kind is None or value is None:
            raise ValueError("slippage_tolerance_type and slippage_tolerance go together")
        if self.order_type != "Market":
            raise ValueError(
                f"slippage tolerance applies to Market orders only, not {self.order_type}"
            )
        check_tolerance(kind, value)

    def to_body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "category": self.category,
            "symbol": self.symbol,
            "side": self.side,
            "orderType": self.order_type,
            "qty": self.qty,
            "price": self.price,
            "timeInForce": self.time_in_force,
            "orderLinkId": self.order_link_id,
            "positionIdx": self.position_idx,
            "reduceOnly": self.reduce_only,
            "closeOnTrigger": self.close_on_trigger,
            "triggerPrice": self.trigger_price,
            "triggerDirection": self.trigger_direction,
            "triggerBy": self.trigger_by,
            "takeProfit": self.take_profit,
            "stopLoss": self.stop_loss,
            "tpTriggerBy": self.tp_trigger_by,
            "slTriggerBy": self.sl_trigger_by,
            "tpslMode": self.tpsl_mode,
            "marketUnit": self.market_unit,
            "slippageToleranceType": self.slippage_tolerance_type,
            "slippageTolerance": (
                None if self.slippage_tolerance is None else format(self.slippage_tolerance, "f")
            ),
        }
        body.update(self.extra)
        return {k: v for k, v in body.items() if v is not None}


class FeeRate(WireModel):
    symbol: str
    taker_fee_rate: Decimal
    maker_fee_rate: Decimal


@dataclass(frozen=True, slots=True)
class LimitHeaders:
    limit: int | None
    remaining: int | None
    reset_at_ms: int | None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_limit_headers(headers: Mapping[str, str]) -> LimitHeaders:
    return LimitHeaders(
        limit=_int_header(headers, "X-Bapi-Limit"),
        remaining=_int_header(headers, "X-Bapi-Limit-Status"),
        reset_at_ms=_int_header(headers, "X-Bapi-Limit-Reset-Timestamp"),
    )


class BybitRestClient:
    """Async Bybit V5 REST client. Use as ``async with BybitRestClient(config) as client``."""

    def __init__(
        self,
        config: BybitClientConfig,
        *,
        clock: ServerClock | None = None,
        limiter: RateLimiter | None = None,
        rng: UniformSource | None = None,
        metrics: BybitMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.clock = clock or ServerClock()
        self.limiter = limiter or RateLimiter(config.rate_limit)
        self._rng: UniformSource = rng or random.Random()
        self.metrics = metrics or metrics_for()
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._sync_lock = asyncio.Lock()
        self._base = config.endpoints.rest.rstrip("/")

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> BybitRestClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the pooled session and measure the clock offset to the server."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.config.pool_size, keepalive_timeout=self.config.keepalive_timeout
            )
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.config.connect_timeout,
                sock_connect=self.config.connect_timeout,
                sock_read=self.config.read_timeout,
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        await self.sync_clock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("BybitRestClient is not started: use 'async with' or start()")
        return self._session

    # ------------------------------------------------------------------ clock
    async def sync_clock(self) -> OffsetSample:
        """Measure the offset of the server's clock (``GET /v5/market/time``)."""
        async with self._sync_lock:
            sent = self.clock.local_ms()
            envelope = await self._attempt("GET", "/v5/market/time", {}, signed=False)
            received = self.clock.local_ms()
            server_ms = envelope.time
            if server_ms is None:
                server_ms = ServerTime.model_validate(envelope.result).time_nano // 1_000_000
            sample = estimate_offset(sent, server_ms, received)
            self.clock.apply(sample)
            log.debug(
                "bybit.clock_sync", offset_ms=sample.offset_ms, rtt_ms=round(sample.round_trip_ms)
            )
            return sample

    async def get_server_time(self) -> ServerTime:
        result = await self.call("GET", "/v5/market/time", signed=False)
        return ServerTime.model_validate(result)

    # ------------------------------------------------------------------ core
    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        signed: bool = True,
        category: str | None = None,
        priority: Priority | None = None,
        trace_id: str | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> Any:
        """One logical call with retries; returns the envelope's ``result``.

        Only for requests that are safe to repeat (queries, amend, cancel). Order creation goes
        through :meth:`create_order`. ``on_send`` is called each time a request of the call is
        about to leave (after the rate limiter let it go).
        """
        params = dict(params or {})
        cat = category or _str_or_none(params.get("category"))
        last: BybitError | None = None
        for attempt in range(self.config.retry.max_attempts):
            try:
                envelope = await self._attempt(
                    method,
                    path,
                    params,
                    signed=signed,
                    category=cat,
                    priority=priority,
                    trace_id=trace_id,
                    attempt=attempt,
                    on_send=on_send,
                )
                return envelope.result
            except BybitError as error:
                last = error
                if not await self._prepare_retry(error, path, cat, attempt, trace_id):
                    raise
        assert last is not None
        raise last

    async def _prepare_retry(
        self, error: BybitError, path: str, category: str | None, attempt: int, trace_id: str | None
    ) -> bool:
        """Decide whether ``error`` is retried; if so, do what is needed and wait. Returns False
        when the caller must raise."""
        if error.kind is ErrorKind.AUTH:
            return False
        if not is_retryable(error) or attempt + 1 >= self.config.retry.max_attempts:
            return False
        if isinstance(error, ClockSkewError):
            await self.sync_clock()
        delay = delay_before_retry(
            self.config.retry,
            attempt,
            error,
            server_now_ms=self.clock.now_ms(),
            rng=self._rng,
        )
        if isinstance(error, RateLimitedError):
            # Hold the whole bucket, not only this caller: everyone queued behind waits too.
            self.limiter.block_for(path, category, delay)
        self.metrics.retries.labels(endpoint=path, reason=error.kind.value).inc()
        log.debug(
            "bybit.retry",
            path=path,
            attempt=attempt + 1,
            delay_s=round(delay, 4),
            error=str(error),
            trace_id=trace_id,
        )
        await self._sleep(delay)
        return True

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, object],
        *,
        signed: bool,
        category: str | None = None,
        priority: Priority | None = None,
        trace_id: str | None = None,
        attempt: int = 0,
        on_send: Callable[[], None] | None = None,
    ) -> Envelope:
        """One signed HTTP exchange; raises a typed error for anything but retCode 0."""
        permit = await self.limiter.acquire(path, category, priority)
        try:
            if on_send is not None:
                on_send()
            return await self._send(
                method, path, params, signed, category, trace_id, attempt, permit.waited
            )
        finally:
            permit.release()

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, object],
        signed: bool,
        category: str | None,
        trace_id: str | None,
        attempt: int,
        waited: float,
    ) -> Envelope:
        self.metrics.ratelimit_wait_seconds.labels(endpoint=path).observe(waited)
        if signed and self.clock.is_stale(self.config.clock_sync_interval):
            await self.sync_clock()

        headers: dict[str, str] = {}
        body: bytes | None = None
        if method == "GET":
            query = signing.encode_query(params)
            target = f"{self._base}{path}?{query}" if query else f"{self._base}{path}"
            url = URL(target, encoded=True)
            payload = query
        else:
            payload = signing.encode_body(params)
            body = payload.encode()
            url = URL(f"{self._base}{path}", encoded=True)
            headers["Content-Type"] = "application/json"
        if signed:
            headers.update(
                signing.auth_headers(
                    self.config.api_key,
                    self.config.secret(),
                    self.clock.now_ms(),
                    self.config.recv_window_ms,
                    payload,
                )
            )

        if trace_id is None:
            # A trace_id bound by the caller with structlog.contextvars is picked up too.
            bound = structlog.contextvars.get_contextvars().get("trace_id")
            trace_id = bound if isinstance(bound, str) else None
        started = time.perf_counter()
        outcome = "ok"
        http_status: int | None = None
        ret_code: int | None = None
        try:
            try:
                async with self.session.request(method, url, data=body, headers=headers) as resp:
                    http_status = resp.status
                    text = await resp.text()
                    limits = parse_limit_headers(resp.headers)
            except aiohttp.ConnectionTimeoutError as exc:
                raise TransportError(
                    f"connect timeout: {exc}", endpoint=path, maybe_executed=False
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                raise TransportError(
                    f"cannot connect: {exc}", endpoint=path, maybe_executed=False
                ) from exc
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise TransportError(
                    f"{type(exc).__name__}: {exc}", endpoint=path, maybe_executed=True
                ) from exc
            self._observe_limits(path, category, limits)
            envelope = self._decode(path, http_status, text, limits)
            ret_code = envelope.ret_code
            return envelope
        except BybitError as error:
            outcome = error.kind.value
            ret_code = error.ret_code
            if isinstance(error, AuthError):
                log.error(
                    "bybit.auth_failed",
                    path=path,
                    ret_code=error.ret_code,
                    ret_msg=error.ret_msg,
                    http_status=error.http_status,
                    api_key=self.config.api_key[:4] + "***",
                    trace_id=trace_id,
                )
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.request_seconds.labels(method=method, endpoint=path).observe(elapsed)
            self.metrics.requests.labels(method=method, endpoint=path, outcome=outcome).inc()
            log.debug(
                "bybit.request",
                method=method,
                path=path,
                params=redact({k: v for k, v in params.items() if v is not None}),
                attempt=attempt,
                http_status=http_status,
                ret_code=ret_code,
                outcome=outcome,
                elapsed_ms=round(elapsed * 1000, 3),
                ratelimit_wait_ms=round(waited * 1000, 3),
                trace_id=trace_id,
            )

    def _observe_limits(self, path: str, category: str | None, limits: LimitHeaders) -> None:
        if limits.limit is None and limits.remaining is None:
            return
        reset_in = None
        if limits.reset_at_ms is not None:
            reset_in = (limits.reset_at_ms - self.clock.now_ms()) / 1000
        self.limiter.observe(
            path, category, limit=limits.limit, remaining=limits.remaining, reset_in=reset_in
        )

    def _decode(self, path: str, http_status: int, text: str, limits: LimitHeaders) -> Envelope:
        envelope: Envelope | None = None
        try:
            envelope = Envelope.model_validate(loads(text))
        except (ValueError, ValidationError):
            envelope = None
        if envelope is not None and envelope.ret_code != 0:
            raise error_from_response(
                endpoint=path,
                ret_code=envelope.ret_code,
                ret_msg=envelope.ret_msg,
                http_status=http_status,
                reset_at_ms=limits.reset_at_ms,
            )
        if http_status != 200:
            raise error_from_response(
                endpoint=path,
                ret_code=None,
                ret_msg=text[:200],
                http_status=http_status,
                reset_at_ms=limits.reset_at_ms,
            )
        if envelope is None:
            raise ProtocolError(f"not a Bybit envelope: {text[:200]!r}", endpoint=path)
        return envelope

    # ------------------------------------------------------------------ orders
    async def create_order(
        self, request: OrderRequest, *, trace_id: str | None = None
    ) -> CreateResult:
        """Place an order and return the exchange's order id, whatever happened on the way.

        * acknowledged → ``CREATED``;
        * 110072 (an earlier attempt or an earlier process placed it) → fetched by orderLinkId,
          ``EXISTING``;
        * an attempt whose outcome is unknown (timeout, 5xx, 10000/10016, dropped connection):
          the orderLinkId is looked up (open orders, then history); found → ``RECOVERED``,
          otherwise the create is retried with the *same* orderLinkId, which can never produce a
          second order.

        Raises the typed error of a definite refusal (insufficient funds, invalid request, auth),
        or :class:`OrderOutcomeUnknownError` when retries ran out and the order could neither be
        confirmed nor found.
        """
        body = request.to_body()
        link = request.order_link_id
        ambiguous = False
        last: BybitError | None = None
        for attempt in range(self.config.retry.max_attempts):
            try:
                envelope = await self._attempt(
                    "POST",
                    CREATE_PATH,
                    body,
                    signed=True,
                    category=request.category,
                    trace_id=trace_id,
                    attempt=attempt,
                )
                ack = _validate(OrderAck, envelope.result, CREATE_PATH)
                outcome = CreateOutcome.CREATED
                return CreateResult(ack.order_id, ack.order_link_id or link, outcome, attempt + 1)
            except OrderAlreadyExistsError:
                found = await self._find_existing(request, trace_id)
                if found is None:
                    raise OrderOutcomeUnknownError(
                        "110072 but the orderLinkId is not found",
                        endpoint=CREATE_PATH,
                        order_link_id=link,
                    ) from None
                return CreateResult(
                    found.order_id, link, CreateOutcome.EXISTING, attempt + 1, found
                )
            except BybitError as error:
                last = error
                if may_have_executed(error):
                    ambiguous = True
                    found = await self._find_created(request, trace_id)
                    if found is not None:
                        return CreateResult(
                            found.order_id, link, CreateOutcome.RECOVERED, attempt + 1, found
                        )
                elif ambiguous and not is_retryable(error):
                    # e.g. 110007 because the order an earlier attempt placed took the margin
                    found = await self._find_created(request, trace_id)
                    if found is not None:
                        return CreateResult(
                            found.order_id, link, CreateOutcome.RECOVERED, attempt + 1, found
                        )
                if not await self._prepare_retry(
                    error, CREATE_PATH, request.category, attempt, trace_id
                ):
                    break
        assert last is not None
        if ambiguous:
            raise OrderOutcomeUnknownError(
                f"create outcome unknown after {self.config.retry.max_attempts} attempts "
                f"(last error: {last})",
                endpoint=CREATE_PATH,
                order_link_id=link,
            ) from last
        raise last

    async def _find_existing(self, request: OrderRequest, trace_id: str | None) -> Order | None:
        """After 110072 the order exists; Bybit's query endpoints may lag the matching engine,
        so the lookup is repeated with backoff before giving up."""
        for retry in range(self.config.retry.max_attempts):
            found = await self._find_created(request, trace_id)
            if found is not None:
                return found
            await self._sleep(full_jitter_delay(self.config.retry, retry, self._rng))
        return None

    async def _find_created(self, request: OrderRequest, trace_id: str | None) -> Order | None:
        """Lookup used while resolving a create; a failing lookup counts as "not found"
        (retrying the create with the same orderLinkId is safe either way)."""
        try:
            return await self.get_order(
                request.category,
                order_link_id=request.order_link_id,
                symbol=request.symbol,
                trace_id=trace_id,
            )
        except BybitError as error:
            if error.kind is ErrorKind.AUTH:
                raise
            log.warning(
                "bybit.create_lookup_failed",
                order_link_id=request.order_link_id,
                error=str(error),
                trace_id=trace_id,
            )
            return None

    async def get_order(
        self,
        category: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        symbol: str | None = None,
        trace_id: str | None = None,
    ) -> Order | None:
        """One order by id or orderLinkId: ``/v5/order/realtime`` (open and recently closed),
        then ``/v5/order/history``. ``None`` when neither knows it."""
        if (order_id is None) == (order_link_id is None):
            raise ValueError("give exactly one of order_id, order_link_id")
        params = {
            "category": category,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
        }
        for path in ("/v5/order/realtime", "/v5/order/history"):
            result = await self.call("GET", path, params, trace_id=trace_id)
            page = _validate(Page[Order], result, path)
            for order in page.list:
                if (order_id and order.order_id == order_id) or (
                    order_link_id and order.order_link_id == order_link_id
                ):
                    return order
        return None

    async def amend_order(
        self,
        category: str,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        qty: Decimal | None = None,
        price: Decimal | None = None,
        trigger_price: Decimal | None = None,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        trace_id: str | None = None,
    ) -> OrderAck:
        if order_id is None and order_link_id is None:
            raise ValueError("give order_id or order_link_id")
        body = {
            "category": category,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "qty": qty,
            "price": price,
            "triggerPrice": trigger_price,
            "takeProfit": take_profit,
            "stopLoss": stop_loss,
        }
        result = await self.call("POST", "/v5/order/amend", body, trace_id=trace_id)
        return _validate(OrderAck, result, "/v5/order/amend")

    async def cancel_order(
        self,
        category: str,
        symbol: str,
        *,
        order_id: str | None = None,
        order_link_id: str | None = None,
        trace_id: str | None = None,
    ) -> OrderAck:
        """Cancel one order. 110001 raises :class:`NotFoundError` (already final or unknown —
        including "a retried cancel whose first attempt succeeded"); reconcile on it."""
        if order_id is None and order_link_id is None:
            raise ValueError("give order_id or order_link_id")
        body = {
            "category": category,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
        }
        result = await self.call("POST", "/v5/order/cancel", body, trace_id=trace_id)
        return _validate(OrderAck, result, "/v5/order/cancel")

    async def cancel_all(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        base_coin: str | None = None,
        trace_id: str | None = None,
    ) -> list[OrderAck]:
        body = {
            "category": category,
            "symbol": symbol,
            "settleCoin": settle_coin,
            "baseCoin": base_coin,
        }
        result = await self.call("POST", "/v5/order/cancel-all", body, trace_id=trace_id)
        page = _validate(Page[OrderAck], result, "/v5/order/cancel-all")
        return list(page.list)

    # ------------------------------------------------------------------ paginated queries
    async def paginate(
        self,
        path: str,
        params: Mapping[str, object],
        model: type[ModelT],
        *,
        page_size: int,
        signed: bool = True,
        max_pages: int = 10_000,
        trace_id: str | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> list[ModelT]:
        """Every item of a cursor-paginated list. The cursor is passed back exactly as received
        (Bybit returns it percent-encoded; decoding it breaks the signature). ``on_send``: see
        :meth:`call` (called for every page's request)."""
        items: list[ModelT] = []
        cursor = ""
        seen: set[str] = set()
        for _ in range(max_pages):
            query = {**params, "limit": page_size, "cursor": cursor or None}
            result = await self.call(
                "GET", path, query, signed=signed, trace_id=trace_id, on_send=on_send
            )
            page = _validate(Page[model], result, path)  # type: ignore[valid-type]
            items.extend(page.list)
            cursor = page.next_page_cursor
            if not cursor or not page.list:
                return items
            if cursor in seen:
                raise ProtocolError(f"pagination cursor repeats: {cursor!r}", endpoint=path)
            seen.add(cursor)
        raise ProtocolError(f"more than {max_pages} pages", endpoint=path)

    async def get_open_orders(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        base_coin: str | None = None,
        page_size: int = 50,
        trace_id: str | None = None,
    ) -> list[Order]:
        params = {
            "category": category,
            "symbol": symbol,
            "settleCoin": settle_coin,
            "baseCoin": base_coin,
        }
        return await self.paginate(
            "/v5/order/realtime", params, Order, page_size=page_size, trace_id=trace_id
        )

    async def get_order_history(
        self,
        category: str,
        *,
        symbol: str | None = None,
        order_status: str | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        page_size: int = 50,
        trace_id: str | None = None,
    ) -> list[Order]:
        params = {
            "category": category,
            "symbol": symbol,
            "orderStatus": order_status,
            "startTime": start_time_ms,
            "endTime": end_time_ms,
        }
        return await self.paginate(
            "/v5/order/history", params, Order, page_size=page_size, trace_id=trace_id
        )

    async def get_executions(
        self,
        category: str,
        *,
        symbol: str | None = None,
        order_id: str | None = None,
        order_link_id: str | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        page_size: int = 100,
        trace_id: str | None = None,
    ) -> list[Execution]:
        params = {
            "category": category,
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "startTime": start_time_ms,
            "endTime": end_time_ms,
        }
        return await self.paginate(
            "/v5/execution/list", params, Execution, page_size=page_size, trace_id=trace_id
        )

    async def get_positions(
        self,
        category: str,
        *,
        symbol: str | None = None,
        settle_coin: str | None = None,
        page_size: int = 200,
        trace_id: str | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> list[Position]:
        params = {"category": category, "symbol": symbol, "settleCoin": settle_coin}
        return await self.paginate(
            "/v5/position/list",
            params,
            Position,
            page_size=page_size,
            trace_id=trace_id,
            on_send=on_send,
        )

    async def get_instruments(
        self, category: str, *, symbol: str | None = None, page_size: int = 1000
    ) -> list[RawInstrument]:
        params = {"category": category, "symbol": symbol}
        return await self.paginate(
            "/v5/market/instruments-info",
            params,
            RawInstrument,
            page_size=page_size,
            signed=False,
        )

    # ------------------------------------------------------------------ account & market
    async def get_wallet_balance(
        self,
        account_type: str = "UNIFIED",
        coins: Sequence[str] = (),
        *,
        trace_id: str | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> WalletAccount:
        params = {"accountType": account_type, "coin": ",".join(coins) or None}
        result = await self.call(
            "GET", "/v5/account/wallet-balance", params, trace_id=trace_id, on_send=on_send
        )
        page = _validate(Page[WalletAccount], result, "/v5/account/wallet-balance")
        if not page.list:
            raise ProtocolError("wallet-balance returned no account", endpoint="wallet-balance")
        return page.list[0]

    async def get_fee_rates(self, category: str, symbol: str | None = None) -> list[FeeRate]:
        params = {"category": category, "symbol": symbol}
        result = await self.call("GET", "/v5/account/fee-rate", params)
        return list(_validate(Page[FeeRate], result, "/v5/account/fee-rate").list)

    async def get_tickers(self, category: str, symbol: str | None = None) -> list[Ticker]:
        params = {"category": category, "symbol": symbol}
        result = await self.call("GET", "/v5/market/tickers", params, signed=False)
        return list(_validate(Page[Ticker], result, "/v5/market/tickers").list)

    async def get_orderbook(self, category: str, symbol: str, limit: int = 1) -> OrderBook:
        params = {"category": category, "symbol": symbol, "limit": limit}
        result = await self.call("GET", "/v5/market/orderbook", params, signed=False)
        return _validate(OrderBook, result, "/v5/market/orderbook")

    async def set_leverage(
        self, category: str, symbol: str, buy_leverage: Decimal, sell_leverage: Decimal
    ) -> bool:
        """Returns False when the leverage was already set (110043)."""
        body = {
            "category": category,
            "symbol": symbol,
            "buyLeverage": buy_leverage,
            "sellLeverage": sell_leverage,
        }
        return await self._idempotent_post("/v5/position/set-leverage", body, 110043)

    async def switch_position_mode(
        self, category: str, mode: int, *, symbol: str | None = None, coin: str | None = None
    ) -> bool:
        """``mode`` 0 one-way, 3 hedge. Returns False when already in that mode (110025)."""
        body = {"category": category, "symbol": symbol, "coin": coin, "mode": mode}
        return await self._idempotent_post("/v5/position/switch-mode", body, 110025)

    async def set_trading_stop(
        self,
        category: str,
        symbol: str,
        *,
        position_idx: int = 0,
        tpsl_mode: str = "Full",
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        trace_id: str | None = None,
    ) -> bool:
        """Returns False when nothing changed (34040)."""
        body = {
            "category": category,
            "symbol": symbol,
            "positionIdx": position_idx,
            "tpslMode": tpsl_mode,
            "takeProfit": take_profit,
            "stopLoss": stop_loss,
        }
        return await self._idempotent_post("/v5/position/trading-stop", body, 34040, trace_id)

    async def _idempotent_post(
        self,
        path: str,
        body: Mapping[str, object],
        unchanged_code: int,
        trace_id: str | None = None,
    ) -> bool:
        try:
            await self.call("POST", path, body, trace_id=trace_id)
        except BybitError as error:
            if error.ret_code == unchanged_code:
                return False
            raise
        return True


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _validate(model: type[ModelT], value: object, endpoint: str) -> ModelT:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ProtocolError(
            f"unexpected {model.__name__} payload: {exc.errors()[:3]}", endpoint=endpoint
        ) from exc


__all__ = [
    "BybitRestClient",
    "CreateOutcome",
    "CreateResult",
    "FeeRate",
    "NotFoundError",
    "OrderRequest",
]
