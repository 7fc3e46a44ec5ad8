"""A small real Bybit client for the simulator's stream/fault tests: signed REST + private WS.

Independent of both the simulator's code and the Order Manager's adapter on purpose: it signs
requests exactly as reference §1 describes, so the tests check the wire protocol.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any
from urllib.parse import urlencode

import aiohttp

DEFAULT_TIMEOUT = 5.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), sha256).hexdigest()


@dataclass
class RestReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def ret_code(self) -> int:
        return int(self.body["retCode"])


class SimRest:
    """Signed Bybit V5 REST calls plus the simulator's admin API."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str, secret: str):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.secret = secret

    def _headers(self, payload: str) -> dict[str, str]:
        ts = str(now_ms())
        recv = "5000"
        return {
            "X-BAPI-API-KEY": self.key,
            "X-BAPI-TIMESTAMP": ts,
            "X-BAPI-RECV-WINDOW": recv,
            "X-BAPI-SIGN": sign(self.secret, ts + self.key + recv + payload),
            "X-BAPI-SIGN-TYPE": "2",
            "Content-Type": "application/json",
        }

    async def post(
        self, path: str, body: dict[str, Any], within: float = DEFAULT_TIMEOUT
    ) -> RestReply:
        raw = json.dumps(body, separators=(",", ":"))
        async with self.session.post(
            self.base_url + path,
            data=raw,
            headers=self._headers(raw),
            timeout=aiohttp.ClientTimeout(total=within),
        ) as resp:
            return await _reply(resp)

    async def get(
        self, path: str, params: dict[str, str], within: float = DEFAULT_TIMEOUT
    ) -> RestReply:
        query = urlencode(params)
        async with self.session.get(
            f"{self.base_url}{path}?{query}",
            headers=self._headers(query),
            timeout=aiohttp.ClientTimeout(total=within),
        ) as resp:
            return await _reply(resp)

    async def create_order(self, within: float = DEFAULT_TIMEOUT, **fields: Any) -> RestReply:
        body = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit"}
        body.update({"qty": "0.001", "price": "60000", "timeInForce": "GTC"})
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not None}
        return await self.post("/v5/order/create", body, within=within)

    async def open_orders(self, **params: str) -> list[dict[str, Any]]:
        query = {"category": "linear", **params}
        if "symbol" not in query:
            query["settleCoin"] = "USDT"
        reply = await self.get("/v5/order/realtime", query)
        assert reply.ret_code == 0, reply.body
        return list(reply.body["result"]["list"])

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.base_url}/sim{path}", json=body) as resp:
            payload = await resp.json()
            assert resp.status == 200, (resp.status, payload)
            return payload

    async def add_fault(self, **spec: Any) -> str:
        reply = await self.admin("POST", "/faults", spec)
        return str(reply["id"])


async def _reply(resp: aiohttp.ClientResponse) -> RestReply:
    text = await resp.text()
    try:
        body = json.loads(text)
    except ValueError:
        body = {"raw": text}
    return RestReply(resp.status, body, dict(resp.headers))


class WsClient:
    """A raw WebSocket client that keeps every message it receives, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.close_type: aiohttp.WSMsgType | None = None  # CLOSE = close frame, else reset

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str) -> WsClient:
        return cls(await session.ws_connect(url, autoping=True))

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(payload))

    async def next(self, within: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next message; raises ConnectionError if the server closed the socket."""
        msg = await self.ws.receive(timeout=within)
        if msg.type != aiohttp.WSMsgType.TEXT:
            self.close_type = msg.type
            raise ConnectionError(f"websocket closed: {msg.type!r}")
        data: dict[str, Any] = json.loads(msg.data)
        self.received.append(data)
        return data

    async def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an op and return its reply (skipping data messages in between)."""
        req_id = payload.setdefault("req_id", uuid.uuid4().hex)
        await self.send(payload)
        return await self.wait_for(lambda m: m.get("req_id") == req_id)

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("expected websocket message did not arrive")
            message = await self.next(within=left)
            if predicate(message):
                return message

    async def topic(self, topic: str, within: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return await self.wait_for(lambda m: m.get("topic") == topic, within)

    async def closed(self, within: float = DEFAULT_TIMEOUT) -> bool:
        """Read until the server closes; True if it did before the deadline."""
        try:
            while True:
                await self.next(within=within)
        except ConnectionError:
            return True

    async def close(self) -> None:
        await self.ws.close()


def auth_args(key: str, secret: str, expires: int | None = None) -> list[Any]:
    expires = expires if expires is not None else now_ms() + 10_000
    return [key, expires, sign(secret, f"GET/realtime{expires}")]


async def private_ws(
    session: aiohttp.ClientSession, ws_url: str, key: str, secret: str, topics: list[str]
) -> WsClient:
    """Connected, authenticated and subscribed private stream client."""
    client = await WsClient.connect(session, ws_url)
    reply = await client.request({"op": "auth", "args": auth_args(key, secret)})
    assert reply["success"] is True, reply
    if topics:
        reply = await client.request({"op": "subscribe", "args": topics})
        assert reply["success"] is True, reply
    return client
