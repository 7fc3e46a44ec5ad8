"""``ExchangeGateway`` (``services.ports.exchange``) over the Bybit V5 REST client.

Writes (create/amend/cancel) and the order lookup return a :class:`GatewayReport` instead of
raising: the executor needs the wire request, retCode, error kind and duration of every call for
the audit log, success or not. The error kind comes from the client's taxonomy
(:mod:`.errors`): a create whose outcome could not be established (the client already looked the
orderLinkId up and retried with the same id) is ``unknown_outcome``; a create that never left
(connection refused, retries exhausted) is ``retryable``.

Reads for planning raise builtins the services understand without importing the adapter:
:class:`ExchangeUnavailableError` (a ``ConnectionError``) for transient failures,
:class:`ExchangeAuthError` (a ``PermissionError``) for authentication, :class:`LookupError` for an
unknown instrument. ``market`` returns ``None`` when nothing fresher than the staleness limit is
available, so a stale book refuses to price.

Market data: with a :class:`~.market_data.MarketData` (public WebSocket, REST ticker fallback) the
snapshot is the stream's best bid/ask (source ``orderbook``; ``ticker`` for the fallback), no I/O
on the hot path. Without one, ``/v5/market/orderbook`` is read per call and the top
``depth_levels`` give the depth the planner caps market orders with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.instruments import Instrument, InstrumentStatus
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.orders import BybitOrderStatus, ExchangeOrderUpdate
from order_manager.domain.plans import Amend, Cancel, Place
from order_manager.domain.positions import Position

from .errors import (
    AuthError,
    BybitError,
    ErrorKind,
    OrderOutcomeUnknownError,
    ProtocolError,
    StaleMarketDataError,
    TransportError,
    UnknownInstrumentError,
)
from .instruments import InstrumentCache, InstrumentInfo
from .market_data import MarketData
from .metrics import redact
from .models import Order, WalletAccount
from .models import Position as WirePosition
from .rest import BybitRestClient, OrderRequest
from .shared_read import SharedRead
from .slippage import PERCENT, leg_tolerance_percent

log = structlog.get_logger("order_manager.adapters.bybit.gateway")

_ZERO = Decimal(0)
_ONE = Decimal(1)

#: one position-list request: (category, symbol, settleCoin), one of the last two set
_PositionQuery = tuple[Category, str | None, str | None]
Levels = tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]


class ExchangeUnavailableError(ConnectionError):
    """The exchange could not be read (network, 5xx, rate limit after retries)."""


class ExchangeAuthError(PermissionError):
    """Authentication with the exchange failed: fatal, never retried."""


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """``CallReport``/``PlaceReport`` of the port."""

    action: str
    request: Mapping[str, object]
    ok: bool
    ret_code: int | None
    error_kind: str | None
    message: str
    duration_ms: float
    attempts: int = 1
    order_id: str | None = None
    order: ExchangeOrderUpdate | None = None
    outcome: str | None = None


def _kind(error: BybitError, *, create: bool = False) -> str:
    if isinstance(error, OrderOutcomeUnknownError):
        return "unknown_outcome"
    if create and isinstance(error, ProtocolError):
        return "unknown_outcome"  # the exchange answered something we could not read
    if create and isinstance(error, TransportError) and error.maybe_executed:
        return "unknown_outcome"
    if error.kind in (ErrorKind.RATE_LIMITED, ErrorKind.CLOCK_SKEW, ErrorKind.RETRYABLE):
        return "retryable"
    if error.kind is ErrorKind.ALREADY_EXISTS:
        return "unknown_outcome"
    return str(error.kind.value)


def order_update(order: Order, category: str | None = None) -> ExchangeOrderUpdate:
    """The domain's view of a Bybit order record."""
    fee = order.cum_exec_fee or _ZERO
    if fee == 0 and order.cum_fee_detail:
        fee = sum(order.cum_fee_detail.values(), _ZERO)
    updated = order.updated_time or order.created_time or datetime.now(UTC)
    try:
        tif: TimeInForce | None = TimeInForce(order.time_in_force)
    except ValueError:
        tif = None
    cat = order.category or category
    return ExchangeOrderUpdate(
        order_id=order.order_id,
        order_link_id=order.order_link_id,
        symbol=order.symbol,
        side=Side(order.side),
        order_type=OrderType(order.order_type),
        bybit_status=BybitOrderStatus(order.order_status),
        qty=order.qty,
        price=order.price or None,
        cum_exec_qty=order.cum_exec_qty,
        cum_exec_value=order.cum_exec_value or _ZERO,
        cum_exec_fee=fee,
        updated_time=updated,
        category=Category(cat) if cat else None,
        time_in_force=tif,
        avg_price=order.avg_price or None,
        leaves_qty=order.leaves_qty,
        reject_reason=order.reject_reason,
        cancel_type=order.cancel_type,
        take_profit=order.take_profit or None,
        stop_loss=order.stop_loss or None,
        trigger_price=order.trigger_price or None,
        reduce_only=order.reduce_only,
        position_idx=PositionIdx(order.position_idx),
        created_time=order.created_time,
    )


def to_instrument(info: InstrumentInfo) -> Instrument:
    try:
        status = InstrumentStatus(info.status)
    except ValueError:
        status = InstrumentStatus.CLOSED
    return Instrument(
        category=Category(info.category),
        symbol=info.symbol,
        base_coin=info.base_coin,
        quote_coin=info.quote_coin,
        tick_size=info.tick_size,
        qty_step=info.qty_step,
        min_order_qty=info.min_order_qty,
        max_order_qty=info.max_order_qty,
        max_market_qty=info.max_market_qty,
        min_notional=info.min_notional,
        status=status,
    )


def to_position(category: Category, row: WirePosition) -> Position:
    size = row.size if row.side != "Sell" else -row.size
    entry = row.entry or _ZERO
    if category is Category.INVERSE:
        entry_value = abs(size) / entry if entry else _ZERO
    else:
        entry_value = abs(size) * entry
    return Position(
        category=category,
        symbol=row.symbol,
        position_idx=PositionIdx(row.position_idx),
        size=size,
        entry_value=entry_value,
        realized_pnl=row.cum_realised_pnl or _ZERO,
        mark_price=row.mark_price,
    )


def place_request(action: Place) -> OrderRequest:
    """The ``/v5/order/create`` parameters of a planned leg.

    A market leg's ``slippage_tolerance_bps`` is sent as ``slippageToleranceType=Percent`` with
    :func:`~.slippage.leg_tolerance_percent` (bps/100, rounded down to 0.01, clamped into Bybit's
    0.01-10); a limit leg never carries one (its price is its protection)."""
    spot = action.category is Category.SPOT
    market = action.order_type is OrderType.MARKET
    slippage = leg_tolerance_percent(action)
    return OrderRequest(
        category=action.category.value,
        symbol=action.symbol,
        side=action.side.value,
        order_type=action.order_type.value,
        qty=action.qty,
        order_link_id=action.order_link_id,
        price=action.price if action.order_type is OrderType.LIMIT else None,
        time_in_force=action.time_in_force.value,
        position_idx=None if spot or action.position_idx is None else int(action.position_idx),
        reduce_only=True if action.reduce_only and not spot else None,
        take_profit=action.take_profit,
        stop_loss=action.stop_loss,
        market_unit="baseCoin" if spot and market else None,
        slippage_tolerance_type=PERCENT if slippage is not None else None,
        slippage_tolerance=slippage,
    )


class BybitGateway:
    """Live exchange port over one :class:`BybitRestClient`."""

    is_dry_run = False

    def __init__(
        self,
        rest: BybitRestClient,
        instruments: InstrumentCache,
        *,
        market_data: MarketData | None = None,
        depth_levels: int = 25,
        account_type: str = "UNIFIED",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rest = rest
        self.instruments = instruments
        self.market_data = market_data
        self.depth_levels = depth_levels
        self.account_type = account_type
        self._clock = clock
        self._leverage: dict[tuple[Category, str], Decimal] = {}
        self._books: dict[tuple[Category, str], tuple[float, Levels]] = {}
        # planning reads shared by concurrent lanes, never older than the caller's ask
        self._wallet: SharedRead[str, WalletAccount] = SharedRead(
            self._fetch_wallet, name="wallet-balance"
        )
        self._position_lists: SharedRead[_PositionQuery, list[WirePosition]] = SharedRead(
            self._fetch_positions, name="position-list"
        )

    def shared_read_counts(self) -> dict[str, dict[str, int]]:
        """Per shared planning read: requests sent and answers handed out (since start)."""
        return {
            read.name: {"requests": read.requests, "answers": read.answers}
            for read in (self._wallet, self._position_lists)
        }

    @property
    def recv_window_ms(self) -> int:
        return self.rest.config.recv_window_ms

    # ------------------------------------------------------------------ writes
    async def place(self, action: Place, *, trace_id: str) -> GatewayReport:
        request = place_request(action)
        wire = redact(request.to_body())
        started = time.perf_counter()
        try:
            result = await self.rest.create_order(request, trace_id=trace_id)
        except BybitError as error:
            return self._failed("order.create", wire, error, started, create=True)
        return GatewayReport(
            action="order.create",
            request=wire,
            ok=True,
            ret_code=0,
            error_kind=None,
            message="OK",
            duration_ms=_ms_since(started),
            attempts=result.attempts,
            order_id=result.order_id,
            order=order_update(result.order, action.category.value) if result.order else None,
            outcome=result.outcome.value,
        )

    async def amend(self, action: Amend, *, trace_id: str) -> GatewayReport:
        wire: dict[str, object] = {
            "category": action.category.value,
            "symbol": action.symbol,
            "orderLinkId": action.order_link_id,
            "qty": action.qty,
        }
        if action.price is not None:
            wire["price"] = action.price
        started = time.perf_counter()
        try:
            ack = await self.rest.amend_order(
                action.category.value,
                action.symbol,
                order_link_id=action.order_link_id,
                qty=action.qty,
                price=action.price,
                trace_id=trace_id,
            )
        except BybitError as error:
            return self._failed("order.amend", wire, error, started)
        return GatewayReport(
            "order.amend", wire, True, 0, None, "OK", _ms_since(started), order_id=ack.order_id
        )

    async def cancel(self, action: Cancel, *, trace_id: str) -> GatewayReport:
        wire: dict[str, object] = {
            "category": action.category.value,
            "symbol": action.symbol,
            "orderLinkId": action.order_link_id,
        }
        started = time.perf_counter()
        try:
            ack = await self.rest.cancel_order(
                action.category.value,
                action.symbol,
                order_link_id=action.order_link_id,
                trace_id=trace_id,
            )
        except BybitError as error:
            return self._failed("order.cancel", wire, error, started)
        return GatewayReport(
            "order.cancel", wire, True, 0, None, "OK", _ms_since(started), order_id=ack.order_id
        )

    async def find_order(
        self, category: Category, symbol: str, order_link_id: str, *, trace_id: str
    ) -> GatewayReport:
        wire: dict[str, object] = {
            "category": category.value,
            "symbol": symbol,
            "orderLinkId": order_link_id,
        }
        started = time.perf_counter()
        try:
            order = await self.rest.get_order(
                category.value, order_link_id=order_link_id, symbol=symbol, trace_id=trace_id
            )
        except BybitError as error:
            return self._failed("order.get", wire, error, started)
        return GatewayReport(
            "order.get",
            wire,
            True,
            0,
            None,
            "OK" if order else "not found",
            _ms_since(started),
            order_id=order.order_id if order else None,
            order=order_update(order, category.value) if order else None,
        )

    def _failed(
        self,
        action: str,
        wire: Mapping[str, object],
        error: BybitError,
        started: float,
        *,
        create: bool = False,
    ) -> GatewayReport:
        kind = _kind(error, create=create)
        if isinstance(error, AuthError):
            log.error("exchange.auth_failed", action=action, error=str(error))
        return GatewayReport(
            action=action,
            request=wire,
            ok=False,
            ret_code=error.ret_code,
            error_kind=kind,
            message=error.ret_msg or str(error),
            duration_ms=_ms_since(started),
        )

    # ------------------------------------------------------------------ reads
    async def instrument(self, category: Category, symbol: str) -> Instrument:
        try:
            return to_instrument(self.instruments.get(category.value, symbol))
        except UnknownInstrumentError as error:
            raise LookupError(str(error)) from error

    async def market(self, category: Category, symbol: str) -> MarketSnapshot | None:
        if self.market_data is not None:
            return await self._stream_snapshot(category, symbol)
        return await self._book_snapshot(category, symbol)

    async def _stream_snapshot(self, category: Category, symbol: str) -> MarketSnapshot | None:
        assert self.market_data is not None
        try:
            quote = await self.market_data.quote(category.value, symbol)
        except StaleMarketDataError as error:
            log.warning("exchange.market_data_stale", symbol=symbol, error=str(error))
            return None
        if quote.bid is None or quote.ask is None:
            return None
        age = max(0.0, self._clock() - quote.received_at)
        return MarketSnapshot(
            symbol=symbol,
            best_bid=quote.bid,
            best_ask=quote.ask,
            as_of=datetime.now(UTC) - timedelta(seconds=age),
            mark_price=quote.mark,
            source="orderbook" if quote.source == "ws" else "ticker",
        )

    async def _book_snapshot(self, category: Category, symbol: str) -> MarketSnapshot | None:
        try:
            book = await self.rest.get_orderbook(category.value, symbol, limit=self.depth_levels)
        except AuthError as error:
            raise ExchangeAuthError(str(error)) from error
        except BybitError as error:
            log.warning("exchange.orderbook_failed", symbol=symbol, error=str(error))
            return None
        if not book.bids or not book.asks:
            return None
        self._books[(category, symbol)] = (self._clock(), (tuple(book.bids), tuple(book.asks)))
        as_of = datetime.fromtimestamp(book.ts / 1000, tz=UTC) if book.ts else datetime.now(UTC)
        return MarketSnapshot(
            symbol=symbol,
            best_bid=book.bids[0][0],
            best_ask=book.asks[0][0],
            as_of=as_of,
            bid_depth=sum((size for _, size in book.bids), _ZERO),
            ask_depth=sum((size for _, size in book.asks), _ZERO),
            source="orderbook",
        )

    async def levels(self, category: Category, symbol: str) -> Levels | None:
        """Bids and asks ``(price, size)`` of the book last read by ``market`` (within a
        second), else read now; None without a book. Used by the paper exchange to walk it."""
        cached = self._books.get((category, symbol))
        if cached is not None and self._clock() - cached[0] <= 1.0:
            return cached[1]
        if await self._book_snapshot(category, symbol) is None:
            return None
        return self._books[(category, symbol)][1]

    async def _fetch_wallet(
        self, account_type: str, trace_id: str, sending: Callable[[], None]
    ) -> WalletAccount:
        return await self.rest.get_wallet_balance(account_type, trace_id=trace_id, on_send=sending)

    async def _fetch_positions(
        self, query: _PositionQuery, trace_id: str, sending: Callable[[], None]
    ) -> list[WirePosition]:
        category, symbol, settle_coin = query
        return await self.rest.get_positions(
            category.value,
            symbol=symbol,
            settle_coin=settle_coin,
            trace_id=trace_id,
            on_send=sending,
        )

    async def balances(self, *, trace_id: str) -> Mapping[str, Decimal]:
        """The wallet before OUR open-order reservations (the domain subtracts those itself).
        Concurrent callers share one request sent after they asked (``SharedRead``)."""
        try:
            account = await self._wallet.get(self.account_type, trace_id)
        except AuthError as error:
            raise ExchangeAuthError(str(error)) from error
        except BybitError as error:
            raise ExchangeUnavailableError(f"wallet balance: {error}") from error
        out: dict[str, Decimal] = {}
        for coin in account.coin:
            wallet = coin.wallet_balance or _ZERO
            upl = coin.unrealised_pnl or _ZERO
            out[coin.coin] = wallet + min(upl, _ZERO) - (coin.total_position_im or _ZERO)
        return out

    async def positions(
        self, category: Category, symbol: str, *, trace_id: str, include_others: bool = False
    ) -> tuple[Position, ...]:
        if not category.has_positions:
            return ()
        # linear: one call lists every USDT-settled position (Bybit: symbol or settleCoin);
        # inverse positions settle in their own coin, so only the symbol's are listed
        # (concurrent callers of the same list share one request sent after they asked)
        every = include_others and category is Category.LINEAR
        query = (category, None, _LINEAR_SETTLE_COIN) if every else (category, symbol, None)
        try:
            rows = await self._position_lists.get(query, trace_id)
            if (
                every
                and (category, symbol) not in self._leverage
                and not any(row.symbol == symbol for row in rows)
            ):
                # a settleCoin list may leave flat positions out: ask for the symbol once, so
                # its leverage (margin = notional / leverage) is known, not assumed to be 1
                rows = [
                    *rows,
                    *await self.rest.get_positions(
                        category.value, symbol=symbol, trace_id=trace_id
                    ),
                ]
        except AuthError as error:
            raise ExchangeAuthError(str(error)) from error
        except BybitError as error:
            raise ExchangeUnavailableError(f"positions: {error}") from error
        for row in rows:
            if row.leverage:
                self._leverage[(category, row.symbol)] = row.leverage
        return tuple(to_position(category, row) for row in rows if every or row.symbol == symbol)

    async def leverage(self, category: Category, symbol: str) -> Decimal:
        """The symbol's leverage as last reported with its positions (1 until known)."""
        return self._leverage.get((category, symbol), _ONE)


_LINEAR_SETTLE_COIN = "USDT"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
