"""The paper exchange: ``ExchangeGateway`` for dry-run, in process, filling from live market data.

Dry-run (``ORDERMANAGER_DRY_RUN=true``, or warm-up signals with ``WARMUP_SIGNALS=dry_run``) runs
the whole pipeline — validation, planning, risk, write-ahead rows, audit, outbox events — against
this class instead of Bybit. Rows and events it produces are flagged ``is_dry_run`` by the
executor (``is_dry_run`` is True here), and every query for planning and recovery filters on that
flag, so paper and live orders never mix.

Market data and instruments come from a live source (the Bybit gateway: fresh book, staleness
limit; a stale book refuses to price). Fills follow the simulator's rules (docs/bybit_sim.md):

* **market** orders are IOC: they walk the opposite side of the book level by level (the full
  levels when the source offers them, else the touch with its depth, else the touch for the
  whole quantity) but never beyond a protective band of ``band_bps`` around the touch, narrowed
  to the leg's ``slippage_tolerance_bps`` when it has one (converted exactly as the live gateway
  sends it to Bybit, :func:`~order_manager.adapters.bybit.slippage.leg_tolerance_percent`: rounded
  down to 0.01 %, clamped into 0.01-10 %); what the book cannot fill is cancelled
  (``PartiallyFilledCanceled``/``Cancelled``);
* **limit** orders that cross on arrival take liquidity the same way up to their price (PostOnly
  ones are cancelled instead, ``EC_PostOnlyWillTakeLiquidity``), the rest **rests** and fills
  as maker at its own price once a later snapshot of the symbol crosses it (checked whenever
  fresh market data for the symbol is read, and by :meth:`PaperExchange.match`);
* reduce-only orders are capped at the position (zero position → 110017); margin = notional /
  leverage plus the taker fee must fit the available balance (else 110007); exchange minimums
  are enforced (10001 / 110094); a repeated orderLinkId returns the existing order
  (``outcome == "existing"``), like Bybit's 110072 resolution.

Fees: taker/maker rates per category (Bybit's defaults). Positions are the domain's
average-cost positions; balances are the quote wallet minus position margin plus realised PnL.
Every order change is also published on :attr:`PaperExchange.updates` as Bybit-shaped ``order``
and ``execution`` items (numbers as strings), every fill and every move of a position's mark
price (the book's mid, re-read by :meth:`PaperExchange.watch` for open positions) as a
``position`` item, so a tracker consumes paper fills and marks exactly like private-stream
events (e.g. a resting limit that fills later; the loss monitor on a paper position).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from order_manager.adapters.bybit.slippage import PERCENT, bps_from_percent, leg_tolerance_percent
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.instruments import Instrument
from order_manager.domain.market import MarketSnapshot
from order_manager.domain.orders import (
    BybitOrderStatus,
    ExchangeOrderUpdate,
    Execution,
    OrderState,
)
from order_manager.domain.plans import Amend, Cancel, Place
from order_manager.domain.positions import Position, PositionFill, apply_fill

ZERO = Decimal(0)
ONE = Decimal(1)
#: how long the snapshot read for planning is reused to fill the order placed from that plan
SNAPSHOT_REUSE = timedelta(seconds=1)
BPS = Decimal(10000)
Level = tuple[Decimal, Decimal]

DEFAULT_FEES: Mapping[Category, tuple[Decimal, Decimal]] = {  # (taker, maker)
    Category.LINEAR: (Decimal("0.00055"), Decimal("0.0002")),
    Category.INVERSE: (Decimal("0.00055"), Decimal("0.0002")),
    Category.SPOT: (Decimal("0.001"), Decimal("0.001")),
}


class MarketSource(Protocol):
    """Live reads the paper exchange prices with (the Bybit gateway satisfies it)."""

    async def instrument(self, category: Category, symbol: str) -> Instrument: ...

    async def market(self, category: Category, symbol: str) -> MarketSnapshot | None: ...


class LevelSource(Protocol):
    async def levels(
        self, category: Category, symbol: str
    ) -> tuple[tuple[Level, ...], tuple[Level, ...]] | None: ...


@dataclass(frozen=True, slots=True)
class PaperReport:
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


@dataclass(slots=True)
class _Order:
    order_id: str
    link: str
    category: Category
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    tif: TimeInForce
    reduce_only: bool
    position_idx: PositionIdx
    created: datetime
    status: BybitOrderStatus = BybitOrderStatus.NEW
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    reject_reason: str = ""
    cancel_type: str = ""
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    #: a market order's slippage tolerance as Bybit would apply it (percent), None without
    slippage_percent: Decimal | None = None

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.cum_qty

    @property
    def is_open(self) -> bool:
        return self.status in (BybitOrderStatus.NEW, BybitOrderStatus.PARTIALLY_FILLED)

    def update(self) -> ExchangeOrderUpdate:
        return ExchangeOrderUpdate(
            order_id=self.order_id,
            order_link_id=self.link,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            bybit_status=self.status,
            qty=self.qty,
            price=self.price,
            cum_exec_qty=self.cum_qty,
            cum_exec_value=self.cum_value,
            cum_exec_fee=self.cum_fee,
            updated_time=self.updated,
            category=self.category,
            time_in_force=self.tif,
            avg_price=self.cum_value / self.cum_qty if self.cum_qty else None,
            leaves_qty=self.leaves if self.is_open else ZERO,
            reject_reason=self.reject_reason,
            cancel_type=self.cancel_type,
            take_profit=self.take_profit,
            stop_loss=self.stop_loss,
            reduce_only=self.reduce_only,
            position_idx=self.position_idx,
            created_time=self.created,
        )


def _wire_position(position: Position, leverage: Decimal) -> dict[str, Any]:
    """A Bybit-shaped ``position`` item (numbers as strings), as the private stream sends."""
    side = position.side
    mark = position.mark_price
    avg = position.avg_entry_price
    return {
        "category": position.category.value,
        "symbol": position.symbol,
        "positionIdx": int(position.position_idx),
        "side": side.value if side is not None else "",
        "size": str(position.abs_size),
        "avgPrice": str(avg if avg is not None else ZERO),
        "markPrice": str(mark) if mark is not None else "",
        "positionValue": str(position.entry_value),
        "unrealisedPnl": str(position.unrealized_pnl()),
        "cumRealisedPnl": str(position.realized_pnl),
        "leverage": str(leverage),
        "updatedTime": _ms(datetime.now(UTC)),
    }


class _Refusal(Exception):
    def __init__(self, ret_code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.ret_code = ret_code
        self.kind = kind


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _wire(update: ExchangeOrderUpdate) -> dict[str, Any]:
    """A Bybit-shaped order object (numbers as strings) for event consumers."""
    return {
        "category": update.category.value if update.category else "linear",
        "orderId": update.order_id,
        "orderLinkId": update.order_link_id,
        "symbol": update.symbol,
        "side": update.side.value,
        "orderType": update.order_type.value,
        "orderStatus": update.bybit_status.value,
        "qty": str(update.qty),
        "price": str(update.price or ZERO),
        "cumExecQty": str(update.cum_exec_qty),
        "cumExecValue": str(update.cum_exec_value),
        "cumExecFee": str(update.cum_exec_fee),
        "avgPrice": str(update.avg_price or ZERO),
        "leavesQty": str(update.leaves_qty or ZERO),
        "timeInForce": update.time_in_force.value if update.time_in_force else "GTC",
        "rejectReason": update.reject_reason or "EC_NoError",
        "cancelType": update.cancel_type or "UNKNOWN",
        "reduceOnly": update.reduce_only,
        "positionIdx": int(update.position_idx),
        "createdTime": _ms(update.created_time or update.updated_time),
        "updatedTime": _ms(update.updated_time),
    }


class PaperExchange:
    """In-process exchange for dry-run (see the module docstring)."""

    is_dry_run = True
    #: an in-process answer cannot be lost in flight: recovery needs no waiting window
    recv_window_ms = 0

    def __init__(
        self,
        source: MarketSource,
        *,
        levels: LevelSource | None = None,
        balances: Mapping[str, Decimal] | None = None,
        leverage: Decimal = Decimal(10),
        band_bps: Decimal = Decimal(500),
        fees: Mapping[Category, tuple[Decimal, Decimal]] = DEFAULT_FEES,
        publish_updates: bool = True,
        mark_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.level_source = levels
        self._snapshots: dict[tuple[Category, str], MarketSnapshot] = {}
        self.wallet: dict[str, Decimal] = dict(balances or {"USDT": Decimal(100000)})
        self.default_leverage = leverage
        self.band_bps = band_bps
        self.fees = fees
        self.orders: dict[str, _Order] = {}
        self.by_id: dict[str, _Order] = {}
        #: the orders that may still be open, in arrival order (a subset of ``orders``): the
        #: matching and reservation scans read this instead of every order ever placed, whose
        #: count grows without bound; a status only moves from open to final, so pruning the
        #: closed ones lazily (`_open_orders`) never drops an open one
        self._maybe_open: dict[str, _Order] = {}
        self.books: dict[tuple[Category, str, PositionIdx], Position] = {}
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._publish = publish_updates
        #: seconds between two mark-price pushes of one position (fills always push)
        self.mark_interval = mark_interval
        self._clock = clock
        self._marked_at: dict[tuple[Category, str, PositionIdx], float] = {}
        #: execution ids are ``paper-<run>-<n>``: ``executions.exec_id`` is unique across
        #: every run of the service, and a restarted service counts from 1 again — a bare
        #: counter reused the first run's ids and the tracker dropped those fills as duplicates.
        #: ``<run>`` is the start time in ns (hex), so ids also sort in the order they were made
        self._run = f"{time.time_ns():x}"
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ reads
    async def instrument(self, category: Category, symbol: str) -> Instrument:
        return await self.source.instrument(category, symbol)

    async def market(self, category: Category, symbol: str) -> MarketSnapshot | None:
        snapshot = await self.source.market(category, symbol)
        if snapshot is not None:
            self._snapshots[(category, symbol)] = snapshot
            await self.match(category, symbol, snapshot)
            self._mark(category, symbol, snapshot)
        return snapshot

    def _mark(self, category: Category, symbol: str, snapshot: MarketSnapshot) -> None:
        """Re-mark the symbol's open positions at the book's mid (paper's mark price) and push
        a ``position`` item when the mark moved, as Bybit does on price changes: the tracker's
        loss monitor and the positions API then see paper unrealised PnL too."""
        if not category.has_positions or not snapshot.is_usable:
            return
        mark = snapshot.mid
        now = self._clock()
        for idx in PositionIdx:
            key = (category, symbol, idx)
            position = self.books.get(key)
            if position is None or position.size == 0 or position.mark_price == mark:
                continue
            last = self._marked_at.get(key)
            if last is not None and now - last < self.mark_interval:
                continue  # at most one mark push per interval (Bybit's stream is throttled too)
            self._marked_at[key] = now
            self.books[key] = position.with_mark(mark)
            self._emit_position(self.books[key])

    async def _fresh(self, category: Category, symbol: str) -> MarketSnapshot | None:
        """The snapshot just read for planning when it is recent, else a new one."""
        cached = self._snapshots.get((category, symbol))
        if cached is not None and cached.is_fresh(datetime.now(UTC), SNAPSHOT_REUSE):
            return cached
        snapshot = await self.source.market(category, symbol)
        if snapshot is not None:
            self._snapshots[(category, symbol)] = snapshot
        return snapshot

    async def balances(self, *, trace_id: str) -> Mapping[str, Decimal]:
        out = dict(self.wallet)
        for position in self.books.values():
            if position.category is Category.SPOT or position.size == 0:
                continue
            margin = position.notional() / self.default_leverage
            out["USDT"] = out.get("USDT", ZERO) - margin
        return out

    async def positions(
        self, category: Category, symbol: str, *, trace_id: str, include_others: bool = False
    ) -> tuple[Position, ...]:
        return tuple(
            p
            for (cat, sym, _), p in self.books.items()
            if cat is category and (include_others or sym == symbol)
        )

    async def leverage(self, category: Category, symbol: str) -> Decimal:
        return self.default_leverage

    # ------------------------------------------------------------------ writes
    async def place(self, action: Place, *, trace_id: str) -> PaperReport:
        started = time.perf_counter()
        request = {
            "category": action.category.value,
            "symbol": action.symbol,
            "side": action.side.value,
            "orderType": action.order_type.value,
            "qty": action.qty,
            "price": action.price,
            "timeInForce": action.time_in_force.value,
            "orderLinkId": action.order_link_id,
            "reduceOnly": action.reduce_only,
        }
        slippage = leg_tolerance_percent(action)
        if slippage is not None:
            request["slippageToleranceType"] = PERCENT
            request["slippageTolerance"] = format(slippage, "f")
        async with self._lock:
            existing = self.orders.get(action.order_link_id)
            if existing is not None:
                return self._ok("order.create", request, started, existing, "existing")
            try:
                order = await self._accept(action, slippage)
            except _Refusal as refusal:
                return PaperReport(
                    "order.create",
                    request,
                    False,
                    refusal.ret_code,
                    refusal.kind,
                    str(refusal),
                    _elapsed(started),
                )
        return self._ok("order.create", request, started, order, "created")

    async def amend(self, action: Amend, *, trace_id: str) -> PaperReport:
        started = time.perf_counter()
        request = {"orderLinkId": action.order_link_id, "qty": action.qty, "price": action.price}
        async with self._lock:
            order = self.orders.get(action.order_link_id)
            if order is None or not order.is_open:
                return PaperReport(
                    "order.amend",
                    request,
                    False,
                    110001,
                    "not_found",
                    "order not exists or too late to replace",
                    _elapsed(started),
                )
            if action.qty <= order.cum_qty:
                return PaperReport(
                    "order.amend",
                    request,
                    False,
                    110064,
                    "invalid_request",
                    "amended qty not above filled qty",
                    _elapsed(started),
                )
            order.qty = action.qty
            if action.price is not None:
                order.price = action.price
            order.updated = datetime.now(UTC)
            self._emit(order)
        snapshot = await self.source.market(order.category, order.symbol)
        if snapshot is not None:
            await self.match(order.category, order.symbol, snapshot)
        return self._ok("order.amend", request, started, order, None)

    async def cancel(self, action: Cancel, *, trace_id: str) -> PaperReport:
        started = time.perf_counter()
        request = {"orderLinkId": action.order_link_id, "symbol": action.symbol}
        async with self._lock:
            order = self.orders.get(action.order_link_id)
            if order is None or not order.is_open:
                return PaperReport(
                    "order.cancel",
                    request,
                    False,
                    110001,
                    "not_found",
                    "order not exists or too late to cancel",
                    _elapsed(started),
                )
            order.status = (
                BybitOrderStatus.PARTIALLY_FILLED_CANCELED
                if order.cum_qty
                else BybitOrderStatus.CANCELLED
            )
            order.cancel_type = "CancelByUser"
            order.updated = datetime.now(UTC)
            self._emit(order)
        return self._ok("order.cancel", request, started, order, None)

    async def find_order(
        self, category: Category, symbol: str, order_link_id: str, *, trace_id: str
    ) -> PaperReport:
        started = time.perf_counter()
        order = self.orders.get(order_link_id)
        request = {"orderLinkId": order_link_id}
        if order is None:
            return PaperReport("order.get", request, True, 0, None, "not found", _elapsed(started))
        return self._ok("order.get", request, started, order, None)

    # ------------------------------------------------------------------ matching
    def resting_markets(self) -> set[tuple[Category, str]]:
        """(category, symbol) of every open paper limit order: what `watch` must keep reading."""
        return {
            (o.category, o.symbol) for o in self._open_orders() if o.order_type is OrderType.LIMIT
        }

    def position_markets(self) -> set[tuple[Category, str]]:
        """(category, symbol) of every open paper position: `watch` keeps their marks current."""
        return {
            (category, symbol)
            for (category, symbol, _), position in self.books.items()
            if position.size != 0 and category.has_positions
        }

    async def watch(self, stop: asyncio.Event, interval: float = 0.2) -> None:
        """Until `stop`: read fresh market data for every symbol with resting paper orders or an
        open paper position, so resting orders fill when the live price crosses them and
        positions are re-marked even when no new signal reads that symbol (on a real exchange
        the matching and mark-price engines do this; here the live book drives it)."""
        while not stop.is_set():
            for category, symbol in sorted(self.resting_markets() | self.position_markets()):
                await self.market(category, symbol)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def match(self, category: Category, symbol: str, snapshot: MarketSnapshot) -> None:
        """Fill resting limit orders of the symbol that ``snapshot`` crosses (as maker)."""
        async with self._lock:
            for order in self._open_orders():
                if not (order.is_open and order.category is category and order.symbol == symbol):
                    continue
                if order.order_type is not OrderType.LIMIT or order.price is None:
                    continue
                crossed = (
                    snapshot.best_ask <= order.price
                    if order.side is Side.BUY
                    else snapshot.best_bid >= order.price
                )
                if crossed:
                    self._fill(order, order.leaves, order.price, maker=True)
                    self._emit(order)

    async def _accept(self, action: Place, slippage: Decimal | None) -> _Order:
        instrument = await self.source.instrument(action.category, action.symbol)
        snapshot = await self._fresh(action.category, action.symbol)
        if snapshot is None or not snapshot.is_usable:
            raise _Refusal(10016, "retryable", "no fresh market data to fill against")
        qty = action.qty
        idx = action.position_idx if action.position_idx is not None else PositionIdx.ONE_WAY
        key = (action.category, action.symbol, idx)
        position = self.books.get(key, Position.flat(action.category, action.symbol, idx))
        if action.reduce_only:
            held = position.abs_size
            if held == 0 or position.side is action.side:
                raise _Refusal(
                    110017, "invalid_request", "current position is zero, cannot fix reduce-only"
                )
            qty = min(qty, held)
        if qty < instrument.min_order_qty:
            raise _Refusal(
                10001, "invalid_request", "The number of contracts exceeds minimum limit allowed"
            )
        reference = action.price if action.price is not None else snapshot.touch(action.side)
        notional = instrument.notional(qty, reference)
        if not action.reduce_only and notional < instrument.min_notional:
            raise _Refusal(
                110094,
                "invalid_request",
                f"Order does not meet minimum order value {instrument.min_notional}",
            )
        if not action.reduce_only:
            taker = self.fees.get(action.category, DEFAULT_FEES[Category.LINEAR])[0]
            lev = ONE if action.category is Category.SPOT else self.default_leverage
            need = notional / lev + notional * taker
            coin = instrument.quote_coin
            if action.category is Category.SPOT and action.side is Side.SELL:
                coin, need = instrument.base_coin, qty
            available = (await self.balances(trace_id=""))[coin] if coin in self.wallet else ZERO
            available -= self._reserved(coin)
            if need > available:
                raise _Refusal(110007, "insufficient_funds", "ab not enough for new order")
        now = datetime.now(UTC)
        order = _Order(
            order_id=f"paper-{uuid.uuid4()}",
            link=action.order_link_id,
            category=action.category,
            symbol=action.symbol,
            side=action.side,
            order_type=action.order_type,
            qty=qty,
            price=action.price,
            tif=action.time_in_force,
            reduce_only=action.reduce_only,
            position_idx=idx,
            created=now,
            updated=now,
            take_profit=action.take_profit,
            stop_loss=action.stop_loss,
            slippage_percent=slippage,
        )
        self.orders[order.link] = order
        self.by_id[order.order_id] = order
        self._maybe_open[order.link] = order
        await self._take(order, snapshot)
        self._emit(order)
        return order

    async def _take(self, order: _Order, snapshot: MarketSnapshot) -> None:
        """Arrival: take liquidity the order crosses; rest or cancel the remainder."""
        touch = snapshot.touch(order.side)
        limit = order.price
        crosses = limit is None or (touch <= limit if order.side is Side.BUY else touch >= limit)
        if crosses and order.tif is TimeInForce.POST_ONLY:
            order.status = BybitOrderStatus.CANCELLED
            order.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            return
        if crosses:
            band_bps = self.band_bps
            if order.slippage_percent is not None:
                band_bps = min(band_bps, bps_from_percent(order.slippage_percent))
            band = touch * band_bps / BPS
            edge = touch + band if order.side is Side.BUY else touch - band
            if limit is not None:
                edge = min(edge, limit) if order.side is Side.BUY else max(edge, limit)
            for price, size in await self._levels(order, snapshot):
                if order.leaves <= 0:
                    break
                if (price > edge) if order.side is Side.BUY else (price < edge):
                    break
                self._fill(order, min(size, order.leaves), price, maker=False)
        if order.leaves > 0 and (
            order.order_type is OrderType.MARKET
            or order.tif
            in (
                TimeInForce.IOC,
                TimeInForce.FOK,
            )
        ):
            order.status = (
                BybitOrderStatus.PARTIALLY_FILLED_CANCELED
                if order.cum_qty
                else BybitOrderStatus.CANCELLED
            )
            order.reject_reason = "EC_NoImmediateQtyToFill" if not order.cum_qty else ""

    async def _levels(self, order: _Order, snapshot: MarketSnapshot) -> list[Level]:
        if self.level_source is not None:
            book = await self.level_source.levels(order.category, order.symbol)
            if book:
                bids, asks = book
                return list(asks if order.side is Side.BUY else bids)
        depth = snapshot.depth_against(order.side)
        return [(snapshot.touch(order.side), depth if depth else order.leaves)]

    def _fill(self, order: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        if qty <= 0:
            return
        taker_rate, maker_rate = self.fees.get(order.category, DEFAULT_FEES[Category.LINEAR])
        value = qty * price
        fee = value * (maker_rate if maker else taker_rate)
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.updated = datetime.now(UTC)
        order.status = (
            BybitOrderStatus.FILLED if order.leaves == 0 else BybitOrderStatus.PARTIALLY_FILLED
        )
        execution = Execution(
            exec_id=f"paper-{self._run}-{next(self._ids):010d}",
            order_id=order.order_id,
            order_link_id=order.link,
            symbol=order.symbol,
            side=order.side,
            exec_price=price,
            exec_qty=qty,
            exec_fee=fee,
            exec_time=order.updated,
            is_maker=maker,
            category=order.category,
        )
        self._book_and_emit(execution, order.position_idx)

    def _book_and_emit(self, execution: Execution, position_idx: PositionIdx) -> None:
        """Book the fill and publish it (and the position it moved) as the exchange would."""
        category = execution.category or Category.LINEAR
        fill = PositionFill.from_execution(execution, position_idx)
        key = self._book(category, execution.symbol, fill)
        if self._publish:
            self.updates.put_nowait(
                {
                    "topic": "execution",
                    "data": {
                        "category": category.value,
                        "symbol": execution.symbol,
                        "orderId": execution.order_id,
                        "orderLinkId": execution.order_link_id,
                        "side": execution.side.value,
                        "execId": fill.exec_id,
                        "execPrice": str(execution.exec_price),
                        "execQty": str(execution.exec_qty),
                        "execValue": str(execution.value),
                        "execFee": str(execution.exec_fee),
                        "feeCurrency": "USDT",
                        "isMaker": execution.is_maker,
                        "execType": "Trade",
                        "execTime": _ms(execution.exec_time),
                    },
                }
            )
            if category.has_positions:
                self._emit_position(self.books[key])

    def _book(
        self, category: Category, symbol: str, fill: PositionFill
    ) -> tuple[Category, str, PositionIdx]:
        """Apply one fill to its position book and to the wallet; returns the book's key."""
        key = (category, symbol, fill.position_idx)
        position = self.books.get(key, Position.flat(category, symbol, fill.position_idx))
        before = position.realized_pnl
        position = apply_fill(position, fill)
        self.books[key] = replace(position, mark_price=fill.price)
        quote = "USDT"
        if category is Category.SPOT:
            base = symbol.removesuffix(quote)
            sign = fill.side.sign
            self.wallet[base] = self.wallet.get(base, ZERO) + sign * fill.qty
            spent = sign * fill.qty * fill.price + fill.fee
            self.wallet[quote] = self.wallet.get(quote, ZERO) - spent
        else:
            self.wallet[quote] = self.wallet.get(quote, ZERO) + (position.realized_pnl - before)
        return key

    def restore(
        self,
        fills: Iterable[tuple[Category, str, PositionFill]],
        open_orders: Iterable[OrderState],
        unbooked: Iterable[tuple[Execution, PositionIdx]] = (),
    ) -> None:
        """Take up where the previous run of the service stopped (call once, at start, before
        any order): the paper account lives in this process, its fills and orders in the
        database. ``fills`` — every paper fill stored, in execution order — rebuild the books
        and the wallet exactly as ``_fill`` built them; ``open_orders`` — our paper orders
        still resting (with their exchange id) — rest again with what they had filled, and
        fill when the market crosses them. A paper intent still ``submitting`` is not among
        them: this exchange never saw it, and recovery marks it failed. Without this a
        restarted dry-run traded from an empty paper account while the database showed the
        old positions, and resting paper orders never filled again.

        ``unbooked`` — what order rows count as filled beyond their stored fills: an order is
        answered with its record (e.g. ``filled``) at once, while its fills reach the database
        only when the tracker drains this exchange's feed; a process that died in between lost
        them. Each is booked after the stored fills, as one fill at its average price, and
        published like any fill (execution id ``paper-restored-<orderId>-<the order row's last
        change>``: the same on a second restart before the tracker stored it, so never booked
        twice)."""
        for category, symbol, fill in fills:
            self._book(category, symbol, fill)
        for execution, position_idx in unbooked:
            exec_id = f"paper-restored-{execution.order_id}-{_ms(execution.exec_time)}"
            self._book_and_emit(replace(execution, exec_id=exec_id), position_idx)
        for state in open_orders:
            if state.order_id is None or not state.status.is_open:
                continue
            order = _Order(
                order_id=state.order_id,
                link=state.order_link_id,
                category=state.category,
                symbol=state.symbol,
                side=state.side,
                order_type=state.order_type,
                qty=state.qty,
                price=state.price,
                tif=state.time_in_force or TimeInForce.GTC,
                reduce_only=state.reduce_only,
                position_idx=state.position_idx,
                created=state.created_at,
                status=(
                    BybitOrderStatus.PARTIALLY_FILLED
                    if state.filled_qty > 0
                    else BybitOrderStatus.NEW
                ),
                cum_qty=state.filled_qty,
                cum_value=state.filled_value,
                cum_fee=state.fees,
                updated=state.updated_at or state.created_at,
                take_profit=state.take_profit,
                stop_loss=state.stop_loss,
            )
            self.orders[order.link] = order
            self.by_id[order.order_id] = order
            self._maybe_open[order.link] = order

    def _open_orders(self) -> list[_Order]:
        """The open orders in arrival order; forgets the ones closed since the last call."""
        closed = [link for link, order in self._maybe_open.items() if not order.is_open]
        for link in closed:
            del self._maybe_open[link]
        return list(self._maybe_open.values())

    def _reserved(self, coin: str) -> Decimal:
        total = ZERO
        for order in self._open_orders():
            if order.reduce_only or order.price is None:
                continue
            if order.category is Category.SPOT:
                if order.side is Side.BUY and coin == "USDT":
                    total += order.leaves * order.price
                elif order.side is Side.SELL and order.symbol.startswith(coin):
                    total += order.leaves
            elif coin == "USDT":
                total += order.leaves * order.price / self.default_leverage
        return total

    def _emit(self, order: _Order) -> None:
        if self._publish:
            self.updates.put_nowait({"topic": "order", "data": _wire(order.update())})

    def _emit_position(self, position: Position) -> None:
        if self._publish:
            self.updates.put_nowait(
                {"topic": "position", "data": _wire_position(position, self.default_leverage)}
            )

    def _ok(
        self,
        action: str,
        request: Mapping[str, object],
        started: float,
        order: _Order,
        outcome: str | None,
    ) -> PaperReport:
        return PaperReport(
            action,
            request,
            True,
            0,
            None,
            "OK",
            _elapsed(started),
            order_id=order.order_id,
            order=order.update(),
            outcome=outcome,
        )


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
