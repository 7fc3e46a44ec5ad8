"""Admin API under ``/sim/``: drive the simulated market and inject faults (loopback only).

Everything a test or a failure drill needs that a real exchange would not offer: dump and reset
the state, set/step/freeze prices, force (partial) fills, trade as an "outside user" on the same
account, move balance in and out, manage fault rules and drop private WebSockets on demand.

JSON in, JSON out; Decimals travel as strings. No authentication, but only loopback peers
(``127.0.0.1``/``::1``) are served - anyone else gets HTTP 403. Errors are HTTP 400 with
``{"error": "<what is wrong>"}`` (plus ``retCode`` when the engine refused with a Bybit code), 404
for an unknown fault rule.

The routes live in a sub-application mounted at ``/sim/`` so the loopback check is a middleware
of their own and never touches the exchange routes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aiohttp import web

from bybit_sim import ws_private, ws_public
from bybit_sim.engine.errors import ApiError
from bybit_sim.faults import FaultSpecError
from bybit_sim.state import STATE, SimState
from bybit_sim.ws_stream import StreamConnection

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX: Final = "/sim"


class AdminInputError(ValueError):
    """The admin request is malformed; the message names the field."""


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(payload: Any, status: int = 200) -> web.Response:
    """JSON with Decimals as strings."""
    return web.json_response(
        payload, status=status, dumps=lambda obj: json.dumps(obj, default=_default)
    )


def _error(message: str, status: int = 400, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


def _is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@web.middleware
async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for any peer that is not loopback; maps input/engine errors to 400."""
    if not _is_loopback(request.remote):
        return _error(f"admin API is loopback-only; peer {request.remote} refused", status=403)
    try:
        return await handler(request)
    except AdminInputError as exc:
        return _error(str(exc))
    except FaultSpecError as exc:
        return _error(f"bad fault rule: {exc}")
    except ApiError as exc:
        return _error(exc.ret_msg, retCode=exc.ret_code)


# -- input helpers ---------------------------------------------------------------------------


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise AdminInputError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AdminInputError("body must be a JSON object")
    return data


def _str(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise AdminInputError(f"{name!r} is required and must be a non-empty string")
    return value


def _decimal(body: Mapping[str, Any], name: str, *, required: bool = True) -> Decimal | None:
    value = body.get(name)
    if value is None:
        if required:
            raise AdminInputError(f"{name!r} is required (a decimal string)")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AdminInputError(f"{name!r} must be a decimal string, got {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise AdminInputError(f"{name!r} is not a decimal: {value!r}") from exc
    if not result.is_finite():
        raise AdminInputError(f"{name!r} must be finite, got {value!r}")
    return result


def _positive(body: Mapping[str, Any], name: str) -> Decimal:
    value = _decimal(body, name)
    assert value is not None
    if value <= 0:
        raise AdminInputError(f"{name!r} must be positive, got {body.get(name)!r}")
    return value


def _state(request: web.Request) -> SimState:
    return request.config_dict[STATE]


# -- handlers ----------------------------------------------------------------------------------


async def get_state(request: web.Request) -> web.Response:
    state = _state(request)
    dump = state.exchange.dump()
    return json_response(
        {
            **dump,
            "faults": [r.to_json() for r in state.faults.rules],
            "ws": {
                "private": _connections(request.config_dict[ws_private.HUB].connections),
                "public": _connections(request.config_dict[ws_public.HUB].registry.connections),
            },
        }
    )


def _connections(conns: Iterable[StreamConnection]) -> list[dict[str, Any]]:
    return [
        {
            "connId": c.conn_id,
            "apiKey": getattr(c, "api_key", None),
            "topics": sorted(c.topics),
            "sent": c.sent,
        }
        for c in conns
        if not c.closing
    ]


async def post_reset(request: web.Request) -> web.Response:
    state = _state(request)
    state.exchange.reset()
    state.faults.reset()
    state.rate_limiter.reset()
    return json_response({"reset": True})


async def post_price(request: web.Request) -> web.Response:
    body = await _body(request)
    category, symbol = _str(body, "category"), _str(body, "symbol")
    price = _positive(body, "price")
    _state(request).exchange.set_price(category, symbol, price)
    return json_response(_state(request).exchange.ticker(category, symbol))


async def post_price_step(request: web.Request) -> web.Response:
    body = await _body(request)
    category, symbol = _str(body, "category"), _str(body, "symbol")
    steps = body.get("steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise AdminInputError(f"'steps' must be a positive integer, got {steps!r}")
    _state(request).exchange.step_price(category, symbol, steps)
    return json_response(_state(request).exchange.ticker(category, symbol))


async def post_price_freeze(request: web.Request) -> web.Response:
    body = await _body(request)
    category, symbol = _str(body, "category"), _str(body, "symbol")
    frozen = body.get("frozen", True)
    if not isinstance(frozen, bool):
        raise AdminInputError(f"'frozen' must be true or false, got {frozen!r}")
    _state(request).exchange.freeze_price(category, symbol, frozen)
    return json_response({"category": category, "symbol": symbol, "frozen": frozen})


async def post_fill(request: web.Request) -> web.Response:
    body = await _body(request)
    order_id = _str(body, "orderId")
    qty = _decimal(body, "qty", required=False)
    if qty is not None and qty <= 0:
        raise AdminInputError(f"'qty' must be positive, got {body.get('qty')!r}")
    return json_response(_state(request).exchange.force_fill(order_id, qty))


async def post_external_order(request: web.Request) -> web.Response:
    body = await _body(request)
    result = _state(request).exchange.place_external_order(**body)
    return json_response(result)


async def post_deposit(request: web.Request) -> web.Response:
    body = await _body(request)
    coin, amount = _str(body, "coin"), _positive(body, "amount")
    _state(request).exchange.deposit(coin, amount)
    return json_response({"coin": coin, "amount": amount})


async def post_withdraw(request: web.Request) -> web.Response:
    body = await _body(request)
    coin, amount = _str(body, "coin"), _positive(body, "amount")
    _state(request).exchange.withdraw(coin, amount)
    return json_response({"coin": coin, "amount": amount})


async def post_fault(request: web.Request) -> web.Response:
    body = await _body(request)
    rule = _state(request).faults.add(body)
    return json_response({"id": rule.id, "rule": rule.to_json()})


async def get_faults(request: web.Request) -> web.Response:
    return json_response({"rules": [r.to_json() for r in _state(request).faults.rules]})


async def delete_faults(request: web.Request) -> web.Response:
    faults = _state(request).faults
    removed = len(faults.rules)
    faults.clear()
    return json_response({"removed": removed})


async def delete_fault(request: web.Request) -> web.Response:
    rule_id = request.match_info["rule_id"]
    if not _state(request).faults.remove(rule_id):
        return _error(f"no fault rule {rule_id!r}", status=404)
    return json_response({"removed": 1, "id": rule_id})


async def post_ws_drop(request: web.Request) -> web.Response:
    body = await _body(request)
    stream = body.get("stream", "private")
    if stream not in ("private", "public", "all"):
        raise AdminInputError(f"'stream' must be private, public or all, got {stream!r}")
    mode = body.get("mode", "close")
    if mode not in ("close", "abort"):
        raise AdminInputError(f"'mode' must be close or abort, got {mode!r}")
    abort = mode == "abort"
    dropped = 0
    if stream in ("private", "all"):
        dropped += request.config_dict[ws_private.HUB].drop_all(abort)
    if stream in ("public", "all"):
        dropped += request.config_dict[ws_public.HUB].registry.drop_all(abort)
    return json_response({"dropped": dropped})


async def _seed_faults(app: web.Application) -> None:
    """Fault probabilities draw from the simulator's seed, so a seeded run faults the same
    requests every time (``/sim/reset`` reseeds the same way)."""
    state = app[STATE]
    state.faults.reset(seed=state.config.seed)


def setup(app: web.Application) -> None:
    """Mount the admin sub-application at ``/sim/`` and seed the fault RNG at startup."""
    app.on_startup.append(_seed_faults)
    admin = web.Application(middlewares=[loopback_only])
    admin.router.add_get("/state", get_state)
    admin.router.add_post("/reset", post_reset)
    admin.router.add_post("/price", post_price)
    admin.router.add_post("/price/step", post_price_step)
    admin.router.add_post("/price/freeze", post_price_freeze)
    admin.router.add_post("/fill", post_fill)
    admin.router.add_post("/external-order", post_external_order)
    admin.router.add_post("/deposit", post_deposit)
    admin.router.add_post("/withdraw", post_withdraw)
    admin.router.add_post("/faults", post_fault)
    admin.router.add_get("/faults", get_faults)
    admin.router.add_delete("/faults", delete_faults)
    admin.router.add_delete("/faults/{rule_id}", delete_fault)
    admin.router.add_post("/ws/drop", post_ws_drop)
    app.add_subapp(PREFIX + "/", admin)
