"""The Bybit private WebSocket as an `ExchangeEventSource` (services.ports.exchange_events).

Every data message (`order`, `execution`, `position`, `wallet`) is handed to the tracker in
arrival order, one message = one batch, with its raw items; messages that are already waiting
when the tracker becomes free are handed over together (one transaction, up to
`MAX_COALESCED`). A `reconnected` connection event
means events may have been lost while the stream was down (Bybit has no replay): `on_gap` runs
in the background so that live events keep flowing while the reconciliation reads REST.

A batch the handler cannot apply (it already retried the database) is logged with its items and
triggers `on_gap` as well: the REST reconciliation restores what the batch would have done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from order_manager.adapters.bybit.models import PrivateMessage
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.bybit.ws_base import ConnectionEvent

log = structlog.get_logger(__name__)

# Same shapes as services.ports.exchange_events (adapters do not import services).
RawBatch = tuple[str, Sequence[Mapping[str, Any]], datetime | None]
EventHandler = Callable[[Sequence[RawBatch]], Awaitable[None]]

#: most messages handed over in one call (one transaction)
MAX_COALESCED = 64
GapHandler = Callable[[], Awaitable[None]]


class PrivateStreamSource:
    def __init__(self, stream: PrivateStream) -> None:
        self._stream = stream
        self._gap_tasks: set[asyncio.Task[None]] = set()
        # subscribed now, so nothing published between `connect()` and `run()` is missed
        self._messages = stream.messages()
        self._connections = stream.connection_events()

    async def connect(self) -> None:
        """Open the stream and wait until it is authenticated and subscribed (raises the
        first connection's error, e.g. bad credentials)."""
        if not self._stream.started:
            await self._stream.start()

    def _gap(self, on_gap: GapHandler | None, reason: str) -> None:
        if on_gap is None:
            return
        log.info("exchange events may be missing; reconciling", reason=reason)

        async def run() -> None:
            try:
                await on_gap()
            except Exception as exc:  # reconciliation failing must not stop the stream
                log.exception("gap reconciliation failed", error=repr(exc))

        task = asyncio.create_task(run())
        self._gap_tasks.add(task)
        task.add_done_callback(self._gap_tasks.discard)

    async def run(self, handle: EventHandler, on_gap: GapHandler | None) -> None:
        messages, connections = self._messages, self._connections
        try:
            await self.connect()
            get_message: asyncio.Task[PrivateMessage] = asyncio.create_task(messages.get())
            get_event: asyncio.Task[ConnectionEvent] = asyncio.create_task(connections.get())
            try:
                while True:
                    done, _ = await asyncio.wait(
                        {get_message, get_event}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if get_event in done:
                        event = get_event.result()
                        get_event = asyncio.create_task(connections.get())
                        if event.kind == "reconnected":
                            self._gap(on_gap, f"websocket reconnected ({event.reason})")
                    if get_message in done:
                        batch = [get_message.result()]
                        while messages.qsize() and len(batch) < MAX_COALESCED:
                            batch.append(messages.get_nowait())  # already waiting: same commit
                        get_message = asyncio.create_task(messages.get())
                        try:
                            await handle([(m.base_topic, m.data, m.creation_time) for m in batch])
                        except Exception as exc:  # logged with the items, then reconciled
                            log.exception(
                                "exchange event batch not applied",
                                topics=[m.topic for m in batch],
                                items=[list(m.data) for m in batch],
                                error=repr(exc),
                            )
                            self._gap(on_gap, "a batch could not be applied")
            finally:
                for task in (get_message, get_event):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            messages.close()
            connections.close()
            for gap_task in list(self._gap_tasks):
                gap_task.cancel()
