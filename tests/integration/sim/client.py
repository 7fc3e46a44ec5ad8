"""A tiny raw-protocol Bybit V5 client for the simulator's own tests (aiohttp + HMAC).

It signs exactly what it sends (the query string or JSON body text), so tests can also send
deliberately wrong signatures, keys and timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def code(self) -> int:
        return int(self.body["retCode"])

    @property
    def result(self) -> dict[str, Any]:
        result: dict[str, Any] = self.body["result"]
        return result


class RawClient:
    """Signed GET/POST against a simulator base URL."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base: str,
        key: str = "sim-key",
        secret: str = "sim-secret",
    ) -> None:
        self.http = http
        self.base = base
        self.key = key
        self.secret = secret

    def headers(
        self, tail: str, ts: int | None = None, recv: str = "5000", signature: str | None = None
    ) -> dict[str, str]:
        stamp = str(ts if ts is not None else time.time_ns() // 1_000_000)
        return {
            "X-BAPI-API-KEY": self.key,
            "X-BAPI-TIMESTAMP": stamp,
            "X-BAPI-RECV-WINDOW": recv,
            "X-BAPI-SIGN": signature or sign(self.secret, stamp + self.key + recv + tail),
            "X-BAPI-SIGN-TYPE": "2",
            "Content-Type": "application/json",
        }

    async def post(self, path: str, body: dict[str, Any], **kw: Any) -> Reply:
        raw = json.dumps(body)
        async with self.http.post(self.base + path, data=raw, headers=self.headers(raw, **kw)) as r:
            return Reply(r.status, dict(r.headers), await r.json())

    async def get(self, path: str, query: str = "", **kw: Any) -> Reply:
        url = f"{self.base}{path}?{query}" if query else self.base + path
        async with self.http.get(
            aiohttp.client.URL(url, encoded=True), headers=self.headers(query, **kw)
        ) as r:
            return Reply(r.status, dict(r.headers), await r.json())

    async def public(self, path: str, query: str) -> Reply:
        async with self.http.get(f"{self.base}{path}?{query}") as r:
            return Reply(r.status, dict(r.headers), await r.json())

    async def create(self, **params: Any) -> Reply:
        body = {"category": "linear", "symbol": "BTCUSDT", **params}
        return await self.post("/v5/order/create", body)
