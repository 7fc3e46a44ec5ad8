"""Batch trade endpoints: create-batch, amend-batch, cancel-batch (v5-reference §3.17).

Body `{"category", "request": [ {...}, ... ]}`; at most 20 orders (linear) or 10 (spot). Each
order is handled exactly like its single endpoint, independently: `result.list[i]` and
`retExtInfo.list[i]` (`{"code", "msg"}`) describe order i. Every order costs one rate-limit unit;
when the batch overflows the remaining quota, the first orders run and the rest fail with
10006 individually.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bybit_sim.engine.errors import ApiError, params_error
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.envelope import QUOTA_PARAM, Reply, Route

MAX_ITEMS = {"linear": 20, "spot": 10}
Single = Callable[[Exchange, Params], dict[str, str]]


def _run(exchange: Exchange, params: Params, single: Single, with_time: bool) -> Reply:
    category = exchange.category_of(params)
    items = params.get("request")
    if not isinstance(items, list) or not items:
        raise params_error("params error: request must be a non-empty list")
    if len(items) > MAX_ITEMS[category]:
        raise params_error(f"params error: at most {MAX_ITEMS[category]} orders per batch")
    quota = params.get(QUOTA_PARAM, len(items))
    granted = quota if isinstance(quota, int) else len(items)
    results: list[dict[str, Any]] = []
    codes: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise params_error("params error: request items must be objects")
        symbol = str(item.get("symbol", ""))
        row: dict[str, Any] = {
            "category": category,
            "symbol": symbol,
            "orderId": "",
            "orderLinkId": str(item.get("orderLinkId") or ""),
        }
        if with_time:
            row["createAt"] = ""
        if n >= granted:
            codes.append({"code": 10006, "msg": "Too many visits!"})
        else:
            try:
                ids = single(exchange, {**item, "category": category})
            except ApiError as exc:
                codes.append({"code": exc.ret_code, "msg": exc.ret_msg})
            else:
                row.update(ids)
                if with_time:
                    order = exchange.orders[ids["orderId"]]
                    row["createAt"] = str(order.created_time)
                codes.append({"code": 0, "msg": "OK"})
        results.append(row)
    return Reply({"list": results}, {"list": codes})


def create_batch(exchange: Exchange, params: Params) -> Reply:
    return _run(exchange, params, lambda ex, p: ex.create_order(p), with_time=True)


def amend_batch(exchange: Exchange, params: Params) -> Reply:
    return _run(exchange, params, lambda ex, p: ex.amend_order(p), with_time=False)


def cancel_batch(exchange: Exchange, params: Params) -> Reply:
    return _run(exchange, params, lambda ex, p: ex.cancel_order(p), with_time=False)


ROUTES: list[Route] = [
    ("POST", "/v5/order/create-batch", create_batch, True),
    ("POST", "/v5/order/amend-batch", amend_batch, True),
    ("POST", "/v5/order/cancel-batch", cancel_batch, True),
]
