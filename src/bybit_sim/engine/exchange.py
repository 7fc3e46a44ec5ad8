"""The simulated exchange: one UNIFIED account trading against synthetic books.

`Exchange` holds the whole state and is the single entry point for the REST handlers, the
WebSocket streams and the admin API. It is synchronous and single-threaded (called from the
event loop), so each public method is atomic. Order entry methods take Bybit request parameters
(a mapping of JSON/query values) and return Bybit `result` objects, raising `ApiError` with
Bybit's retCode for a refused request.

The engine package splits the work: `validation` (create checks), `tpsl` (take-profit /
stop-loss orders), `position_ops` (leverage, position mode, trading-stop) and `queries`
(read-only REST views) operate on this class; matching, fills, triggers and liquidation live
here.

Every state change is reported to private listeners as `(topic, items)` with items in Bybit's
WS shape (topics `order`, `execution`, `position`, `wallet`), collected during one operation and
delivered when it ends (`_flush`), and to market listeners as `(category, symbol)` whenever a
symbol's price or book changed.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from bybit_sim.config import SimConfig
from bybit_sim.engine import tpsl
from bybit_sim.engine.book import BUY, SELL
from bybit_sim.engine.errors import ApiError, params_error
from bybit_sim.engine.instruments import Instrument
from bybit_sim.engine.market import Market
from bybit_sim.engine.numbers import ZERO, fine, fmt, is_multiple, round_down
from bybit_sim.engine.orders import ACTIVE_STATUSES, POSITION_TPSL, Order, filter_ok, in_scope
from bybit_sim.engine.params import (
    Params,
    get_opt_decimal,
    get_str,
)
from bybit_sim.engine.positions import Position
from bybit_sim.engine.slippage import market_limit
from bybit_sim.engine.validation import (
    check_band,
    check_price,
    check_tpsl_sides,
    protective_price,
    validate_create,
)
from bybit_sim.engine.wallet import (
    MARGIN_COIN,
    CoinBalance,
    MarginFigures,
    available_margin,
    render_account,
)

log = logging.getLogger(__name__)

PrivateListener = Callable[[str, list[dict[str, Any]]], None]
MarketListener = Callable[[str, str], None]

CATEGORIES = ("linear", "spot")
ONE_WAY = "one_way"
HEDGE = "hedge"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _opposite(side: str) -> str:
    return SELL if side == BUY else BUY


class Exchange:
    """See module docstring. `clock` returns epoch milliseconds (injectable for tests)."""

    def __init__(self, config: SimConfig, clock: Callable[[], int] = _now_ms) -> None:
        self.config = config
        self._clock = clock
        self._private_listeners: list[PrivateListener] = []
        self._market_listeners: list[MarketListener] = []
        self._instruments: dict[tuple[str, str], Instrument] = {}
        for n, cfg in enumerate(config.instruments, start=1):
            self._instruments[(cfg.category, cfg.symbol)] = Instrument(cfg, n)
        self._starts = 0  # starts and resets: each draws its own ids (`id_epoch`)
        self._init_state()

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        cfg = self.config
        self._rng = random.Random(cfg.seed)
        # ids: the seed's sequence, salted per start/reset unless ids must be reproducible
        self._starts += 1
        self._id_salt = (
            0
            if cfg.id_epoch == 0
            else random.Random(f"{cfg.id_epoch}:{self._starts}").getrandbits(128)
        )
        run = cfg.seed % 1000 if cfg.id_epoch == 0 else self._id_salt % 1_000_000_000
        self._spot_id = 1_800_000_000_000_000_000 + run * 1_000_000_000
        self.markets: dict[tuple[str, str], Market] = {
            key: Market(inst, cfg.seed, cfg.book_levels) for key, inst in self._instruments.items()
        }
        self.orders: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}
        self.closed_orders: list[Order] = []
        self.link_ids: dict[str, str] = {}
        self.executions: list[dict[str, Any]] = []
        # orderId -> positions of its fills in `executions`
        self.exec_index: dict[str, list[int]] = {}
        self._order_seq = 0
        self.order_im = ZERO
        self.coins: dict[str, CoinBalance] = {
            coin: CoinBalance(wallet=amount) for coin, amount in cfg.initial_wallet.items()
        }
        self.coins.setdefault(MARGIN_COIN, CoinBalance())
        for inst in self._instruments.values():
            self.coins.setdefault(inst.cfg.base_coin, CoinBalance())
            self.coins.setdefault(inst.cfg.quote_coin, CoinBalance())
        self.position_mode: dict[str, str] = {}
        self.leverage: dict[str, Decimal] = {}
        self.positions: dict[tuple[str, int], Position] = {}
        now = self._clock()
        for inst in self._instruments.values():
            if inst.is_spot:
                continue
            self.position_mode[inst.symbol] = HEDGE if cfg.position_mode == "hedge" else ONE_WAY
            self.leverage[inst.symbol] = min(cfg.default_leverage, inst.cfg.max_leverage)
            self._make_positions(inst, now)
        self._last_time = 0
        self._out_orders: list[dict[str, Any]] = []
        self._out_execs: list[dict[str, Any]] = []
        self._dirty_positions: dict[tuple[str, int], None] = {}
        self._wallet_dirty = False
        self._dirty_markets: dict[tuple[str, str], None] = {}

    def _make_positions(self, inst: Instrument, now: int) -> None:
        for idx in (0, 1, 2):
            self.positions.pop((inst.symbol, idx), None)
        idxs = (1, 2) if self.position_mode[inst.symbol] == HEDGE else (0,)
        for idx in idxs:
            self.positions[(inst.symbol, idx)] = Position(
                inst=inst,
                idx=idx,
                leverage=self.leverage[inst.symbol],
                created_time=now,
                updated_time=now,
            )

    # -------------------------------------------------------------- listeners
    def add_private_listener(self, fn: PrivateListener) -> None:
        self._private_listeners.append(fn)

    def add_market_listener(self, fn: MarketListener) -> None:
        self._market_listeners.append(fn)

    def _flush(self) -> None:
        """Deliver everything collected during the operation that just ended (after the
        liquidation check, whose events go out with the rest)."""
        self._check_liquidation()
        batches: list[tuple[str, list[dict[str, Any]]]] = []
        if self._out_orders:
            batches.append(("order", self._out_orders))
            self._out_orders = []
        if self._out_execs:
            batches.append(("execution", self._out_execs))
            self._out_execs = []
        if self._dirty_positions:
            keys = list(self._dirty_positions)
            self._dirty_positions = {}
            if self._private_listeners:
                batches.append(("position", [self.position_item(k, ws=True) for k in keys]))
        if self._wallet_dirty:
            self._wallet_dirty = False
            if self._private_listeners:
                item = self.wallet_account(None)
                batches.append(("wallet", [item]))
        for topic, items in batches:
            for fn in self._private_listeners:
                try:
                    fn(topic, items)
                except Exception:
                    log.exception("private listener failed on %s", topic)
        if self._dirty_markets:
            keys2 = list(self._dirty_markets)
            self._dirty_markets = {}
            for category, symbol in keys2:
                for mfn in self._market_listeners:
                    try:
                        mfn(category, symbol)
                    except Exception:
                        log.exception("market listener failed on %s/%s", category, symbol)

    def _emit_order(self, order: Order) -> None:
        if self._private_listeners:
            self._out_orders.append(order.render(ws=True))

    # ------------------------------------------------------------------ clock
    def now(self) -> int:
        """Exchange time in ms; never goes backwards."""
        t = self._clock()
        if t < self._last_time:
            t = self._last_time
        self._last_time = t
        return t

    def _stamp(self, order: Order) -> None:
        """Set updatedTime, strictly increasing per order."""
        t = self.now()
        order.updated_time = t if t > order.updated_time else order.updated_time + 1

    # ------------------------------------------------------------- lookups
    def instrument(self, category: str, symbol: str) -> Instrument:
        inst = self._instruments.get((category, symbol))
        if inst is None:
            if category == "spot":
                raise ApiError(170121, "Invalid symbol.")
            raise params_error("params error: symbol invalid")
        return inst

    def instruments(self) -> Iterable[Instrument]:
        return self._instruments.values()

    def market(self, category: str, symbol: str) -> Market:
        return self.markets[(category, self.instrument(category, symbol).symbol)]

    @staticmethod
    def category_of(p: Params, allowed: tuple[str, ...] = CATEGORIES) -> str:
        category = get_str(p, "category", required=True)
        if category not in allowed:
            raise params_error(f"params error: category {category} is not supported")
        return category

    def _new_order_id(self, spot: bool) -> str:
        if spot:
            self._spot_id += 1
            return str(self._spot_id)
        return str(uuid.UUID(int=self._rng.getrandbits(128) ^ self._id_salt, version=4))

    def _new_exec_id(self, spot: bool) -> str:
        if spot:
            self._spot_id += 1
            return str(self._spot_id + 300_000_000_000_000_000)
        return str(uuid.UUID(int=self._rng.getrandbits(128) ^ self._id_salt, version=4))

    # ------------------------------------------------------------ positions
    def position(self, symbol: str, idx: int) -> Position:
        return self.positions[(symbol, idx)]

    def _position_for_order(self, order: Order) -> Position:
        return self.positions[(order.symbol, order.position_idx)]

    def closable(self, order_side: str, pos: Position, hedge: bool) -> Decimal:
        """Size the order would reduce (one-way: opposite position; hedge: its idx)."""
        if hedge:
            reducing = (pos.idx == 1 and order_side == SELL) or (pos.idx == 2 and order_side == BUY)
            return pos.size if reducing else ZERO
        return pos.size if pos.size and pos.side != order_side else ZERO

    def is_hedge(self, symbol: str) -> bool:
        return self.position_mode.get(symbol) == HEDGE

    def _mark(self, symbol: str) -> Decimal:
        return self.markets[("linear", symbol)].last

    def margin_figures(self) -> MarginFigures:
        upl = im = mm = ZERO
        mmr = self.config.maintenance_margin_rate
        for (symbol, _), pos in self.positions.items():
            if pos.size:
                mark = self._mark(symbol)
                upl += pos.unrealised(mark)
                im += pos.initial_margin()
                mm += pos.size * pos.avg_price * mmr
        return MarginFigures(upl=upl, position_im=im, position_mm=mm, order_im=self.order_im)

    def available_usdt(self) -> Decimal:
        return available_margin(self.coins[MARGIN_COIN], self.margin_figures())

    def spot_available(self, coin: str) -> Decimal:
        bal = self.coins.get(coin)
        if bal is None:
            return ZERO
        if coin == MARGIN_COIN:
            m = self.margin_figures()
            return min(
                bal.wallet - bal.locked - m.position_im - m.order_im,
                available_margin(bal, m),
            )
        return bal.wallet - bal.locked

    # ================================================================ orders
    def create_order(self, p: Params, external: bool = False) -> dict[str, str]:
        """POST /v5/order/create (or, `external`, a manual trade placed outside the API)."""
        try:
            order = self._create(p, external)
            return {"orderId": order.order_id, "orderLinkId": order.order_link_id}
        finally:
            self._flush()

    def place_external_order(self, **params: Any) -> dict[str, Any]:
        """Admin: a manual order on the same account (no orderLinkId, createType CreateByUser)."""
        params.pop("orderLinkId", None)
        result = self.create_order(params, external=True)
        return self.orders[result["orderId"]].render(ws=True)

    def _create(self, p: Params, external: bool) -> Order:
        req = validate_create(self, p, external)
        inst, m = req.inst, req.market
        spot = inst.is_spot
        now = self.now()
        self._order_seq += 1
        order = Order(
            order_id=self._new_order_id(spot),
            order_link_id=req.link_id,
            inst=inst,
            side=req.side,
            order_type=req.order_type,
            price=req.price or ZERO,
            qty=req.qty,
            time_in_force=req.time_in_force,
            position_idx=req.position_idx,
            created_time=now,
            updated_time=now,
            seq=self._order_seq,
            reduce_only=req.reduce_only,
            close_on_trigger=req.close_on_trigger,
            market_unit=req.market_unit,
            is_leverage="0" if spot else "",
            last_price_on_created=m.last,
            smp_type=req.smp_type,
            quote_budget=req.quote_budget,
            slippage=req.slippage,
        )
        spec = req.tpsl
        if spec is not None:
            order.take_profit = spec.take_profit or ZERO
            order.stop_loss = spec.stop_loss or ZERO
            order.tp_trigger_by = spec.tp_trigger_by
            order.sl_trigger_by = spec.sl_trigger_by
            order.tpsl_mode = spec.mode
            order.tp_order_type = spec.tp_order_type
            order.sl_order_type = spec.sl_order_type
            order.tp_limit_price = spec.tp_limit
            order.sl_limit_price = spec.sl_limit
        if req.link_id:
            self.link_ids[req.link_id] = order.order_id
        self.orders[order.order_id] = order
        self.open_orders[order.order_id] = order

        if req.trigger_price is not None:
            order.trigger_price = req.trigger_price
            order.trigger_direction = req.trigger_direction
            order.trigger_by = req.trigger_by
            order.stop_order_type = "StopOrder" if spot else "Stop"
            order.order_filter = "StopOrder"
            order.status = "Untriggered"
            m.conditionals.append(order)
            self._emit_order(order)
            return order

        self._reserve(order, req.reserve)
        if req.order_type == "Market":
            order.price = self._market_price(order, m)
        self._emit_order(order)
        self._execute_incoming(order, m)
        return order

    @staticmethod
    def _market_price(order: Order, m: Market) -> Decimal:
        """IOC limit of a market order: the price-limit band, tightened by its slippage
        tolerance (measured from the touch at this moment)."""
        protective = protective_price(m.inst, m.last, order.side)
        return market_limit(m.inst, m.book, order.side, protective, order.slippage)

    def _reserve(self, order: Order, amount: Decimal) -> None:
        order.reserved = amount
        if not amount:
            return
        if order.inst.is_spot:
            coin = order.inst.cfg.quote_coin if order.side == BUY else order.inst.cfg.base_coin
            self.coins[coin].locked += amount
            self._wallet_dirty = True
        else:
            self.order_im += amount

    def _release(self, order: Order, amount: Decimal) -> None:
        amount = min(amount, order.reserved)
        if amount <= 0:
            return
        order.reserved -= amount
        if order.inst.is_spot:
            coin = order.inst.cfg.quote_coin if order.side == BUY else order.inst.cfg.base_coin
            self.coins[coin].locked -= amount
            self._wallet_dirty = True
        else:
            self.order_im -= amount

    # ------------------------------------------------------------- matching
    def _execute_incoming(self, order: Order, m: Market) -> None:
        """Match a just-accepted (or triggered / re-priced) order as taker, then rest or end it."""
        inst = m.inst
        book = m.book
        if order.time_in_force == "PostOnly":
            best = book.best(_opposite(order.side))
            if best is not None and (
                (order.side == BUY and order.price >= best[0])
                or (order.side == SELL and order.price <= best[0])
            ):
                self._finish(order, "Cancelled", reject_reason="EC_PostOnlyWillTakeLiquidity")
                return
            m.rest(order)
            return
        want = self._fillable_qty(order)
        if want is None:
            return
        if order.time_in_force == "FOK" and book.available(order.side, order.price) < want:
            self._finish(order, "Cancelled", reject_reason="EC_CancelForNoFullFill")
            return
        budget = None
        if order.quote_budget is not None:
            budget = order.quote_budget - order.cum_exec_value
            want = inst.cfg.max_mkt_order_qty
        fills = book.take(order.side, order.price, want, quote=budget)
        if fills:
            seq = m.next_exec_seq()
            for price, qty in fills:
                self._fill(order, m, price, qty, is_maker=False, seq=seq)
            self._dirty_markets[(inst.category, inst.symbol)] = None
        if order.status == "Filled":
            self._emit_order(order)
            tpsl.attach_after_fill(self, order)
            return
        if order.quote_budget is not None:
            left = order.quote_budget - order.cum_exec_value
            best = book.best(SELL)
            if order.cum_exec_qty > 0 and (best is None or left < best[0] * inst.step):
                order.status = "Filled"
                self._finish(order, "Filled")
                tpsl.attach_after_fill(self, order)
                return
        if order.time_in_force in ("IOC", "FOK"):
            reason = (
                "EC_NoImmediateQtyToFill" if order.cum_exec_qty == 0 else "EC_NoEnoughQtyToFill"
            )
            status = "Cancelled"
            if inst.is_spot and order.cum_exec_qty > 0:
                status = "PartiallyFilledCanceled"
            self._finish(order, status, reject_reason=reason)
            if fills:
                tpsl.attach_after_fill(self, order)
            return
        if fills:
            self._emit_order(order)
            tpsl.attach_after_fill(self, order)
        m.rest(order)

    def _fillable_qty(self, order: Order) -> Decimal | None:
        """Quantity the order may still fill; reduce-only orders are clipped to the position
        (and cancelled with CancelByReduceOnly when nothing is left to reduce)."""
        leaves = order.qty - order.cum_exec_qty
        if order.inst.is_spot or not order.reduce_only:
            return leaves
        pos = self._position_for_order(order)
        closable = self.closable(order.side, pos, self.is_hedge(order.symbol))
        if closable <= 0:
            self._finish(order, "Cancelled", cancel_type="CancelByReduceOnly")
            return None
        return min(leaves, closable)

    def _fill(
        self,
        order: Order,
        m: Market,
        price: Decimal,
        qty: Decimal,
        is_maker: bool,
        seq: int,
        exec_type: str = "Trade",
    ) -> None:
        """Book one execution: balances, position, order progress, execution record."""
        inst = m.inst
        fees = self.config.fees[inst.category]
        rate = fees.maker if is_maker else fees.taker
        value = price * qty
        now = self.now()
        leaves_before = order.qty - order.cum_exec_qty
        pnl = ZERO
        closed = ZERO
        if inst.is_spot:
            base = self.coins[inst.cfg.base_coin]
            quote = self.coins[inst.cfg.quote_coin]
            if order.side == BUY:
                fee = qty * rate
                fee_coin = inst.cfg.base_coin
                if order.reserved:
                    self._release(order, order.price * qty)
                quote.wallet -= value
                base.wallet += qty - fee
            else:
                fee = value * rate
                fee_coin = inst.cfg.quote_coin
                if order.reserved:
                    self._release(order, qty)
                base.wallet -= qty
                quote.wallet += value - fee
        else:
            fee = value * rate
            fee_coin = MARGIN_COIN
            pos = self._position_for_order(order)
            was_side = pos.side
            closed, pnl = pos.apply_fill(order.side, qty, price, now)
            net = pnl - fee
            pos.cum_realised += net
            pos.cur_realised += net
            pos.seq = seq
            usdt = self.coins[MARGIN_COIN]
            usdt.wallet += net
            usdt.cum_realised += net
            if closed:
                order.closed_pnl += pnl - fee
            if order.reserved and leaves_before > 0:
                self._release(order, fine(order.reserved * qty / leaves_before))
            self._dirty_positions[(pos.inst.symbol, pos.idx)] = None
            if pos.size == 0 or (was_side and pos.side != was_side):
                tpsl.clear_position_tpsl(self, pos)
        self._wallet_dirty = True
        order.cum_exec_qty += qty
        order.cum_exec_value += value
        order.cum_exec_fee += fee
        order.fee_coin = fee_coin
        if order.quote_budget is None and order.cum_exec_qty >= order.qty:
            order.status = "Filled"
            self._close_bookkeeping(order)
        else:
            order.status = "PartiallyFilled"
        self._stamp(order)
        m.volume += qty
        m.turnover += value
        item: dict[str, Any] = {
            "category": inst.category,
            "symbol": inst.symbol,
            "isLeverage": order.is_leverage,
            "orderId": order.order_id,
            "orderLinkId": order.order_link_id,
            "side": order.side,
            "orderPrice": inst.price_str(order.price),
            "orderQty": fmt(order.qty)
            if order.quote_budget is not None
            else inst.qty_str(order.qty),
            "leavesQty": inst.qty_str(order.leaves_qty),
            "orderType": order.order_type,
            "stopOrderType": order.stop_order_type,
            "execFee": fmt(fee),
            "execId": self._new_exec_id(inst.is_spot),
            "execPrice": inst.price_str(price),
            "execQty": inst.qty_str(qty),
            "execPnl": fmt(pnl),
            "execType": exec_type,
            "execValue": fmt(value),
            "execTime": str(now),
            "isMaker": is_maker,
            "feeRate": fmt(rate),
            "tradeIv": "",
            "markIv": "",
            "markPrice": inst.price_str(m.last),
            "indexPrice": "" if inst.is_spot else inst.price_str(m.last),
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": inst.qty_str(closed),
            "extraFees": "",
            "seq": seq,
            "feeCurrency": fee_coin,
            "marketUnit": order.market_unit,
        }
        if not inst.is_spot:
            item["createType"] = order.create_type
        self.exec_index.setdefault(order.order_id, []).append(len(self.executions))
        self.executions.append(item)
        if self._private_listeners:
            self._out_execs.append(item)

    def _close_bookkeeping(self, order: Order) -> None:
        """Remove a now-final order from the open set and release what it reserved."""
        if self.open_orders.pop(order.order_id, None) is not None:
            self.closed_orders.append(order)
        if order.reserved:
            self._release(order, order.reserved)
        m = self.markets[(order.category, order.symbol)]
        m.unrest(order)
        if order in m.conditionals:
            m.conditionals.remove(order)

    def _finish(
        self,
        order: Order,
        status: str,
        cancel_type: str = "UNKNOWN",
        reject_reason: str = "EC_NoError",
    ) -> None:
        """Move an order to a final status and report it."""
        order.status = status
        order.cancel_type = cancel_type
        order.reject_reason = reject_reason
        self._close_bookkeeping(order)
        self._stamp(order)
        self._emit_order(order)

    # ------------------------------------------------------------ price moves
    def tick(self) -> None:
        """Advance every non-frozen price path one step (the background task calls this)."""
        try:
            for m in self.markets.values():
                if m.frozen or m.path.mode == "frozen":
                    continue
                self._move(m, m.path.next_price(m.last))
        finally:
            self._flush()

    def set_price(self, category: str, symbol: str, price: Decimal) -> None:
        """Admin: jump a symbol's price (rounded to its tick)."""
        m = self.market(category, symbol)
        if price <= 0:
            raise params_error("price must be positive")
        try:
            self._move(m, max(round_down(price, m.inst.tick), m.inst.tick), force=True)
        finally:
            self._flush()

    def step_price(self, category: str, symbol: str, steps: int = 1) -> None:
        """Admin: advance a symbol's path `steps` times (even while frozen: a frozen path
        then takes seeded random-walk steps; a scripted one its next prices)."""
        m = self.market(category, symbol)
        try:
            for _ in range(steps):
                self._move(m, m.path.next_price(m.last, manual=True))
        finally:
            self._flush()

    def freeze_price(self, category: str, symbol: str, frozen: bool) -> None:
        """Admin: stop (or restart) the background movement of one symbol."""
        self.market(category, symbol).frozen = frozen

    def _move(self, m: Market, price: Decimal, force: bool = False) -> None:
        price = max(round_down(price, m.inst.tick), m.inst.tick)
        if price == m.last and not force:
            return
        m.set_last(price)
        self._dirty_markets[(m.inst.category, m.inst.symbol)] = None
        self._match_resting(m)
        self._trigger_conditionals(m)
        if not m.inst.is_spot:
            for idx in (0, 1, 2):
                pos = self.positions.get((m.inst.symbol, idx))
                if pos is not None and pos.size:
                    # Bybit pushes position updates as the mark price moves
                    self._dirty_positions[(m.inst.symbol, idx)] = None

    def _check_liquidation(self) -> None:
        """Cross-margin liquidation, checked at the end of every operation.

        When the USDT wallet plus any unrealised loss no longer covers the maintenance margin
        plus the USDT locked by spot orders, every open order is cancelled
        (`CancelAllBeforeLiq`, conditional ones `Deactivated`), which frees order margin and
        locks. If the margin balance is then still below the maintenance margin, every position
        is closed at the mark price by a `CreateByLiq` order (execType `BustTrade`). A loss
        beyond the wallet is absorbed, as by an insurance fund: no balance ever goes negative."""
        usdt = self.coins[MARGIN_COIN]
        figures = self.margin_figures()
        # spot locks are paid from the wallet itself: unrealised profit does not back them
        if usdt.wallet + min(figures.upl, ZERO) >= figures.position_mm + usdt.locked:
            return
        for order in list(self.open_orders.values()):
            if order.status == "Untriggered":
                status = "Deactivated"
            elif order.inst.is_spot and order.cum_exec_qty > 0:
                status = "PartiallyFilledCanceled"
            else:
                status = "Cancelled"
            self._finish(order, status, cancel_type="CancelAllBeforeLiq")
        figures = self.margin_figures()
        if usdt.wallet + figures.upl >= figures.position_mm:
            return
        for pos in list(self.positions.values()):
            if not pos.size:
                continue
            m = self.markets[("linear", pos.inst.symbol)]
            now = self.now()
            self._order_seq += 1
            order = Order(
                order_id=self._new_order_id(False),
                order_link_id="",
                inst=pos.inst,
                side=_opposite(pos.side),
                order_type="Market",
                price=m.last,
                qty=pos.size,
                time_in_force="IOC",
                position_idx=pos.idx,
                created_time=now,
                updated_time=now,
                seq=self._order_seq,
                reduce_only=True,
                close_on_trigger=True,
                create_type="CreateByLiq",
                last_price_on_created=m.last,
            )
            self.orders[order.order_id] = order
            self.open_orders[order.order_id] = order
            self._emit_order(order)
            seq = m.next_exec_seq()
            self._fill(order, m, m.last, pos.size, is_maker=False, seq=seq, exec_type="BustTrade")
            self._emit_order(order)
        if usdt.wallet < 0:
            log.info("liquidation loss of %s USDT absorbed", -usdt.wallet)
            usdt.wallet = ZERO
            self._wallet_dirty = True

    def _match_resting(self, m: Market) -> None:
        """Fill our resting orders the moved synthetic book now crosses, as maker, at their
        own limit price, limited by the synthetic liquidity beyond that price."""
        # walks the priority-ordered list in place (no copy: it may hold many orders); a
        # filled or cancelled order leaves the list, so the same index then holds the next one
        for side_orders, side in ((m.buys, BUY), (m.sells, SELL)):
            i = 0
            while i < len(side_orders):
                order = side_orders[i]
                best = m.book.best(_opposite(side))
                if best is None:
                    break
                crosses = best[0] <= order.price if side == BUY else best[0] >= order.price
                if not crosses:
                    break
                want = self._fillable_qty(order)
                if want is None:
                    continue  # cancelled (reduce-only with nothing to reduce)
                fills = m.book.take(side, order.price, want)
                if not fills:
                    break
                qty = sum((q for _, q in fills), ZERO)
                self._fill(order, m, order.price, qty, is_maker=True, seq=m.next_exec_seq())
                self._emit_order(order)
                tpsl.attach_after_fill(self, order)
                if order.is_open:
                    if qty < want:
                        break  # the liquidity up to its price is used up: none for worse prices
                    i += 1  # clipped reduce-only order: the next one may still fill

    def _trigger_conditionals(self, m: Market) -> None:
        for order in list(m.conditionals):
            if order.status != "Untriggered":
                continue
            hit = (order.trigger_direction == 1 and m.last >= order.trigger_price) or (
                order.trigger_direction == 2 and m.last <= order.trigger_price
            )
            if hit:
                self._trigger(order, m)

    def _trigger(self, order: Order, m: Market) -> None:
        """Untriggered -> Triggered -> New, then match like a fresh order."""
        m.conditionals.remove(order)
        order.status = "Triggered"
        self._stamp(order)
        self._emit_order(order)
        inst = m.inst
        if order.stop_order_type in POSITION_TPSL:
            tpsl.detach_tpsl(self, order)
            size = self._position_for_order(order).size
            if size == 0:
                self._finish(order, "Deactivated", cancel_type="CancelByTpSlTsClear")
                return
            cap = (
                inst.cfg.max_mkt_order_qty
                if order.order_type == "Market"
                else inst.cfg.max_order_qty
            )
            order.qty = min(order.qty or size, size, cap)
        if not inst.is_spot and not order.reduce_only and order.order_type == "Limit":
            pos = self._position_for_order(order)
            closable = self.closable(order.side, pos, self.is_hedge(order.symbol))
            open_qty = max(order.qty - closable, ZERO)
            needed = fine(open_qty * order.price / self.leverage[order.symbol])
            if needed > self.available_usdt():
                self._finish(order, "Cancelled", reject_reason="EC_Others")
                return
            self._reserve(order, needed)
        elif inst.is_spot and order.order_type == "Limit":
            need = order.qty * order.price if order.side == BUY else order.qty
            coin = inst.cfg.quote_coin if order.side == BUY else inst.cfg.base_coin
            if need > self.spot_available(coin):
                self._finish(order, "Cancelled", reject_reason="EC_Others")
                return
            self._reserve(order, need)
        if order.order_type == "Market":
            order.price = self._market_price(order, m)
        order.status = "New"
        self._stamp(order)
        self._emit_order(order)
        self._execute_incoming(order, m)

    # ------------------------------------------------------- amend / cancel
    def _lookup(self, p: Params, category: str, symbol: str, verb: str) -> Order:
        order_id = get_str(p, "orderId")
        link_id = get_str(p, "orderLinkId")
        if not order_id and not link_id:
            raise params_error("params error: orderId or orderLinkId is required")
        order: Order | None = None
        if order_id:
            order = self.orders.get(order_id)
        elif link_id in self.link_ids:
            order = self.orders.get(self.link_ids[link_id])
        if (
            order is None
            or not order.is_open
            or order.category != category
            or order.symbol != symbol
        ):
            raise ApiError(110001, f"order not exists or too late to {verb}")
        return order

    def cancel_order(self, p: Params) -> dict[str, str]:
        """POST /v5/order/cancel."""
        try:
            category = self.category_of(p)
            inst = self.instrument(category, get_str(p, "symbol", required=True))
            order = self._lookup(p, category, inst.symbol, "cancel")
            self._cancel(order)
            return {"orderId": order.order_id, "orderLinkId": order.order_link_id}
        finally:
            self._flush()

    def _cancel(self, order: Order, cancel_type: str = "CancelByUser") -> None:
        if order.status == "Untriggered":
            status = "Deactivated"
        elif order.inst.is_spot and order.cum_exec_qty > 0:
            status = "PartiallyFilledCanceled"
        else:
            status = "Cancelled"
        if order.stop_order_type in POSITION_TPSL:
            tpsl.detach_tpsl(self, order)
        self._finish(order, status, cancel_type=cancel_type)

    def cancel_all(self, p: Params) -> dict[str, Any]:
        """POST /v5/order/cancel-all."""
        try:
            category = self.category_of(p)
            symbol = get_str(p, "symbol")
            base_coin = get_str(p, "baseCoin")
            settle_coin = get_str(p, "settleCoin")
            if category == "linear" and not (symbol or base_coin or settle_coin):
                raise params_error("params error: symbol, baseCoin or settleCoin is required")
            if symbol:
                self.instrument(category, symbol)
            order_filter = get_str(p, "orderFilter")
            if order_filter not in ("", "Order", "StopOrder", "OpenOrder", "tpslOrder"):
                raise params_error("params error: orderFilter invalid")
            if category == "spot" and not order_filter:
                order_filter = "Order"
            victims = [
                o
                for o in self.open_orders.values()
                if o.category == category
                and in_scope(o, symbol, base_coin, settle_coin)
                and filter_ok(o, order_filter)
            ]
            out = []
            for order in victims:
                self._cancel(order)
                out.append({"orderId": order.order_id, "orderLinkId": order.order_link_id})
            return {"list": out, "success": "1"}
        finally:
            self._flush()

    def amend_order(self, p: Params) -> dict[str, str]:
        """POST /v5/order/amend: qty, price, triggerPrice, takeProfit, stopLoss."""
        try:
            category = self.category_of(p)
            inst = self.instrument(category, get_str(p, "symbol", required=True))
            order = self._lookup(p, category, inst.symbol, "replace")
            self._amend(order, p)
            return {"orderId": order.order_id, "orderLinkId": order.order_link_id}
        finally:
            self._flush()

    def _amend(self, order: Order, p: Params) -> None:
        inst = order.inst
        m = self.markets[(inst.category, inst.symbol)]
        qty = get_opt_decimal(p, "qty")
        price = get_opt_decimal(p, "price")
        trigger = get_opt_decimal(p, "triggerPrice")
        take_profit = get_opt_decimal(p, "takeProfit")
        stop_loss = get_opt_decimal(p, "stopLoss")
        if order.stop_order_type in ("TakeProfit", "StopLoss"):
            qty = None  # Full mode: always the whole position
        if qty is not None and qty != order.qty:
            if not is_multiple(qty, inst.step):
                if inst.is_spot:
                    raise ApiError(170137, "Order quantity has too many decimals.")
                raise params_error("params error: qty invalid, not a multiple of qtyStep")
            if qty <= order.cum_exec_qty:
                if inst.is_spot:
                    raise ApiError(170313, "The new order quantity must be greater than filled.")
                raise ApiError(
                    110064,
                    "The modified contract quantity cannot be less than or equal to the "
                    "filled quantity.",
                )
            if not inst.is_spot and qty < inst.cfg.min_order_qty:
                raise params_error("The number of contracts exceeds minimum limit allowed")
            if qty > inst.cfg.max_order_qty:
                raise params_error("The number of contracts exceeds maximum limit allowed")
        else:
            qty = None
        if price is not None and order.order_type == "Limit" and price != order.price:
            check_price(inst, price)
            check_band(inst, m.last, order.side, price)
        else:
            price = None
        if trigger is not None and order.status == "Untriggered" and trigger != order.trigger_price:
            check_price(inst, trigger, what="triggerPrice")
            if order.trigger_direction == 1 and trigger <= m.last:
                raise ApiError(110092, "expect Rising, but trigger_price <= current")
            if order.trigger_direction == 2 and trigger >= m.last:
                raise ApiError(110093, "expect Falling, but trigger_price >= current")
        else:
            trigger = None
        tpsl_changed = (take_profit is not None and take_profit != order.take_profit) or (
            stop_loss is not None and stop_loss != order.stop_loss
        )
        if qty is None and price is None and trigger is None and not tpsl_changed:
            raise params_error("order not modified")
        new_qty = qty if qty is not None else order.qty
        new_price = price if price is not None else order.price
        if tpsl_changed:
            if inst.is_spot or order.stop_order_type:
                raise params_error("params error: this order cannot carry TP/SL")
            base = new_price if order.order_type == "Limit" else m.last
            check_tpsl_sides(inst, order.side, base, take_profit, stop_loss)
        # re-reserve for the new size/price; refuse if the account cannot afford the increase
        if order.status != "Untriggered" and order.order_type == "Limit":
            leaves = new_qty - order.cum_exec_qty
            if inst.is_spot:
                need = leaves * new_price if order.side == BUY else leaves
                coin = inst.cfg.quote_coin if order.side == BUY else inst.cfg.base_coin
                if need - order.reserved > self.spot_available(coin):
                    raise ApiError(170131, "Insufficient balance.")
            elif order.reduce_only:
                need = ZERO
            else:
                pos = self._position_for_order(order)
                closable = self.closable(order.side, pos, self.is_hedge(inst.symbol))
                need = fine(max(leaves - closable, ZERO) * new_price / self.leverage[inst.symbol])
                if need - order.reserved > self.available_usdt():
                    raise ApiError(110007, "ab not enough for new order")
            self._release(order, order.reserved)
            self._reserve(order, need)
        order.qty = new_qty
        if trigger is not None:
            order.trigger_price = trigger
        if take_profit is not None:
            order.take_profit = take_profit
        if stop_loss is not None:
            order.stop_loss = stop_loss
        if order.status == "Untriggered":
            order.price = new_price
            if order.stop_order_type in ("TakeProfit", "StopLoss") and trigger is not None:
                pos = self._position_for_order(order)
                if order.stop_order_type == "TakeProfit":
                    pos.take_profit = trigger
                else:
                    pos.stop_loss = trigger
                self._dirty_positions[(pos.inst.symbol, pos.idx)] = None
            self._stamp(order)
            self._emit_order(order)
            return
        repriced = price is not None
        if repriced:
            m.unrest(order)
            order.price = new_price
        self._stamp(order)
        self._emit_order(order)
        if repriced:
            self._execute_incoming(order, m)

    # ----------------------------------------------------------- admin fills
    def force_fill(self, order_id: str, qty: Decimal | None = None) -> dict[str, Any]:
        """Admin: fill an open order (partially when `qty` is given) at its price, as maker."""
        try:
            order = self.orders.get(order_id)
            if order is None or order.status not in ACTIVE_STATUSES:
                raise ApiError(110001, "order not exists or too late to fill")
            m = self.markets[(order.category, order.symbol)]
            leaves = order.qty - order.cum_exec_qty
            if order.quote_budget is not None:
                raise params_error("cannot force-fill a quote-unit market order")
            want = leaves if qty is None else qty
            if want <= 0 or want > leaves or not is_multiple(want, order.inst.step):
                raise params_error(f"qty must be a qtyStep multiple in (0, {leaves}]")
            clipped = self._fillable_qty(order)
            if clipped is None:
                return order.render(ws=True)
            want = min(want, clipped)
            price = order.price if order.order_type == "Limit" else m.last
            self._fill(order, m, price, want, is_maker=True, seq=m.next_exec_seq())
            self._emit_order(order)
            tpsl.attach_after_fill(self, order)
            return order.render(ws=True)
        finally:
            self._flush()

    # -------------------------------------------------------------- wallet
    def deposit(self, coin: str, amount: Decimal) -> dict[str, Any]:
        """Admin: add funds; returns the wallet account object."""
        if amount <= 0:
            raise params_error("amount must be positive")
        self.coins.setdefault(coin, CoinBalance()).wallet += amount
        self._wallet_dirty = True
        self._flush()
        return self.wallet_account(None)

    def withdraw(self, coin: str, amount: Decimal) -> dict[str, Any]:
        """Admin: remove available funds; returns the wallet account object."""
        if amount <= 0:
            raise params_error("amount must be positive")
        available = self.spot_available(coin)
        if amount > available:
            raise ApiError(110004, f"Insufficient wallet balance: available {fmt(available)}")
        self.coins[coin].wallet -= amount
        self._wallet_dirty = True
        self._flush()
        return self.wallet_account(None)

    def _usd_prices(self) -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {"USDT": Decimal(1), "USDC": Decimal(1)}
        for (category, _), m in self.markets.items():
            coin = m.inst.cfg.base_coin
            if m.inst.cfg.quote_coin == "USDT" and (category == "spot" or coin not in prices):
                prices[coin] = m.last
        return prices

    def wallet_account(self, only: set[str] | None) -> dict[str, Any]:
        return render_account(self.coins, self._usd_prices(), self.margin_figures(), only)

    # ------------------------------------------------------------ positions
    def position_item(self, key: tuple[str, int], ws: bool) -> dict[str, Any]:
        pos = self.positions[key]
        return pos.render(
            self._mark(pos.inst.symbol),
            self.config.fees["linear"].taker,
            self.config.maintenance_margin_rate,
            ws,
        )

    # --------------------------------------------------------------- market
    def ticker(self, category: str, symbol: str) -> dict[str, Any]:
        """The Bybit tickers item of one symbol (used by the public WebSocket)."""
        return self.market(category, symbol).ticker(self.now())

    def orderbook(self, category: str, symbol: str, depth: int) -> dict[str, Any]:
        """`{"s","b","a","u","seq","ts","cts"}` with up to `depth` levels per side."""
        return self.market(category, symbol).orderbook(depth, self.now())

    # ----------------------------------------------------------- admin/dump
    def reset(self) -> None:
        """Start over from the configuration (same seed); listeners stay registered."""
        self._init_state()
        for category, symbol in self.markets:
            self._dirty_markets[(category, symbol)] = None
        self._wallet_dirty = True
        self._flush()

    def dump(self) -> dict[str, Any]:
        """The whole state, JSON-able (for the admin API and debugging)."""
        now = self.now()
        return {
            "time": now,
            "markets": [
                {
                    "category": c,
                    "symbol": s,
                    "lastPrice": m.inst.price_str(m.last),
                    "frozen": m.frozen or m.path.mode == "frozen",
                    "pathMode": m.path.mode,
                    "bookUpdateId": m.book.update_id,
                }
                for (c, s), m in self.markets.items()
            ],
            "orders": [
                o.render(ws=True) for o in sorted(self.orders.values(), key=lambda o: o.seq)
            ],
            "positions": [self.position_item(k, ws=True) for k in sorted(self.positions)],
            "positionMode": dict(self.position_mode),
            "wallet": self.wallet_account(None),
            "executions": list(self.executions),
        }
