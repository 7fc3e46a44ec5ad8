"""Bybit's REST envelope and the two handler wrappers (public and private endpoints).

An endpoint is a plain function `(exchange, params) -> result`; `public()` / `private()` turn it
into an aiohttp handler that reads the parameters (query string or JSON body), authenticates and
rate-limits private calls, and answers `{retCode, retMsg, result, retExtInfo, time}` — HTTP 200
also for business errors, as Bybit does. The fault middleware wraps all of this from outside.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bybit_sim.auth import authenticate
from bybit_sim.config import BATCH_ENDPOINTS
from bybit_sim.engine.errors import ApiError
from bybit_sim.engine.exchange import Exchange
from bybit_sim.engine.params import Params
from bybit_sim.state import STATE

log = logging.getLogger(__name__)

Endpoint = Callable[[Exchange, Params], "dict[str, Any] | Reply"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Reply:
    """A result with a non-empty `retExtInfo` (batch endpoints put per-item codes there)."""

    result: dict[str, Any]
    ext_info: dict[str, Any]


# Key under which a batch endpoint finds how many of its orders the rate limit granted.
QUOTA_PARAM = "__sim_quota__"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def envelope(
    result: dict[str, Any] | Reply | None,
    ret_code: int = 0,
    ret_msg: str = "OK",
    headers: dict[str, str] | None = None,
) -> web.Response:
    t = now_ms()
    ext: dict[str, Any] = {}
    payload: dict[str, Any] = {}
    if isinstance(result, Reply):
        payload, ext = result.result, result.ext_info
    elif result is not None:
        payload = result
    body = {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": payload,
        "retExtInfo": ext,
        "time": t,
    }
    hdrs = {"Timenow": str(t)}
    if headers:
        hdrs.update(headers)
    return web.Response(body=_dumps(body).encode(), content_type="application/json", headers=hdrs)


def error(err: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return envelope(None, err.ret_code, err.ret_msg, headers)


def _call(endpoint: Endpoint, exchange: Exchange, params: Params) -> tuple[Any, ApiError | None]:
    try:
        return endpoint(exchange, params), None
    except ApiError as exc:
        return None, exc


def public(endpoint: Endpoint) -> Handler:
    """A market-data endpoint: no auth, parameters from the query string."""

    async def handler(request: web.Request) -> web.StreamResponse:
        exchange = request.app[STATE].exchange
        result, err = _call(endpoint, exchange, request.query)
        return error(err) if err else envelope(result)

    return handler


def _parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(10001, "params error: request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(10001, "params error: request body must be a JSON object")
    return data


def private(endpoint: Endpoint, path: str) -> Handler:
    """A signed endpoint: auth (10003/10002/10004), rate limit (10006), then the call."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        is_post = request.method == "POST"
        if is_post:
            raw = await request.read()
            tail = raw.decode("utf-8", errors="replace")
        else:
            raw = b""
            tail = request.rel_url.raw_query_string
        now = now_ms()
        cfg = state.config
        try:
            key = authenticate(
                request.headers,
                state.api_keys,
                tail,
                now,
                cfg.default_recv_window_ms,
                cfg.future_tolerance_ms,
            )
            params: Params = _parse_body(raw) if is_post else request.query
        except ApiError as exc:
            return error(exc)
        category = params.get("category")
        units = 1
        if path in BATCH_ENDPOINTS:
            items = params.get("request")
            units = max(len(items), 1) if isinstance(items, list) else 1
        verdict = state.rate_limiter.check(
            key, path, category if isinstance(category, str) else "", now, units
        )
        headers = verdict.headers()
        if not verdict.allowed:
            return envelope(None, 10006, "Too many visits!", headers)
        if path in BATCH_ENDPOINTS:
            params = {**params, QUOTA_PARAM: verdict.granted}
        result, err = _call(endpoint, state.exchange, params)
        return error(err, headers) if err else envelope(result, headers=headers)

    return handler


Route = tuple[str, str, Endpoint, bool]


def register(app: web.Application, routes: list[Route]) -> None:
    """Add `(method, path, endpoint, is_private)` routes to the application."""
    for method, path, endpoint, is_private in routes:
        handler = private(endpoint, path) if is_private else public(endpoint)
        app.router.add_route(method, path, handler)
