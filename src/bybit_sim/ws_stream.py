"""One simulator WebSocket connection: an outbound queue, a writer task, and stream faults.

Both the private and the public streams push through :class:`StreamConnection`. Producers (the
engine's listeners, running synchronously inside the engine) only call :meth:`publish`, which
puts the already-serialised message on a bounded per-connection queue and returns at once; a
per-connection writer task drains it. A slow client therefore never stalls the engine or other
clients; a client so slow that its queue overflows is disconnected (like Bybit does) rather than
silently losing messages - it reconnects and reconciles via REST.

The writer applies WebSocket fault rules (:mod:`bybit_sim.faults`) to *data* messages only;
acks and pongs (:meth:`send_control`) go out untouched and in order with the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from bybit_sim.faults import FaultInjector

log = logging.getLogger(__name__)

QUEUE_LIMIT: Final = 50_000
MAX_BATCH: Final = 256  # messages per write
WRITE_BUFFER_LIMIT: Final = 4 * 1024 * 1024  # bytes buffered for a client before waiting
CONTROL: Final = ""  # pseudo-topic of acks/pongs: never faulted


def dumps(payload: Mapping[str, Any]) -> str:
    """Compact JSON, as Bybit sends it."""
    return json.dumps(payload, separators=(",", ":"))


class StreamConnection:
    """A connected WebSocket client with its queue, writer task and subscriptions."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        faults: FaultInjector,
        target: str,
        transport: asyncio.Transport | None = None,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self._abort = False
        self.faults = faults
        self.target = target
        self.conn_id = str(uuid.uuid4())
        self.topics: set[str] = set()
        self.sent = 0
        self.closing = False
        self._out: list[str] = []  # messages due in the next write
        self._queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(queue_limit)
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{self.conn_id}")

    # -- producers (synchronous, never block) ------------------------------------------------

    def send_control(self, payload: Mapping[str, Any]) -> None:
        """Queue an ack/pong; never subject to faults."""
        self._put(CONTROL, dumps(payload))

    def publish(self, topic: str, text: str) -> None:
        """Queue one data message for ``topic`` (already serialised)."""
        self._put(topic, text)

    def _put(self, topic: str, text: str) -> None:
        if self.closing:
            return
        try:
            self._queue.put_nowait((topic, text))
        except asyncio.QueueFull:
            log.warning(
                "ws %s: client too slow (%d queued), disconnecting", self.conn_id, QUEUE_LIMIT
            )
            self.drop()

    def drop(self, abort: bool = False) -> None:
        """Close the connection as soon as possible (queued messages are discarded).

        ``abort`` resets the TCP connection without a WebSocket close frame, like a network
        failure; otherwise the server sends a normal close frame.
        """
        if self.closing:
            return
        self.closing = True
        self._abort = abort
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    # -- lifecycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the writer (called by the handler when the client is gone)."""
        self.closing = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        held: str | None = None  # message held back by a ``reorder`` fault
        held_until = 0.0
        try:
            while True:
                if held is None:
                    item = await self._queue.get()
                else:
                    try:
                        item = await asyncio.wait_for(
                            self._queue.get(), max(0.0, held_until - loop.time())
                        )
                    except TimeoutError:
                        self._out.append(held)
                        held = None
                        await self._flush()
                        continue
                # Everything already queued goes out in one write (one syscall), not one each.
                batch = [item]
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                stop = False
                for entry in batch:
                    if entry is None:
                        stop = True
                        break
                    topic, text = entry
                    if topic == CONTROL:
                        self._out.append(text)
                        continue
                    rule = self.faults.pick(self.target, topic)
                    kind = rule.kind if rule is not None else None
                    if kind == "pause":
                        continue  # lost for this client; the state is still visible via REST
                    if kind == "drop" and rule is not None:
                        self._abort = rule.params["mode"] == "abort"
                        stop = True
                        break
                    if kind == "reorder" and rule is not None and rule.params["scope"] == "items":
                        text = reversed_items(text)
                    elif kind == "reorder" and held is None and rule is not None:
                        held = text
                        held_until = loop.time() + int(rule.params["hold_ms"]) / 1000
                        continue
                    if kind == "delay" and rule is not None:
                        await self._flush()
                        await asyncio.sleep(int(rule.params["ms"]) / 1000)
                    self._out.append(text)
                    if kind == "duplicate":
                        self._out.append(text)
                    if held is not None:
                        self._out.append(held)
                        held = None
                if stop:
                    if not self._abort:
                        await self._flush()
                    break
                await self._flush()
        except (ConnectionError, RuntimeError) as exc:
            log.info("ws %s: send failed (%s), closing", self.conn_id, exc)
        finally:
            self.closing = True
            if self._abort and self.transport is not None:
                self.transport.abort()
            elif not self.ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.close()

    async def _flush(self) -> None:
        """Send the pending messages as text frames in one transport write.

        Frames are built here (RFC 6455: server frames are unmasked; no extension is negotiated,
        the handlers open the socket with ``compress=False``) because one engine operation
        typically yields several messages at once (order, execution, position, wallet) and a
        write per frame costs a syscall each - the dominant cost of the stream. Back-pressure
        is the transport's buffer: past ``WRITE_BUFFER_LIMIT`` bytes the writer waits for it to
        drain. Falls back to aiohttp's ``send_str`` if a transport is not available.
        """
        if not self._out:
            return
        texts, self._out = self._out, []
        transport = self.transport
        if transport is None or self.ws.compress:
            for text in texts:
                await self.ws.send_str(text)
                self.sent += 1
            return
        if self.ws.closed or transport.is_closing():
            raise ConnectionResetError("websocket is closing")
        transport.write(b"".join(text_frame(text.encode()) for text in texts))
        self.sent += len(texts)
        while transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            if transport.is_closing():
                raise ConnectionResetError("websocket closed while draining")
            await asyncio.sleep(0.005)


def reversed_items(text: str) -> str:
    """The same message with its ``data`` array in reverse order (unchanged if not a list)."""
    message = json.loads(text)
    if isinstance(message.get("data"), list):
        message["data"].reverse()
        return dumps(message)
    return text


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked WebSocket text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


class ConnectionRegistry:
    """The live connections of one stream kind (for fan-out and admin ``ws/drop``)."""

    def __init__(self) -> None:
        self.connections: set[StreamConnection] = set()

    def add(self, conn: StreamConnection) -> None:
        self.connections.add(conn)

    def discard(self, conn: StreamConnection) -> None:
        self.connections.discard(conn)

    def drop_all(self, abort: bool = False) -> int:
        """Close every connection now; returns how many were open."""
        live = [c for c in self.connections if not c.closing]
        for conn in live:
            conn.drop(abort)
        return len(live)
