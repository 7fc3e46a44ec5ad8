"""Fault injection for the simulator: REST failures and WebSocket stream damage on demand.

A *rule* says where a fault applies (``target`` plus an endpoint or topic glob), what it does
(``kind`` plus ``params``) and how often (``count`` applications, and/or a per-event
``probability`` drawn from a seeded RNG so runs are reproducible). Rules live in one
:class:`FaultInjector` per simulator (``SimState.faults``) and are managed through the admin API
(``/sim/faults``).

* REST rules are applied by :func:`rest_fault_middleware`, the outermost middleware, so a fault
  happens before authentication, rate limiting and the engine - exactly like a failing gateway
  in front of the real exchange. ``timeout_after_execute`` is the exception on purpose: it runs
  the real handler (the order is created) and then never answers.
* WebSocket rules are consulted by the per-connection writer (:mod:`bybit_sim.ws_stream`, used
  by the private and public streams) for every outgoing *data* message (never for acks or
  pongs) via :meth:`FaultInjector.pick`; the writer then acts on the returned rule.

Rules are checked in insertion order; the first rule that matches and fires wins, so at most one
fault applies to one request or message.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TARGETS: Final = ("rest", "ws_private", "ws_public")

REST_KINDS: Final[dict[str, dict[str, Any]]] = {
    # kind -> allowed params with their defaults (a value of None means "required")
    "http_status": {"status": 500, "body": ""},
    "delay": {"ms": None},
    "timeout_after_execute": {"mode": "hold", "hold_ms": 30_000},
    "ret_code": {"retCode": None, "retMsg": ""},
    "rate_limit": {"reset_ms": 1_000, "limit": 10},
}
WS_KINDS: Final[dict[str, dict[str, Any]]] = {
    "drop": {"after_messages": 0, "mode": "close"},
    "delay": {"ms": None},
    "duplicate": {},
    "reorder": {"hold_ms": 1_000, "scope": "messages"},
    "pause": {},
}
HTTP_FAULT_STATUSES: Final = (403, 429, 500, 502, 503, 504)
TIMEOUT_MODES: Final = ("hold", "close")
DROP_MODES: Final = ("close", "abort")
REORDER_SCOPES: Final = ("messages", "items")

_GATEWAY_BODIES: Final[dict[int, str]] = {
    # 403: Bybit's IP limit ("access too frequent", ban of >= 10 min) and GET-with-body refusals.
    403: "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
    "<center><h1>403 Forbidden</h1></center>\r\n</body>\r\n</html>\r\n",
    # 429: system-level frequency protection ("retry when you get this").
    429: "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    "<center><h1>429 Too Many Requests</h1></center>\r\n</body>\r\n</html>\r\n",
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
    503: "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n",
    504: "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n</body>\r\n</html>\r\n",
}


class FaultSpecError(ValueError):
    """A fault rule specification is invalid; the message says exactly which field and why."""


@dataclass
class FaultRule:
    """One fault rule and its bookkeeping (how many times it fired)."""

    id: str
    target: str
    match: str
    kind: str
    params: dict[str, Any]
    count: int | None = None
    probability: float | None = None
    applied: int = 0
    seen: int = 0  # matching events let through before firing (``drop.after_messages``)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.applied >= self.count

    def matches(self, target: str, key: str) -> bool:
        return target == self.target and fnmatch.fnmatchcase(key, self.match)

    def to_json(self) -> dict[str, Any]:
        where = "endpoint" if self.target == "rest" else "topic"
        return {
            "id": self.id,
            "target": self.target,
            where: self.match,
            "kind": self.kind,
            "count": self.count,
            "probability": self.probability,
            "params": dict(self.params),
            "applied": self.applied,
            "exhausted": self.exhausted,
        }


@dataclass
class FaultInjector:
    """The simulator's fault rules. Deterministic: probabilities use ``random.Random(seed)``."""

    seed: int = 0
    _rules: list[FaultRule] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _rng: random.Random = field(init=False)
    _released: asyncio.Event | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- rule management -------------------------------------------------------------------

    def add(self, spec: Mapping[str, Any]) -> FaultRule:
        """Validate ``spec`` and append it as a new rule; raises :class:`FaultSpecError`."""
        rule = parse_rule(spec, f"f{next(self._ids)}")
        self._rules.append(rule)
        return rule

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def get(self, rule_id: str) -> FaultRule | None:
        return next((r for r in self._rules if r.id == rule_id), None)

    def remove(self, rule_id: str) -> bool:
        """Delete one rule (e.g. to resume a paused stream). False if it does not exist."""
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        """Delete all rules and release every response held by ``timeout_after_execute``."""
        self._rules.clear()
        self._release_held()

    def reset(self, seed: int | None = None) -> None:
        """Back to a clean start: no rules, ids from 1, RNG reseeded."""
        self.clear()
        if seed is not None:
            self.seed = seed
        self._ids = itertools.count(1)
        self._rng = random.Random(self.seed)

    # -- matching ---------------------------------------------------------------------------

    def pick(self, target: str, key: str) -> FaultRule | None:
        """The rule that fires for this request path / message topic, or None.

        Firing consumes one application of the rule's ``count``. A ``drop`` rule with
        ``after_messages = N`` lets N matching messages through before it fires.
        """
        for rule in self._rules:
            if rule.exhausted or not rule.matches(target, key):
                continue
            if rule.kind == "drop" and rule.seen < int(rule.params["after_messages"]):
                rule.seen += 1
                continue
            if rule.probability is not None and self._rng.random() >= rule.probability:
                continue
            rule.applied += 1
            return rule
        return None

    def is_paused(self, target: str, key: str) -> bool:
        """True while an active ``pause`` rule matches (without consuming an application)."""
        return any(
            r.kind == "pause" and not r.exhausted and r.matches(target, key) for r in self._rules
        )

    # -- held responses ---------------------------------------------------------------------

    def released(self) -> asyncio.Event:
        """Set when all rules are cleared, so held and delayed requests stop waiting."""
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    def _release_held(self) -> None:
        if self._released is not None:
            self._released.set()
            self._released = None


def parse_rule(spec: Mapping[str, Any], rule_id: str) -> FaultRule:
    """Build a :class:`FaultRule` from its JSON form, rejecting anything unknown or malformed."""
    if not isinstance(spec, Mapping):
        raise FaultSpecError("a fault rule must be a JSON object")
    known = {"target", "endpoint", "topic", "kind", "count", "probability", "params"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FaultSpecError(f"unknown field(s) {unknown}; allowed: {sorted(known)}")
    target = spec.get("target")
    if target not in TARGETS:
        raise FaultSpecError(f"target must be one of {list(TARGETS)}, got {target!r}")
    kinds = REST_KINDS if target == "rest" else WS_KINDS
    where = "endpoint" if target == "rest" else "topic"
    other = "topic" if target == "rest" else "endpoint"
    if other in spec:
        raise FaultSpecError(f"target {target!r} takes {where!r}, not {other!r}")
    match = spec.get(where, "*")
    if not isinstance(match, str) or not match:
        raise FaultSpecError(f"{where} must be a non-empty string (a path/topic or glob)")
    kind = spec.get("kind")
    if kind not in kinds:
        raise FaultSpecError(
            f"kind for target {target!r} must be one of {list(kinds)}, got {kind!r}"
        )
    count = spec.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultSpecError(f"count must be a positive integer, got {count!r}")
    probability = spec.get("probability")
    if probability is not None:
        if isinstance(probability, bool) or not isinstance(probability, int | float):
            raise FaultSpecError(f"probability must be a number in (0, 1], got {probability!r}")
        probability = float(probability)
        if not 0.0 < probability <= 1.0:
            raise FaultSpecError(f"probability must be in (0, 1], got {probability!r}")
    params = _parse_params(str(kind), kinds[str(kind)], spec.get("params") or {})
    return FaultRule(
        id=rule_id,
        target=str(target),
        match=match,
        kind=str(kind),
        params=params,
        count=count,
        probability=probability,
    )


def _parse_params(kind: str, allowed: dict[str, Any], raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise FaultSpecError("params must be a JSON object")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise FaultSpecError(
            f"unknown param(s) {unknown} for kind {kind!r}; allowed: {sorted(allowed)}"
        )
    params: dict[str, Any] = {}
    for name, default in allowed.items():
        if name not in raw:
            if default is None:
                raise FaultSpecError(f"kind {kind!r} requires param {name!r}")
            params[name] = default
            continue
        value = raw[name]
        if isinstance(default, str) or name in ("retMsg", "body", "mode", "scope"):
            if not isinstance(value, str):
                raise FaultSpecError(f"param {name!r} must be a string, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FaultSpecError(f"param {name!r} must be a non-negative integer, got {value!r}")
        params[name] = value
    if kind == "http_status" and params["status"] not in HTTP_FAULT_STATUSES:
        raise FaultSpecError(f"param 'status' must be one of {list(HTTP_FAULT_STATUSES)}")
    if kind == "timeout_after_execute" and params["mode"] not in TIMEOUT_MODES:
        raise FaultSpecError(f"param 'mode' must be one of {list(TIMEOUT_MODES)}")
    if kind == "reorder" and params["scope"] not in REORDER_SCOPES:
        raise FaultSpecError(f"param 'scope' must be one of {list(REORDER_SCOPES)}")
    if kind == "drop" and params["mode"] not in DROP_MODES:
        raise FaultSpecError(f"param 'mode' must be one of {list(DROP_MODES)}")
    if kind == "ret_code" and params["retCode"] == 0:
        raise FaultSpecError("param 'retCode' must be non-zero (0 is success)")
    return params


# -- REST ------------------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _envelope(ret_code: int, ret_msg: str) -> dict[str, Any]:
    return {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": {},
        "retExtInfo": {},
        "time": _now_ms(),
    }


def _injector(app: web.Application) -> FaultInjector:
    # Imported here: state.py imports this module for FaultInjector.
    from bybit_sim.state import STATE

    return app[STATE].faults


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


@web.middleware
async def rest_fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Applies the first firing REST fault rule for the request path around the real handler.

    Admin routes (``/sim/``) and WebSocket upgrades are never faulted, so a drill can always be
    stopped with ``DELETE /sim/faults``.
    """
    if request.path.startswith("/sim/") or _is_websocket(request):
        return await handler(request)
    injector = _injector(request.app)
    rule = injector.pick("rest", request.path)
    if rule is None:
        return await handler(request)
    return await apply_rest_fault(rule, injector, request, handler)


async def apply_rest_fault(
    rule: FaultRule, injector: FaultInjector, request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Carry out one REST fault (see the module docstring for the kinds)."""
    p = rule.params
    if rule.kind == "delay":
        # The body is read now: if the client gives up during the delay the request must still
        # reach the engine (aiohttp fails later body reads of a lost connection).
        await request.read()
        # Clearing the rules cuts a pending delay short (drills end, servers stop promptly).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(injector.released().wait(), int(p["ms"]) / 1000)
        return await handler(request)
    if rule.kind == "http_status":
        status = int(p["status"])
        if p["body"]:
            return web.Response(status=status, text=str(p["body"]))
        if status == 500:
            return web.json_response(_envelope(10016, "Internal server error."), status=500)
        return web.Response(status=status, text=_GATEWAY_BODIES[status], content_type="text/html")
    if rule.kind == "ret_code":
        return web.json_response(_envelope(int(p["retCode"]), str(p["retMsg"])))
    if rule.kind == "rate_limit":
        reset = _now_ms() + int(p["reset_ms"])
        headers = {
            "X-Bapi-Limit": str(p["limit"]),
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }
        return web.json_response(_envelope(10006, "Too many visits!"), headers=headers)
    # timeout_after_execute: the request takes full effect, the answer never arrives.
    await handler(request)
    if p["mode"] == "hold":
        await _hold_until_client_leaves(request, int(p["hold_ms"]) / 1000, injector.released())
    if request.transport is not None:
        request.transport.close()
    # The connection is closed: aiohttp cannot send this, the client sees a dropped request.
    raise web.HTTPServiceUnavailable(text="fault: timeout_after_execute")


async def _hold_until_client_leaves(
    request: web.Request, limit_s: float, released: asyncio.Event
) -> None:
    """Wait until the client disconnects, the rule is cleared, or ``limit_s`` passes.

    aiohttp does not cancel handlers on disconnect, so the transport is polled (every 20 ms).
    """
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline and not released.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.02)
