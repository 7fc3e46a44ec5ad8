"""Bybit V5 request authentication (v5-reference §1).

Signed string: timestamp + api_key + recv_window + (raw query string for GET | raw body for
POST), HMAC-SHA256 with the key's secret, lower-case hex. The raw bytes the client put on the
wire are hashed, never a re-encoded form, exactly as Bybit does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from bybit_sim.engine.errors import ApiError

TS_MSG = "invalid request, please check your server timestamp or recv_window param"


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def authenticate(
    headers: Mapping[str, str],
    api_keys: dict[str, str],
    payload_tail: str,
    now_ms: int,
    default_recv_window: int,
    future_tolerance_ms: int,
) -> str:
    """Check the X-BAPI-* headers; return the API key or raise 10003 / 10002 / 10004."""
    get = headers.get
    key = get("X-BAPI-API-KEY") or ""
    secret = api_keys.get(key)
    if not key or secret is None:
        raise ApiError(10003, "API key is invalid.")
    ts_raw = get("X-BAPI-TIMESTAMP") or ""
    recv_raw = get("X-BAPI-RECV-WINDOW") or ""
    try:
        ts = int(ts_raw)
        recv = int(recv_raw) if recv_raw else default_recv_window
    except ValueError:
        raise ApiError(10002, TS_MSG) from None
    if not (now_ms - recv <= ts < now_ms + future_tolerance_ms):
        raise ApiError(
            10002,
            f"{TS_MSG}. req_timestamp[{ts}],server_timestamp[{now_ms}],recv_window[{recv}]",
        )
    payload = ts_raw + key + recv_raw + payload_tail
    given = get("X-BAPI-SIGN") or ""
    if not hmac.compare_digest(given.lower(), sign(secret, payload)):
        raise ApiError(10004, f"error sign! origin_string[{payload}]")
    return key
