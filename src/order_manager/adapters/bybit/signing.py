"""Bybit V5 request signing (HMAC-SHA256, lower-case hex), v5-reference §1.

REST:  ``sign(timestamp + api_key + recv_window + payload)`` where ``payload`` is the query string
       exactly as sent (GET) or the raw JSON body exactly as sent (POST).
WS:    ``sign("GET/realtime" + expires)``.

The server does not canonicalise, so the one rule that matters is *sign the bytes you send*:
:func:`encode_query` and :func:`encode_body` produce the wire text and the client signs and sends
that same text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from urllib.parse import quote

# Characters left as they are in query values. '%' stays so that cursors, which Bybit returns
# already percent-encoded, are passed through unchanged (re-encoding them breaks the signature).
_QUERY_SAFE = "-_.~%:,"


def hmac_sha256_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_signature(
    secret: str, api_key: str, timestamp_ms: int, recv_window_ms: int, payload: str
) -> str:
    """Signature for the ``X-BAPI-SIGN`` header."""
    return hmac_sha256_hex(secret, f"{timestamp_ms}{api_key}{recv_window_ms}{payload}")


def ws_auth_signature(secret: str, expires_ms: int) -> str:
    """Signature for the private WebSocket ``auth`` op."""
    return hmac_sha256_hex(secret, f"GET/realtime{expires_ms}")


def _wire_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        raise TypeError("floats are not sent to Bybit: use Decimal or str")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode_query(params: Mapping[str, object]) -> str:
    """Query string as sent and signed: ``k=v`` joined by ``&`` in the given order, ``None``s
    dropped, values percent-encoded only where they would break the query syntax."""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        parts.append(f"{key}={quote(_wire_value(value), safe=_QUERY_SAFE)}")
    return "&".join(parts)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot send {type(value).__name__} to Bybit")


def encode_body(params: Mapping[str, object]) -> str:
    """Compact JSON body as sent and signed; Decimals become strings (Bybit's number format),
    ``None``s are dropped, floats are refused."""
    clean: dict[str, object] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, float):
            raise TypeError(f"{key}: floats are not sent to Bybit, use Decimal or str")
        clean[key] = value
    return json.dumps(clean, separators=(",", ":"), default=_json_default)


def auth_headers(
    api_key: str, secret: str, timestamp_ms: int, recv_window_ms: int, payload: str
) -> dict[str, str]:
    """The four ``X-BAPI-*`` headers of a private request."""
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
        "X-BAPI-SIGN": rest_signature(secret, api_key, timestamp_ms, recv_window_ms, payload),
        "X-BAPI-SIGN-TYPE": "2",
    }
