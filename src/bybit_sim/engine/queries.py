"""Read-only REST views of the exchange: open orders, history, executions, positions,
wallet, fee rates and market data, with Bybit's filters and cursor pagination.

Each function takes the `Exchange` and the request parameters and returns Bybit's `result`.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import takewhile
from typing import TYPE_CHECKING, Any

from bybit_sim.engine.errors import params_error
from bybit_sim.engine.numbers import fmt
from bybit_sim.engine.orders import Order, filter_ok, in_scope
from bybit_sim.engine.pagination import decode_cursor, encode_cursor, paginate, paginate_desc
from bybit_sim.engine.params import Params, get_int, get_limit, get_str

if TYPE_CHECKING:
    from bybit_sim.engine.exchange import Exchange

WEEK_MS = 7 * 24 * 3600 * 1000


def wallet_balance(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/account/wallet-balance."""
    account_type = get_str(p, "accountType", required=True)
    if account_type != "UNIFIED":
        raise params_error("accountType only support UNIFIED.")
    coins = get_str(p, "coin")
    only = {c.strip() for c in coins.split(",") if c.strip()} if coins else None
    return {"list": [ex.wallet_account(only)]}


def fee_rate(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/account/fee-rate."""
    category = ex.category_of(p)
    symbol = get_str(p, "symbol")
    fees = ex.config.fees[category]
    insts = (
        [ex.instrument(category, symbol)]
        if symbol
        else [i for i in ex.instruments() if i.category == category]
    )
    return {
        "list": [
            {
                "symbol": i.symbol,
                "takerFeeRate": fmt(fees.taker),
                "makerFeeRate": fmt(fees.maker),
            }
            for i in insts
        ]
    }


def position_list(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/position/list."""
    category = ex.category_of(p, ("linear",))
    symbol = get_str(p, "symbol")
    settle = get_str(p, "settleCoin")
    base = get_str(p, "baseCoin")
    if not symbol and not settle and not base:
        raise params_error("params error: symbol or settleCoin is required")
    limit = get_limit(p, 20, 200)
    if symbol:
        ex.instrument(category, symbol)
        keys = [k for k in ex.positions if k[0] == symbol]
    else:
        keys = [
            k
            for k, pos in ex.positions.items()
            if pos.size
            and (not settle or pos.inst.cfg.quote_coin == settle)
            and (not base or pos.inst.cfg.base_coin == base)
        ]
    keys.sort(key=lambda k: (ex.instrument("linear", k[0]).symbol_id, k[1]))
    numbered = list(enumerate(keys))
    numbered.reverse()
    page, cursor = paginate(numbered, lambda e: e[0], limit, get_str(p, "cursor"), "pos")
    rows = [ex.position_item(k, ws=False) for _, k in sorted(page)]
    return {"category": category, "list": rows, "nextPageCursor": cursor}


def open_orders(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/order/realtime: open orders (or recent closed with openOnly=1, or one order
    by orderId/orderLinkId whatever its status), newest first, cursor-paginated."""
    category = ex.category_of(p)
    symbol = get_str(p, "symbol")
    base = get_str(p, "baseCoin")
    settle = get_str(p, "settleCoin")
    order_id = get_str(p, "orderId")
    link_id = get_str(p, "orderLinkId")
    if category == "linear" and not (symbol or base or settle or order_id or link_id):
        raise params_error("params error: symbol, baseCoin or settleCoin is required")
    if symbol:
        ex.instrument(category, symbol)
    limit = get_limit(p, 20, 50)
    order_filter = get_str(p, "orderFilter")
    open_only = get_int(p, "openOnly", 0)
    cursor_in = get_str(p, "cursor")

    def keep(o: Order) -> bool:
        return (
            o.category == category
            and in_scope(o, symbol, base, settle)
            and filter_ok(o, order_filter)
        )

    if order_id or link_id:
        found = ex.orders.get(order_id or ex.link_ids.get(link_id, ""))
        chosen = [found] if found is not None and keep(found) else []
        page, cursor = paginate(chosen, lambda o: o.seq, limit, cursor_in, "open")
    elif open_only == 1:
        # the latest `closed_orders_kept` closed orders of the category (closing order is not
        # creation order, hence the sort)
        kept: list[Order] = []
        for o in reversed(ex.closed_orders):
            if o.category == category:
                kept.append(o)
                if len(kept) >= ex.config.closed_orders_kept:
                    break
        items = sorted((o for o in kept if keep(o)), key=lambda o: o.seq, reverse=True)
        page, cursor = paginate(items, lambda o: o.seq, limit, cursor_in, "open")
    else:
        # open orders are kept in creation (seq) order: newest first is the reverse, and the
        # scan stops one past the page
        newest_first = reversed(ex.open_orders.values())
        page, cursor = paginate_desc(newest_first, lambda o: o.seq, keep, limit, cursor_in, "open")
    return {
        "category": category,
        "list": [o.render(ws=False) for o in page],
        "nextPageCursor": cursor,
    }


def order_history(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/order/history: closed orders (UTA 2.0 excludes active ones), newest first."""
    category = ex.category_of(p)
    symbol = get_str(p, "symbol")
    base = get_str(p, "baseCoin")
    settle = get_str(p, "settleCoin")
    if symbol:
        ex.instrument(category, symbol)
    order_id = get_str(p, "orderId")
    link_id = get_str(p, "orderLinkId")
    status = get_str(p, "orderStatus")
    order_filter = get_str(p, "orderFilter")
    limit = get_limit(p, 20, 50)
    start, end = time_window(ex, p)

    def keep(o: Order) -> bool:
        return (
            not o.is_open
            and o.category == category
            and o.created_time <= end
            and in_scope(o, symbol, base, settle)
            and (not link_id or o.order_link_id == link_id)
            and (not status or o.status == status)
            and filter_ok(o, order_filter)
        )

    if order_id:
        one = ex.orders.get(order_id)
        candidates: Iterable[Order] = [one] if one is not None else []
    else:
        # all orders in creation order, newest first, until the window's start
        candidates = takewhile(lambda o: o.created_time >= start, reversed(ex.orders.values()))
    window = (o for o in candidates if o.created_time >= start)
    page, cursor = paginate_desc(window, lambda o: o.seq, keep, limit, get_str(p, "cursor"), "hist")
    return {
        "category": category,
        "list": [o.render(ws=False) for o in page],
        "nextPageCursor": cursor,
    }


def time_window(ex: Exchange, p: Params) -> tuple[int, int]:
    start = get_int(p, "startTime")
    end = get_int(p, "endTime")
    now = ex.now()
    if start is None and end is None:
        return now - WEEK_MS, now + 1
    if start is None:
        assert end is not None
        return end - WEEK_MS, end
    if end is None:
        return start, start + WEEK_MS
    if end < start:
        raise params_error("params error: endTime is earlier than startTime")
    if end - start > WEEK_MS:
        raise params_error("params error: the time range cannot exceed 7 days")
    return start, end


def execution_list(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/execution/list: our fills, newest first, cursor-paginated."""
    category = ex.category_of(p)
    symbol = get_str(p, "symbol")
    if symbol:
        ex.instrument(category, symbol)
    order_id = get_str(p, "orderId")
    link_id = get_str(p, "orderLinkId")
    base = get_str(p, "baseCoin")
    exec_type = get_str(p, "execType")
    limit = get_limit(p, 50, 100)
    start, end = time_window(ex, p)
    cursor = get_str(p, "cursor")
    top = decode_cursor(cursor, "exec") if cursor else len(ex.executions)
    # executions are stored in time order: scan backwards from the cursor and stop at the
    # start of the window or one item past the page (a fill lookup by order uses its index)
    if order_id:
        candidates: Iterable[int] = reversed(
            [n for n in ex.exec_index.get(order_id, []) if n < top]
        )
    else:
        candidates = range(top - 1, -1, -1)
    matched: list[tuple[int, dict[str, Any]]] = []
    for n in candidates:
        e = ex.executions[n]
        exec_time = int(e["execTime"])
        if exec_time < start:
            break
        if (
            exec_time <= end
            and e["category"] == category
            and (not symbol or e["symbol"] == symbol)
            and (not link_id or e["orderLinkId"] == link_id)
            and (not exec_type or e["execType"] == exec_type)
            and (not base or ex.instrument(category, e["symbol"]).cfg.base_coin == base)
        ):
            matched.append((n, e))
            if len(matched) > limit:
                break
    page = matched[:limit]
    next_cursor = encode_cursor("exec", page[-1][0]) if len(matched) > limit else ""
    rows = [{k: v for k, v in e.items() if k != "category"} for _, e in page]
    return {"category": category, "list": rows, "nextPageCursor": next_cursor}


def instruments_info(ex: Exchange, p: Params) -> dict[str, Any]:
    """GET /v5/market/instruments-info (linear: cursor pagination; spot: none)."""
    category = ex.category_of(p)
    symbol = get_str(p, "symbol")
    base = get_str(p, "baseCoin")
    status = get_str(p, "status")
    items = [
        i
        for i in ex.instruments()
        if i.category == category
        and (not symbol or i.symbol == symbol)
        and (not base or i.cfg.base_coin == base)
        and (not status or status == "Trading")
    ]
    if category == "spot":
        return {"category": category, "list": [i.info() for i in items]}
    limit = get_limit(p, 500, 1000)
    # One order for the whole list, paged or not: listing order (symbol id ascending). The
    # cursor helper walks keys downwards, so it is given the negated id.
    items.sort(key=lambda i: i.symbol_id)
    page, cursor = paginate(items, lambda i: -i.symbol_id, limit, get_str(p, "cursor"), "inst")
    return {"category": category, "list": [i.info() for i in page], "nextPageCursor": cursor}


def tickers(ex: Exchange, p: Params) -> dict[str, Any]:
    category = ex.category_of(p)
    symbol = get_str(p, "symbol")
    now = ex.now()
    if symbol:
        return {"category": category, "list": [ex.market(category, symbol).ticker(now)]}
    return {
        "category": category,
        "list": [m.ticker(now) for (c, _), m in ex.markets.items() if c == category],
    }


def orderbook(ex: Exchange, p: Params) -> dict[str, Any]:
    category = ex.category_of(p)
    symbol = get_str(p, "symbol", required=True)
    default = 1 if category == "spot" else 25
    depth = get_limit(p, default, 1000 if category != "option" else 25)
    return ex.orderbook(category, symbol, depth)
