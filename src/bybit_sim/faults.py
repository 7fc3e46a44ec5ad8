"""Fault injection for the simulator (REST and WebSocket); placeholder until streams land."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FaultInjector:
    """Holds fault rules; consulted by the REST middleware and the WebSocket streams."""

    def __init__(self) -> None:
        self.rules: list[dict[str, object]] = []

    def clear(self) -> None:
        self.rules.clear()


@web.middleware
async def rest_fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Applies matching REST fault rules around the real handler (pass-through for now)."""
    return await handler(request)
