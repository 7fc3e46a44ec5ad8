"""The ws-gateway service as an `ExchangeEventSource` (`ORDERMANAGER_EVENT_SOURCE=ws_gateway`).

- Subscribes with `POST {gateway}/api/v1/subscriptions` (header `X-API-Key`) for the `order`
  channel (and `execution`, which the gateway may not support: a refusal there is logged, not
  fatal), symbol `*`, requesting service `order-manager`.
- Consumes queue `ws-gateway.order`, declared EXACTLY as the gateway declares it (durable,
  `x-message-ttl=86400000`, `x-max-length=100000`, `x-overflow=drop-head`; any other
  declaration fails with PRECONDITION_FAILED).
- Each message is an envelope `{event_id, event_type, topic, timestamp, received_at, payload,
  trace_id}` whose payload is one raw Bybit V5 object. Messages are processed one at a time in
  queue order and acked only after the tracker committed their effect; a failure nacks with
  requeue (redelivery is harmless: the tracker is idempotent). A message that is not a usable
  envelope is handed to the tracker anyway (as an order item it cannot parse), which records it
  in the audit log, then acked: kept, not lost, and it cannot block the queue.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
import structlog
from aio_pika.abc import AbstractIncomingMessage

from order_manager.adapters.rabbitmq.connection import open_robust

log = structlog.get_logger(__name__)

QUEUE = "ws-gateway.order"
QUEUE_ARGUMENTS: Mapping[str, Any] = {
    "x-message-ttl": 86_400_000,
    "x-max-length": 100_000,
    "x-overflow": "drop-head",
}
CHANNELS = ("order", "execution")

RawBatch = tuple[str, Sequence[Mapping[str, Any]], datetime | None]
EventHandler = Callable[[Sequence[RawBatch]], Awaitable[None]]
GapHandler = Callable[[], Awaitable[None]]


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def unwrap(body: bytes) -> tuple[str, list[Mapping[str, Any]], datetime | None]:
    """(topic, items, timestamp) of one gateway envelope; an unusable body becomes one
    unparseable `order` item carrying the raw text."""
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "order", [{"_raw": body.decode("utf-8", "replace")}], None
    if not isinstance(envelope, Mapping) or not isinstance(envelope.get("payload"), Mapping):
        return "order", [{"_raw": envelope}], None
    kind = envelope.get("event_type") or envelope.get("topic") or "order"
    topic = str(kind).split(".", 1)[0]
    return topic, [envelope["payload"]], _timestamp(envelope.get("timestamp"))


class WsGatewaySource:
    def __init__(
        self,
        amqp_url: str,
        gateway_url: str,
        api_key: str | None,
        *,
        queue: str = QUEUE,
        prefetch: int = 100,
        http_timeout: float = 5.0,
    ) -> None:
        self._amqp_url = amqp_url
        self._gateway_url = gateway_url.rstrip("/")
        self._api_key = api_key
        self._queue = queue
        self._prefetch = prefetch
        self._http_timeout = http_timeout
        self.subscribed: list[str] = []

    async def subscribe(self) -> list[str]:
        """Ask the gateway to route our channels to the queue; the channels it accepted."""
        headers = {"X-API-Key": self._api_key} if self._api_key else {}
        accepted: list[str] = []
        async with httpx.AsyncClient(timeout=self._http_timeout) as http:
            for channel in CHANNELS:
                body = {
                    "channel_type": channel,
                    "symbol": "*",
                    "requesting_service": "order-manager",
                }
                try:
                    response = await http.post(
                        f"{self._gateway_url}/api/v1/subscriptions", json=body, headers=headers
                    )
                except httpx.HTTPError as exc:
                    log.warning("ws-gateway subscription failed", channel=channel, error=repr(exc))
                    continue
                if response.status_code >= 400:
                    log.warning(
                        "ws-gateway refused a subscription",
                        channel=channel,
                        status=response.status_code,
                        body=response.text[:500],
                    )
                    continue
                accepted.append(channel)
        self.subscribed = accepted
        return accepted

    async def run(self, handle: EventHandler, on_gap: GapHandler | None) -> None:
        await self.subscribe()
        connection = await open_robust(
            self._amqp_url, client_properties={"connection_name": "order-manager.ws-gateway"}
        )
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await channel.declare_queue(
                self._queue, durable=True, arguments=dict(QUEUE_ARGUMENTS)
            )
            async with queue.iterator() as messages:
                async for message in messages:
                    await self._process(message, handle)
        finally:
            await connection.close()

    async def _process(self, message: AbstractIncomingMessage, handle: EventHandler) -> None:
        topic, items, timestamp = unwrap(message.body)
        try:
            await handle([(topic, items, timestamp)])
        except Exception as exc:  # not committed: let the broker redeliver it
            log.exception("gateway event not applied; requeued", topic=topic, error=repr(exc))
            await message.nack(requeue=True)
            return
        await message.ack()
