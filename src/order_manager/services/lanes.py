"""Per-key FIFO lanes: strict order within a key, parallel across keys, bounded.

The intake keys signals by ``(category, symbol)``. Every key gets its own lane: a bounded FIFO
queue drained by exactly one worker task, so two signals for BTCUSDT are never processed at the
same time nor out of order, while ETHUSDT runs concurrently. A lane's worker exists only while
the lane has work (it exits when the queue is empty), so thousands of symbols cost nothing when
idle.

Backpressure: ``submit`` waits while the key's lane holds ``capacity`` items (the one being
handled included). The intake's dispatch loop awaits ``submit``, so a full lane stops it taking
messages from the broker; the broker's prefetch then bounds what is in flight.

Shutdown (SIGTERM): ``close()`` refuses new work and tells every worker to stop after the item
it is handling; ``wait_closed()`` waits for those in-flight items, then hands every item that
never started to ``on_abandon`` (the intake leaves those messages unacked, so the broker
redelivers them later). ``drain()`` instead waits until every queued item has been handled.

A handler that raises does not stop its lane: the error is logged and the next item runs
(the intake's handler deals with its own failures; this is a last line of defence).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from order_manager.logs import get_logger

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = get_logger("order_manager.services.lanes")


class LanesClosedError(RuntimeError):
    """``submit`` after ``close()``: the item was not accepted."""


@dataclass(eq=False)
class _Lane(Generic[T]):
    items: deque[T] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    busy: bool = False


class Lanes(Generic[K, T]):
    """Bounded FIFO lanes keyed by ``K`` handling items of type ``T``.

    ``handler(item)`` is awaited for each item, one at a time per key. ``on_abandon(item)`` is
    awaited at shutdown for every item that was queued but never started.
    """

    def __init__(
        self,
        handler: Callable[[T], Awaitable[None]],
        *,
        capacity: int,
        on_abandon: Callable[[T], Awaitable[None]] | None = None,
        name: str = "lanes",
    ) -> None:
        if capacity < 1:
            raise ValueError("lane capacity must be at least 1")
        self._handler = handler
        self._on_abandon = on_abandon
        self.capacity = capacity
        self.name = name
        self._lanes: dict[K, _Lane[T]] = {}
        self._closed = False
        self._changed = asyncio.Condition()
        self._blocked = 0
        self._close_notify: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ introspection

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def blocked_submitters(self) -> int:
        """How many ``submit`` calls are waiting for room (backpressure in effect)."""
        return self._blocked

    def pending(self, key: K | None = None) -> int:
        """Items accepted and not yet finished (the one being handled included)."""
        lanes = self._lanes.values() if key is None else [self._lanes.get(key, _Lane())]
        return sum(len(lane.items) + (1 if lane.busy else 0) for lane in lanes)

    def active_keys(self) -> list[K]:
        return list(self._lanes)

    # ------------------------------------------------------------------ work

    async def submit(self, key: K, item: T) -> None:
        """Queue ``item`` on ``key``'s lane, waiting while that lane is full.

        Raises ``LanesClosedError`` when the lanes are (or become, while waiting) closed; the
        item is then not queued and stays the caller's responsibility.
        """
        async with self._changed:
            while not self._closed and self.pending(key) >= self.capacity:
                self._blocked += 1
                try:
                    await self._changed.wait()
                finally:
                    self._blocked -= 1
            if self._closed:
                raise LanesClosedError(f"{self.name} are closed")
            lane = self._lanes.get(key)
            if lane is None:
                lane = self._lanes[key] = _Lane()
            lane.items.append(item)
            if lane.worker is None:
                lane.worker = asyncio.create_task(self._run(key, lane), name=f"lane:{key}")

    async def _run(self, key: K, lane: _Lane[T]) -> None:
        while True:
            async with self._changed:
                if self._closed or not lane.items:
                    lane.worker = None
                    if not lane.items:
                        self._lanes.pop(key, None)
                    self._changed.notify_all()
                    return
                item = lane.items.popleft()
                lane.busy = True
            try:
                await self._handler(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged with the traceback; the lane keeps going
                log.error("lane handler failed", lane=str(key), error=str(exc), exc_info=exc)
            finally:
                async with self._changed:
                    lane.busy = False
                    self._changed.notify_all()

    async def drain(self) -> None:
        """Wait until every accepted item has been handled (new submits are still accepted)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.pending() == 0)

    def close(self) -> None:
        """Refuse new items; workers stop after the item they are handling."""
        self._closed = True
        # Wake blocked submitters and idle waiters; the notify needs the lock, so schedule it.
        self._close_notify = asyncio.create_task(self._notify(), name=f"{self.name}:close")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_closed(self) -> None:
        """After ``close()``: wait for in-flight items, then abandon everything never started."""
        if not self._closed:
            raise RuntimeError("wait_closed() before close()")
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        abandoned: list[T] = []
        for lane in self._lanes.values():
            abandoned.extend(lane.items)
            lane.items.clear()
        self._lanes.clear()
        if abandoned:
            log.info("lanes closed with unstarted items", lanes=self.name, count=len(abandoned))
        if self._on_abandon is not None:
            for item in abandoned:
                await self._on_abandon(item)

    async def cancel(self) -> None:
        """Hard stop (tests, fatal errors): cancel every worker, abandon all queued items."""
        self._closed = True
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await self.wait_closed()
