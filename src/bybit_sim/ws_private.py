"""Private WebSocket stream ``/v5/private``: auth, subscriptions, order/execution/position/wallet.

Protocol (reference §5): the client authenticates with
``{"op":"auth","args":[api_key, expires_ms, hex(HMAC_SHA256(secret, "GET/realtime" + expires))]}``,
subscribes to ``order``, ``execution``, ``execution.fast``, ``position``, ``wallet`` or their
categorised variants (``order.linear``, ``execution.spot``, ...) and pings with
``{"op":"ping"}``. Data messages are ``{"id", "topic", "creationTime", "data": [...]}``; there is no
snapshot on subscribe and no replay - exactly like Bybit, events missed while disconnected must
be reconciled over REST.

Fan-out: :class:`PrivateHub` registers one listener on the engine. For each change it serialises
one message per distinct subscribed topic and hands it to every authenticated connection
subscribed to that topic (:class:`bybit_sim.ws_stream.StreamConnection` queues it and a writer
task sends it), so the engine never waits for a socket.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Mapping
from hashlib import sha256
from typing import Any, Final

from aiohttp import WSMsgType, web

from bybit_sim.faults import FaultInjector
from bybit_sim.state import STATE, SimState
from bybit_sim.ws_stream import ConnectionRegistry, StreamConnection, dumps

log = logging.getLogger(__name__)

PATH: Final = "/v5/private"
BASE_TOPICS: Final = ("order", "execution", "execution.fast", "position", "wallet")
CATEGORIES: Final[dict[str, tuple[str, ...]]] = {
    "order": ("spot", "linear", "inverse", "option"),
    "execution": ("spot", "linear", "inverse", "option"),
    "execution.fast": ("spot", "linear", "inverse", "option"),
    "position": ("linear", "inverse", "option"),
    "wallet": (),
}
MAX_ITEMS_PER_MESSAGE: Final = 100
FAST_EXECUTION_FIELDS: Final = (
    "category",
    "symbol",
    "orderId",
    "isMaker",
    "orderLinkId",
    "execId",
    "execPrice",
    "execQty",
    "side",
    "execTime",
    "seq",
)

# Replies for failures. Bybit does not document the texts; "Params Error" is what it is observed
# to send for malformed or expired auth, the rest are this simulator's choices (docs/bybit_sim.md).
MSG_PARAMS: Final = "Params Error"
MSG_EXPIRED: Final = "Params Error"
MSG_BAD_KEY: Final = "Invalid apikey"
MSG_BAD_SIGN: Final = "Invalid sign"
MSG_REPEAT_AUTH: Final = "Repeat auth"
MSG_NOT_AUTHED: Final = "Request not authorized"


def parse_topic(topic: str) -> tuple[str, str | None] | None:
    """Split a private topic into (base topic, category or None); None if unknown."""
    if topic in BASE_TOPICS:
        return topic, None
    base, _, category = topic.rpartition(".")
    if base in CATEGORIES and category in CATEGORIES[base]:
        return base, category
    return None


def realtime_signature(secret: str, expires: int) -> str:
    """hex(HMAC_SHA256(secret, "GET/realtime" + expires)) - what a client must send."""
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), sha256).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PrivateConnection(StreamConnection):
    """A private stream client: plus the API key it authenticated with."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        faults: FaultInjector,
        transport: asyncio.Transport | None = None,
    ) -> None:
        super().__init__(ws, faults, "ws_private", transport)
        self.api_key: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.api_key is not None


class PrivateHub:
    """All private connections of one simulator plus the engine listener that feeds them."""

    def __init__(self) -> None:
        self.registry = ConnectionRegistry()

    @property
    def connections(self) -> set[StreamConnection]:
        return self.registry.connections

    def drop_all(self, abort: bool = False) -> int:
        """Close every private connection now (admin ``POST /sim/ws/drop``)."""
        return self.registry.drop_all(abort)

    def on_private(self, topic: str, items: list[dict[str, Any]]) -> None:
        """Engine listener: one change of ``topic`` (order/execution/position/wallet)."""
        if not items or not self.registry.connections:
            return
        rendered: dict[str, list[str]] = {}
        for conn in self.registry.connections:
            if not isinstance(conn, PrivateConnection) or not conn.authenticated or conn.closing:
                continue
            for sub in conn.topics:
                if sub not in rendered:
                    rendered[sub] = self._render(sub, topic, items)
                for text in rendered[sub]:
                    conn.publish(sub, text)

    @staticmethod
    def _render(sub: str, topic: str, items: list[dict[str, Any]]) -> list[str]:
        """The messages for subscription ``sub`` of this change (none if it carries nothing).

        Large batches (e.g. cancel-all of thousands of orders) are split into messages of at
        most ``MAX_ITEMS_PER_MESSAGE`` items, so no frame exceeds common client size limits.
        """
        parsed = parse_topic(sub)
        if parsed is None:
            return []
        base, category = parsed
        if base == "execution.fast":
            if topic != "execution":
                return []
            selected: list[dict[str, Any]] = [
                {k: item[k] for k in FAST_EXECUTION_FIELDS if k in item}
                for item in items
                if item.get("execType", "Trade") == "Trade"
            ]
        elif base == topic:
            selected = items
        else:
            return []
        if category is not None:
            selected = [item for item in selected if item.get("category") == category]
        now = _now_ms()
        return [
            dumps(
                {
                    "id": str(uuid.uuid4()),
                    "topic": sub,
                    "creationTime": now,
                    "data": selected[start : start + MAX_ITEMS_PER_MESSAGE],
                }
            )
            for start in range(0, len(selected), MAX_ITEMS_PER_MESSAGE)
        ]


HUB: Final = web.AppKey("ws_private_hub", PrivateHub)


def _secret_for(state: SimState, api_key: str) -> str | None:
    return state.config.api_keys.get(api_key)


def _reply(conn: StreamConnection, op: str, req_id: Any, success: bool, ret_msg: str = "") -> None:
    payload: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "op": op}
    if req_id is not None:
        payload["req_id"] = req_id
    payload["conn_id"] = conn.conn_id
    conn.send_control(payload)


def handle_auth(conn: PrivateConnection, state: SimState, req_id: Any, args: Any) -> None:
    """Check ``[api_key, expires_ms, signature]`` exactly as Bybit does and reply."""
    if conn.authenticated:
        _reply(conn, "auth", req_id, False, MSG_REPEAT_AUTH)
        return
    if not isinstance(args, list) or len(args) != 3:
        _reply(conn, "auth", req_id, False, MSG_PARAMS)
        return
    api_key, expires_raw, signature = args
    try:
        expires = int(expires_raw)
    except (TypeError, ValueError):
        _reply(conn, "auth", req_id, False, MSG_PARAMS)
        return
    if (
        not isinstance(api_key, str)
        or not isinstance(signature, str)
        or isinstance(expires_raw, bool)
    ):
        _reply(conn, "auth", req_id, False, MSG_PARAMS)
        return
    if expires <= _now_ms():
        _reply(conn, "auth", req_id, False, MSG_EXPIRED)
        return
    secret = _secret_for(state, api_key)
    if secret is None:
        _reply(conn, "auth", req_id, False, MSG_BAD_KEY)
        return
    if not hmac.compare_digest(realtime_signature(secret, expires), signature.lower()):
        _reply(conn, "auth", req_id, False, MSG_BAD_SIGN)
        return
    conn.api_key = api_key
    _reply(conn, "auth", req_id, True)


def handle_subscribe(conn: PrivateConnection, op: str, req_id: Any, args: Any) -> None:
    """Subscribe/unsubscribe; the whole request fails if any topic is invalid."""
    if not conn.authenticated:
        _reply(conn, op, req_id, False, MSG_NOT_AUTHED)
        return
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        _reply(conn, op, req_id, False, MSG_PARAMS)
        return
    parsed: list[tuple[str, str | None]] = []
    for topic in args:
        p = parse_topic(topic)
        if p is None:
            _reply(conn, op, req_id, False, f"error:handler not found,topic:{topic}")
            return
        parsed.append(p)
    bases_all = {b for b, c in parsed if c is None}
    for base, category in parsed:
        if category is not None and base in bases_all:
            _reply(
                conn,
                op,
                req_id,
                False,
                f"error:all-in-one topic and categorised topic in one request,topic:{base}",
            )
            return
    if op == "subscribe":
        for topic in args:
            if topic in conn.topics:
                _reply(conn, op, req_id, False, f"error:already subscribed,topic:{topic}")
                return
        conn.topics.update(args)
    else:
        for topic in args:
            if topic not in conn.topics:
                _reply(conn, op, req_id, False, f"error:not subscribed,topic:{topic}")
                return
        conn.topics.difference_update(args)
    _reply(conn, op, req_id, True)


def handle_text(conn: PrivateConnection, state: SimState, text: str) -> None:
    """Dispatch one client request."""
    try:
        request = json.loads(text)
    except ValueError:
        _reply(conn, "", None, False, MSG_PARAMS)
        return
    if not isinstance(request, Mapping):
        _reply(conn, "", None, False, MSG_PARAMS)
        return
    op = request.get("op")
    req_id = request.get("req_id")
    args = request.get("args")
    if op == "ping":
        payload: dict[str, Any] = {"op": "pong", "args": [str(_now_ms())]}
        if req_id is not None:
            payload = {"req_id": req_id, **payload}
        payload["conn_id"] = conn.conn_id
        conn.send_control(payload)
    elif op == "auth":
        handle_auth(conn, state, req_id, args)
    elif op in ("subscribe", "unsubscribe"):
        handle_subscribe(conn, str(op), req_id, args)
    else:
        _reply(conn, str(op or ""), req_id, False, f"error:unknown op,op:{op}")


async def private_stream(request: web.Request) -> web.WebSocketResponse:
    """``GET /v5/private`` upgraded to a WebSocket."""
    state = request.app[STATE]
    hub = request.app[HUB]
    ws = web.WebSocketResponse(autoping=True, compress=False)
    await ws.prepare(request)
    conn = PrivateConnection(ws, state.faults, request.transport)
    hub.registry.add(conn)
    latency = state.config.ws_request_latency_ms / 1000
    try:
        async for msg in ws:
            if latency:
                await asyncio.sleep(latency)  # modelled network latency (SimConfig)
            if msg.type == WSMsgType.TEXT:
                handle_text(conn, state, msg.data)
            elif msg.type == WSMsgType.BINARY:
                _reply(conn, "", None, False, MSG_PARAMS)
    finally:
        hub.registry.discard(conn)
        await conn.aclose()
    return ws


def setup(app: web.Application) -> None:
    """Register ``/v5/private`` and hook the hub to the engine's private listener."""
    hub = PrivateHub()
    app[HUB] = hub

    async def on_startup(app: web.Application) -> None:
        app[STATE].exchange.add_private_listener(hub.on_private)

    async def on_shutdown(app: web.Application) -> None:
        hub.drop_all()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get(PATH, private_stream)
