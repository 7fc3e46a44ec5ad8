"""Private WebSocket stream: order, execution, position and wallet events.

On every (re)connection: ``auth`` (signature of ``GET/realtime{expires}`` with a server-synced
expiry), then one ``subscribe`` for all topics; the connection is *ready* only once both are
acknowledged. Bybit has no replay for private topics, so every ``reconnected``
:class:`~.ws_base.ConnectionEvent` means "events may have been lost: reconcile through REST".

Consumers call :meth:`PrivateStream.messages` for their own :class:`~.ws_base.Subscription` of
:class:`~.models.PrivateMessage` (typed items via ``.orders()``, ``.executions()`` ...), and
:meth:`~.ws_base.ReconnectingWebSocket.connection_events` for connect/reconnect signals.
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import structlog
from pydantic import ValidationError

from . import signing
from .clock import ServerClock
from .config import BybitClientConfig
from .errors import ProtocolError
from .metrics import BybitMetrics
from .models import PrivateMessage
from .ws_base import FanOut, ReconnectingWebSocket, Subscription

log = structlog.get_logger("order_manager.adapters.bybit.private_ws")

DEFAULT_TOPICS = ("order", "execution", "position", "wallet")


class PrivateStream(ReconnectingWebSocket):
    name = "private"

    def __init__(
        self,
        config: BybitClientConfig,
        clock: ServerClock | None = None,
        *,
        topics: tuple[str, ...] = DEFAULT_TOPICS,
        metrics: BybitMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config.endpoints.private_ws, config.websocket, metrics=metrics, rng=rng)
        self.config = config
        self.clock = clock or ServerClock()
        self.topics = topics
        self._messages: FanOut[PrivateMessage] = FanOut()

    def messages(self) -> Subscription[PrivateMessage]:
        """A new subscription to every data message from now on."""
        return self._messages.subscribe()

    async def on_open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        expires = self.clock.now_ms() + self.config.websocket.auth_expires_ms
        signature = signing.ws_auth_signature(self.config.secret(), expires)
        auth = {"op": "auth", "args": [self.config.api_key, expires, signature]}
        await self.request(ws, auth, "auth")
        await self.request(ws, {"op": "subscribe", "args": list(self.topics)}, "subscribe")

    async def on_message(self, message: dict[str, Any]) -> None:
        if "topic" not in message:
            if message.get("success") is False:
                log.warning("bybit.ws_refused", stream=self.name, reply=message)
            return
        try:
            parsed = PrivateMessage.model_validate(message)
        except ValidationError as exc:
            raise ProtocolError(
                f"malformed private message on {message.get('topic')!r}: {exc.errors()[:2]}",
                endpoint=self.url,
            ) from exc
        self.metrics.ws_messages.labels(stream=self.name, topic=parsed.base_topic).inc()
        self._messages.publish(parsed)
