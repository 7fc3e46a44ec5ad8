"""API key protection for everything under `/api/v1`.

A small ASGI middleware guards the whole prefix, so even a path that does not exist answers
401 (not 404) without a valid key: nothing about the API's shape leaks to an anonymous
caller. The key is compared with `hmac.compare_digest` (constant time). The probes
(`/health`, `/live`, `/ready`) and `/metrics` stay open for monitoring.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from order_manager.logs import get_logger

API_KEY_HEADER = "x-api-key"
PROTECTED_PREFIX = "/api/v1"

log = get_logger("order_manager.api.auth")


def key_matches(provided: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing key never matches."""
    if provided is None:
        return False
    return hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))


class ApiKeyMiddleware:
    """Reject requests under `PROTECTED_PREFIX` without the right `X-API-Key` header."""

    def __init__(self, app: ASGIApp, api_key: str, prefix: str = PROTECTED_PREFIX) -> None:
        if not api_key:
            raise ValueError("the API key must not be empty")
        self.app = app
        self.api_key = api_key
        self.prefix = prefix

    def _protected(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        provided: str | None = None
        for name, value in scope.get("headers", []):
            if name.decode("latin-1").lower() == API_KEY_HEADER:
                provided = value.decode("latin-1")
                break
        if key_matches(provided, self.api_key):
            await self.app(scope, receive, send)
            return
        reason = "missing" if provided is None else "invalid"
        log.warning("api key rejected", reason=reason, path=scope.get("path"))
        body = json.dumps(
            {
                "error": f"{reason} API key: send a valid X-API-Key header",
                "code": "UNAUTHORIZED",
                "details": {"header": "X-API-Key"},
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"ApiKey"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
