"""Public WebSocket streams ``/v5/public/linear`` and ``/v5/public/spot``.

Topics: ``tickers.{symbol}`` and ``orderbook.{depth}.{symbol}``. No auth. Bybit's message shapes:

* order book: ``{"topic", "type": "snapshot"|"delta", "ts", "data": {"s", "b", "a", "u", "seq"},
  "cts"}``. A subscriber first gets a snapshot, then deltas that list only changed levels (size
  ``"0"`` = level removed). ``u`` is a per-topic update id that grows by one per message, ``seq``
  the engine's book sequence.
* tickers: linear sends a snapshot then deltas holding only the changed fields (plus ``symbol``);
  spot always sends snapshots. Envelope ``{"topic", "type", "data", "cs", "ts"}``.

:class:`PublicHub` keeps, per subscribed topic, the last state it published. The engine's market
listener (price or book change) recomputes each subscribed topic of that symbol, diffs it with the
cache and publishes one serialised delta to every subscriber; a new subscriber gets a snapshot of
the cache after it is brought up to date, so snapshot + deltas always add up.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from aiohttp import WSMsgType, web

from bybit_sim.engine.exchange import Exchange
from bybit_sim.state import STATE, SimState
from bybit_sim.ws_stream import ConnectionRegistry, StreamConnection, dumps

CATEGORIES: Final = ("linear", "spot")
DEPTHS: Final[dict[str, frozenset[int]]] = {
    "linear": frozenset({1, 50, 200, 500, 1000}),
    "spot": frozenset({1, 50, 200, 1000}),
}

TopicKey = tuple[str, str]  # (category, topic)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_topic(category: str, topic: str) -> tuple[str, str, int] | None:
    """``(kind, symbol, depth)`` for a valid topic of ``category`` (depth 0 for tickers)."""
    parts = topic.split(".")
    if len(parts) == 2 and parts[0] == "tickers" and parts[1]:
        return "tickers", parts[1], 0
    if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit() and parts[2]:
        depth = int(parts[1])
        if depth in DEPTHS[category]:
            return "orderbook", parts[2], depth
    return None


def _levels(raw: Iterable[Sequence[Any]]) -> dict[str, str]:
    return {str(price): str(size) for price, size in raw}


@dataclass
class TopicState:
    """What was last published on one topic, and who listens."""

    category: str
    kind: str
    symbol: str
    depth: int
    subscribers: set[StreamConnection] = field(default_factory=set)
    u: int = 0
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    seq: int = 0
    ts: int = 0
    ticker: dict[str, Any] = field(default_factory=dict)


class PublicHub:
    """All public connections and per-topic caches of one simulator."""

    def __init__(self) -> None:
        self.registry = ConnectionRegistry()
        self.topics: dict[TopicKey, TopicState] = {}
        self._cs = itertools.count(1)
        self.state: SimState | None = None

    def _exchange(self) -> Exchange:
        if self.state is None:
            raise RuntimeError("public hub used before the application started")
        return self.state.exchange

    def known_symbol(self, category: str, symbol: str) -> bool:
        if self.state is None:
            return False
        return any(
            i.category == category and i.symbol == symbol for i in self.state.config.instruments
        )

    # -- engine listener -------------------------------------------------------------------

    def on_market(self, category: str, symbol: str) -> None:
        """Engine listener: the price or book of ``category``/``symbol`` changed."""
        for topic_state in list(self.topics.values()):
            if (
                topic_state.subscribers
                and topic_state.category == category
                and topic_state.symbol == symbol
            ):
                self._refresh(topic_state)

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(self, conn: StreamConnection, category: str, topic: str) -> None:
        parsed = parse_topic(category, topic)
        if parsed is None:
            raise ValueError(f"bad topic {topic}")
        kind, symbol, depth = parsed
        key = (category, topic)
        ts = self.topics.get(key)
        if ts is None:
            ts = TopicState(category, kind, symbol, depth)
            self.topics[key] = ts
        if ts.subscribers:
            self._refresh(ts)  # bring existing subscribers up to date first
        else:
            self._load(ts)
        ts.subscribers.add(conn)
        conn.publish(topic, self._snapshot(topic, ts))

    def unsubscribe(self, conn: StreamConnection, category: str, topic: str) -> None:
        ts = self.topics.get((category, topic))
        if ts is not None:
            ts.subscribers.discard(conn)

    def forget(self, conn: StreamConnection) -> None:
        for ts in self.topics.values():
            ts.subscribers.discard(conn)

    # -- rendering ---------------------------------------------------------------------------

    def _load(self, ts: TopicState) -> None:
        """Fill the cache from the engine without publishing (no subscribers yet)."""
        exchange = self._exchange()
        if ts.kind == "tickers":
            ts.ticker = dict(exchange.ticker(ts.category, ts.symbol))
        else:
            book = exchange.orderbook(ts.category, ts.symbol, ts.depth)
            ts.bids, ts.asks = _levels(book["b"]), _levels(book["a"])
            ts.seq, ts.ts = int(book.get("seq", 0)), int(book.get("ts", _now_ms()))
        ts.u += 1

    def _refresh(self, ts: TopicState) -> None:
        """Recompute one topic, publish the delta (if anything changed) to its subscribers."""
        exchange = self._exchange()
        topic = ts_topic(ts)
        if ts.kind == "tickers":
            ticker = dict(exchange.ticker(ts.category, ts.symbol))
            if ts.category == "spot":
                changed = ticker != ts.ticker
                ts.ticker = ticker
                text = self._snapshot(topic, ts) if changed else None
            else:
                diff = {k: v for k, v in ticker.items() if ts.ticker.get(k) != v}
                ts.ticker = ticker
                text = None
                if diff:
                    data = {"symbol": ts.symbol, **diff}
                    text = dumps(
                        {
                            "topic": topic,
                            "type": "delta",
                            "data": data,
                            "cs": next(self._cs),
                            "ts": _now_ms(),
                        }
                    )
        else:
            book = exchange.orderbook(ts.category, ts.symbol, ts.depth)
            bids, asks = _levels(book["b"]), _levels(book["a"])
            b_delta = _diff(ts.bids, bids, reverse=True)
            a_delta = _diff(ts.asks, asks, reverse=False)
            ts.bids, ts.asks = bids, asks
            ts.seq, ts.ts = int(book.get("seq", ts.seq)), int(book.get("ts", _now_ms()))
            text = None
            if b_delta or a_delta:
                ts.u += 1
                text = dumps(
                    {
                        "topic": topic,
                        "type": "delta",
                        "ts": _now_ms(),
                        "data": {
                            "s": ts.symbol,
                            "b": b_delta,
                            "a": a_delta,
                            "u": ts.u,
                            "seq": ts.seq,
                        },
                        "cts": ts.ts,
                    }
                )
        if text is not None:
            for conn in list(ts.subscribers):
                conn.publish(topic, text)

    def _snapshot(self, topic: str, ts: TopicState) -> str:
        if ts.kind == "tickers":
            return dumps(
                {
                    "topic": topic,
                    "type": "snapshot",
                    "data": ts.ticker,
                    "cs": next(self._cs),
                    "ts": _now_ms(),
                }
            )
        bids = sorted(ts.bids.items(), key=lambda kv: _num(kv[0]), reverse=True)
        asks = sorted(ts.asks.items(), key=lambda kv: _num(kv[0]))
        return dumps(
            {
                "topic": topic,
                "type": "snapshot",
                "ts": _now_ms(),
                "data": {
                    "s": ts.symbol,
                    "b": [list(level) for level in bids],
                    "a": [list(level) for level in asks],
                    "u": ts.u,
                    "seq": ts.seq,
                },
                "cts": ts.ts,
            }
        )


def ts_topic(ts: TopicState) -> str:
    if ts.kind == "tickers":
        return f"tickers.{ts.symbol}"
    return f"orderbook.{ts.depth}.{ts.symbol}"


def _num(price: str) -> Decimal:
    return Decimal(price)


def _diff(old: dict[str, str], new: dict[str, str], *, reverse: bool) -> list[list[str]]:
    """Changed levels between two books of one side; removed levels get size "0"."""
    changes = {p: s for p, s in new.items() if old.get(p) != s}
    changes.update({p: "0" for p in old if p not in new})
    return [[p, changes[p]] for p in sorted(changes, key=_num, reverse=reverse)]


HUB: Final = web.AppKey("ws_public_hub", PublicHub)


def _reply(conn: StreamConnection, op: str, req_id: Any, success: bool, ret_msg: str) -> None:
    payload: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id}
    if req_id is not None:
        payload["req_id"] = req_id
    payload["op"] = op
    conn.send_control(payload)


def handle_text(conn: StreamConnection, hub: PublicHub, category: str, text: str) -> None:
    """Dispatch one client request on a public stream."""
    try:
        request = json.loads(text)
    except ValueError:
        _reply(conn, "", None, False, "Params Error")
        return
    if not isinstance(request, Mapping):
        _reply(conn, "", None, False, "Params Error")
        return
    op = request.get("op")
    req_id = request.get("req_id")
    args = request.get("args")
    if op == "ping":
        _reply(conn, "ping", req_id, True, "pong")
        return
    if op not in ("subscribe", "unsubscribe"):
        _reply(conn, str(op or ""), req_id, False, f"error:unknown op,op:{op}")
        return
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        _reply(conn, str(op), req_id, False, "Params Error")
        return
    for topic in args:
        parsed = parse_topic(category, topic)
        if parsed is None:
            _reply(conn, str(op), req_id, False, f"error:handler not found,topic:{topic}")
            return
        if not hub.known_symbol(category, parsed[1]):
            _reply(conn, str(op), req_id, False, f"Invalid symbol :[{topic}]")
            return
        if op == "subscribe" and topic in conn.topics:
            _reply(conn, str(op), req_id, False, f"error:already subscribed,topic:{topic}")
            return
    if op == "subscribe":
        # ack first, then the snapshots (the queue keeps this order)
        _reply(conn, "subscribe", req_id, True, "subscribe")
        for topic in args:
            conn.topics.add(topic)
            hub.subscribe(conn, category, topic)
    else:
        for topic in args:
            conn.topics.discard(topic)
            hub.unsubscribe(conn, category, topic)
        _reply(conn, "unsubscribe", req_id, True, "")


def _stream_handler(category: str) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    async def public_stream(request: web.Request) -> web.WebSocketResponse:
        hub = request.app[HUB]
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        conn = StreamConnection(ws, request.app[STATE].faults, "ws_public", request.transport)
        hub.registry.add(conn)
        latency = request.app[STATE].config.ws_request_latency_ms / 1000
        try:
            async for msg in ws:
                if latency:
                    await asyncio.sleep(latency)  # modelled network latency (SimConfig)
                if msg.type == WSMsgType.TEXT:
                    handle_text(conn, hub, category, msg.data)
        finally:
            hub.registry.discard(conn)
            hub.forget(conn)
            await conn.aclose()
        return ws

    return public_stream


def setup(app: web.Application) -> None:
    """Register the public streams and hook the hub to the engine's market listener."""
    hub = PublicHub()
    app[HUB] = hub

    async def on_startup(app: web.Application) -> None:
        hub.state = app[STATE]
        hub.state.exchange.add_market_listener(hub.on_market)

    async def on_shutdown(app: web.Application) -> None:
        hub.registry.drop_all()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    for category in CATEGORIES:
        app.router.add_get(f"/v5/public/{category}", _stream_handler(category))
