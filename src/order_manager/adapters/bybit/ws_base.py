"""A WebSocket connection that keeps itself alive: heartbeat, dead-connection detection and
reconnection with full-jitter backoff.

Subclasses implement :meth:`ReconnectingWebSocket.on_open` (authenticate, subscribe; return when
the server acknowledged) and :meth:`ReconnectingWebSocket.on_message`. After every successful
``on_open`` the connection counts as *ready* and a :class:`ConnectionEvent` is published to
every :class:`Subscription` from :meth:`connection_events`, so a consumer (the reconciler) can
react to every reconnect; :meth:`wait_ready` lets a caller await the next ready connection.

A connection is dead when nothing at all arrives (no data, no pong) for ``ping_interval +
pong_timeout`` seconds; it is then closed and replaced. The first reconnect waits a random time
below ``reconnect_base_delay`` (50 ms by default), the next ones up to ``reconnect_max_delay``,
so a dropped stream is back well within Bybit's 5 s service objective.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import aiohttp
import structlog

from .config import WebSocketConfig
from .errors import AuthError, BybitError, ProtocolError
from .metrics import BybitMetrics, metrics_for
from .models import loads

log = structlog.get_logger("order_manager.adapters.bybit.ws")

T = TypeVar("T")

# Seconds a connection must have lived for its end to reset the reconnect backoff.
STABLE_AFTER = 10.0


class Subscription(Generic[T]):
    """One consumer's queue of items from a fan-out; iterate it or ``await get()``."""

    def __init__(self, owner: FanOut[T]) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[T] = asyncio.Queue()

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def get_nowait(self) -> T:
        return self._queue.get_nowait()

    def qsize(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._owner.remove(self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            yield await self._queue.get()


class FanOut(Generic[T]):
    """Delivers each published item to every open subscription (unbounded queues: events are
    never dropped; a consumer that stops reading must close its subscription)."""

    def __init__(self) -> None:
        self._subs: list[Subscription[T]] = []

    def subscribe(self) -> Subscription[T]:
        sub: Subscription[T] = Subscription(self)
        self._subs.append(sub)
        return sub

    def remove(self, sub: Subscription[T]) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    def publish(self, item: T) -> None:
        for sub in self._subs:
            sub.put(item)


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """``kind`` is ``connected`` (first time), ``reconnected`` or ``disconnected``.

    ``generation`` counts ready connections (1 = the first). After ``reconnected`` events may
    have been missed while the stream was down: reconcile via REST.
    """

    stream: str
    kind: str
    generation: int
    at: datetime
    reason: str = ""


class ReconnectingWebSocket:
    """Base class; see the module docstring."""

    name = "ws"

    def __init__(
        self,
        url: str,
        config: WebSocketConfig,
        *,
        metrics: BybitMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.ws_config = config
        self.metrics = metrics or metrics_for()
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ready = asyncio.Event()
        self._generation_changed = asyncio.Condition()
        self.generation = 0
        self.last_received: float | None = None
        self.pongs_received = 0
        self.last_error: BaseException | None = None
        self._connection_events: FanOut[ConnectionEvent] = FanOut()
        self._req_ids = itertools.count(1)
        self._stopping = False
        # While start(wait=True) waits for the first connection, its errors end the loop and
        # surface to the caller; afterwards every error leads to a reconnect.
        self._fail_fast = False

    # ------------------------------------------------------------------ public
    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def connection_events(self) -> Subscription[ConnectionEvent]:
        return self._connection_events.subscribe()

    async def start(self, *, wait: bool = True) -> None:
        """Start the connection loop; with ``wait`` return once the first connection is ready
        (raising the error of the first attempt if it fails, e.g. an :class:`AuthError`)."""
        if self._task is not None:
            return
        self._stopping = False
        self._fail_fast = wait
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name=f"bybit-{self.name}")
        if wait:
            try:
                await self._wait_first_ready()
            except BaseException:
                await self.stop()
                raise

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except (BybitError, aiohttp.ClientError, OSError, TimeoutError) as error:
                # The loop had already ended with this error (start() re-raised it).
                log.debug("bybit.ws_stopped_after_error", stream=self.name, error=str(error))
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._set_not_ready()

    async def wait_ready(self, after_generation: int = 0) -> int:
        """Wait until a connection newer than ``after_generation`` is ready; returns its
        generation. Wrap in ``asyncio.timeout`` for a deadline."""
        async with self._generation_changed:
            await self._generation_changed.wait_for(
                lambda: self.is_ready and self.generation > after_generation
            )
            return self.generation

    async def send_json(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionResetError(f"{self.name}: not connected")
        await ws.send_str(json.dumps(payload, separators=(",", ":")))

    def next_req_id(self) -> str:
        return f"{self.name}-{next(self._req_ids)}"

    # ------------------------------------------------------------------ subclass hooks
    async def on_open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Authenticate and subscribe; return when acknowledged."""

    async def on_message(self, message: dict[str, Any]) -> None:
        """Handle one decoded text frame (already known not to be a heartbeat reply)."""

    # ------------------------------------------------------------------ helpers for on_open
    async def request(
        self, ws: aiohttp.ClientWebSocketResponse, payload: dict[str, Any], op: str
    ) -> dict[str, Any]:
        """Send ``payload`` and wait for the reply to ``op``; other frames received meanwhile
        are handled normally. Raises on ``success: false``."""
        req_id = self.next_req_id()
        await ws.send_str(json.dumps({**payload, "req_id": req_id}, separators=(",", ":")))
        async with asyncio.timeout(self.ws_config.connect_timeout):
            while True:
                message = await self._receive(ws)
                if message is None:
                    raise ConnectionResetError(f"{self.name}: closed while waiting for {op}")
                if message.get("op") == op and not _is_heartbeat(message):
                    if message.get("success") is False or message.get("retCode", 0) != 0:
                        text = message.get("ret_msg") or message.get("retMsg") or ""
                        error_type = AuthError if op == "auth" else ProtocolError
                        raise error_type(f"{self.name} {op} refused: {text}", endpoint=self.url)
                    return message
                await self._dispatch(message)

    # ------------------------------------------------------------------ machinery
    async def _wait_first_ready(self) -> None:
        task = self._task
        assert task is not None
        ready = asyncio.create_task(self.wait_ready(0))
        done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            return
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        task.result()  # re-raises the first connection's fatal error

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            reason = "closed by server"
            try:
                started = time.monotonic()
                await self._connect_once()
                # A connection that is closed right after it opened counts as a failure, so a
                # server that keeps dropping us gets a growing backoff instead of a flapping
                # client (Bybit allows 500 new connections per 5 minutes).
                if time.monotonic() - started >= STABLE_AFTER:
                    failures = 0
            except AuthError as error:
                self.last_error = error
                log.error("bybit.ws_auth_failed", stream=self.name, error=str(error))
                if self._fail_fast:
                    raise
                reason = str(error)
                failures = max(failures, 6)  # back off hard: do not hammer with a bad key
            except (aiohttp.ClientError, OSError, TimeoutError, BybitError) as error:
                self.last_error = error
                reason = f"{type(error).__name__}: {error}"
                if self._fail_fast and failures >= 2:
                    raise
            finally:
                self._ws = None
                was_ready = self._set_not_ready()
            if self._stopping:
                break
            if was_ready:
                self._publish("disconnected", reason)
            delay = self._reconnect_delay(failures)
            failures += 1
            log.warning(
                "bybit.ws_reconnecting", stream=self.name, reason=reason, delay_s=round(delay, 3)
            )
            self.metrics.ws_reconnects.labels(stream=self.name).inc()
            await asyncio.sleep(delay)

    def _reconnect_delay(self, failures: int) -> float:
        cfg = self.ws_config
        ceiling = min(cfg.reconnect_max_delay, cfg.reconnect_base_delay * 2 ** min(failures, 30))
        return self._rng.uniform(0.0, ceiling)

    async def _connect_once(self) -> None:
        session = self._session
        assert session is not None
        timeout = aiohttp.ClientWSTimeout(ws_close=self.ws_config.connect_timeout)
        async with asyncio.timeout(self.ws_config.connect_timeout):
            ws = await session.ws_connect(self.url, autoping=True, heartbeat=None, timeout=timeout)
        self._ws = ws
        try:
            self.last_received = time.monotonic()
            await self.on_open(ws)
            await self._set_ready()
            pinger = asyncio.create_task(self._ping_loop(ws), name=f"bybit-{self.name}-ping")
            try:
                while True:
                    message = await self._receive(ws)
                    if message is None:
                        return
                    await self._dispatch(message)
            finally:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
        finally:
            await ws.close()

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any] | None:
        """Next decoded JSON frame; ``None`` when the connection closed. A silence longer than
        ping_interval + pong_timeout raises ``TimeoutError`` (dead connection)."""
        limit = self.ws_config.ping_interval + self.ws_config.pong_timeout
        while True:
            try:
                frame = await ws.receive(timeout=limit)
            except TimeoutError:
                log.warning("bybit.ws_dead", stream=self.name, silent_s=limit)
                raise
            if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.last_received = time.monotonic()
                try:
                    decoded = loads(frame.data)
                except ValueError as exc:
                    raise ProtocolError(f"{self.name}: non-JSON frame", endpoint=self.url) from exc
                if isinstance(decoded, dict):
                    return decoded
                continue
            if frame.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                self.last_received = time.monotonic()
                continue
            return None  # CLOSE, CLOSING, CLOSED, ERROR

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if _is_heartbeat(message):
            self.pongs_received += 1
            return
        await self.on_message(message)

    async def _ping_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self.ws_config.ping_interval)
            await ws.send_str(json.dumps({"op": "ping", "req_id": self.next_req_id()}))

    async def _set_ready(self) -> None:
        async with self._generation_changed:
            self.generation += 1
            self._fail_fast = False
            self._ready.set()
            self._generation_changed.notify_all()
        self.metrics.ws_connected.labels(stream=self.name).set(1)
        kind = "connected" if self.generation == 1 else "reconnected"
        log.info("bybit.ws_ready", stream=self.name, kind=kind, generation=self.generation)
        self._publish(kind)

    def _set_not_ready(self) -> bool:
        was = self._ready.is_set()
        self._ready.clear()
        self.metrics.ws_connected.labels(stream=self.name).set(0)
        return was

    def _publish(self, kind: str, reason: str = "") -> None:
        self._connection_events.publish(
            ConnectionEvent(self.name, kind, self.generation, datetime.now(UTC), reason)
        )


def _is_heartbeat(message: dict[str, Any]) -> bool:
    op = message.get("op")
    return op == "pong" or (op == "ping" and message.get("ret_msg") == "pong")
