"""Share one exchange read among the callers that asked before it was sent.

Every lane plans with the wallet and the category's positions read from the exchange just
before (authoritative even while our private stream lags). With several lanes busy, those are
the same requests made many times a second — and Bybit allows 50 wallet and 50 position-list
reads per second per account, a quarter of the signal rate we plan for.

The rule that keeps a shared answer exactly as fresh as a dedicated call: **a caller is served by
the first request sent after it asked, never by one already in flight** (an in-flight answer may
predate a fill the caller must see, e.g. of the order its own lane placed a moment ago). So
callers queue for the *next* round of a key; a round starts as soon as the previous one of that
key has returned (immediately when none is in flight). Under load N concurrent callers cost
about two requests instead of N; a lone caller waits for nothing.

A round is *closed* when its request actually leaves: ``fetch`` calls the ``sending`` callback it
is given right before the bytes go out (the REST client does it once the rate limiter has let
the request go). Callers who ask while the request still waits for the limiter join it — they
asked before it was sent — so the busier the account's read budget (Bybit: 50 a second), the
more callers one request serves. A ``fetch`` that never calls ``sending`` closes its round when
it returns or raises.

A round's error reaches every caller of that round (the next round is a fresh attempt). The
request runs in its own task, so a caller that is cancelled does not cancel it for the others;
the request carries the first caller's trace id (the others are logged with it at debug level).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("order_manager.adapters.bybit.shared_read")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

#: ``fetch(key, trace_id, sending)``; ``sending()`` is called right before the request leaves
Fetch = Callable[[K, str, Callable[[], None]], Awaitable[T]]


@dataclass(eq=False)
class _Round(Generic[T]):
    future: asyncio.Future[T]
    trace_ids: list[str] = field(default_factory=list)


class SharedRead(Generic[K, T]):
    """``await shared.get(key, trace_id)``: ``fetch(key, trace_id, sending)`` shared per round
    of key (``sending()``: the request is leaving now — the round takes no more callers)."""

    def __init__(self, fetch: Fetch[K, T], *, name: str) -> None:
        self._fetch = fetch
        self.name = name
        self._queued: dict[K, _Round[T]] = {}
        self._drivers: dict[K, asyncio.Task[None]] = {}
        #: requests sent and answers handed out (an answer per caller), since start
        self.requests = 0
        self.answers = 0

    async def get(self, key: K, trace_id: str) -> T:
        queued = self._queued.get(key)
        if queued is None:
            queued = self._queued[key] = _Round(asyncio.get_running_loop().create_future())
            if key not in self._drivers:
                self._drivers[key] = asyncio.create_task(
                    self._drive(key), name=f"{self.name}:{key}"
                )
        queued.trace_ids.append(trace_id)
        self.answers += 1
        # shield: a cancelled caller must not cancel the round the others wait for
        return await asyncio.shield(queued.future)

    async def _drive(self, key: K) -> None:
        """Send the queued rounds of ``key`` one after the other until none is left."""
        try:
            while (current := self._queued.get(key)) is not None:
                self.requests += 1

                def sending(current: _Round[T] = current) -> None:
                    if self._queued.get(key) is current:
                        del self._queued[key]  # later callers wait for the next round
                        if len(current.trace_ids) > 1:
                            log.debug(
                                "shared exchange read", read=self.name, trace_ids=current.trace_ids
                            )

                try:
                    result = await self._fetch(key, current.trace_ids[0], sending)
                except asyncio.CancelledError:
                    sending()
                    current.future.cancel()
                    raise
                except Exception as error:
                    sending()
                    current.future.set_exception(error)
                    current.future.exception()  # retrieved here: its callers may all be gone
                else:
                    sending()
                    current.future.set_result(result)
        finally:
            self._drivers.pop(key, None)
            left = self._queued.pop(key, None)  # only when the driver itself was cancelled
            if left is not None:
                left.future.cancel()
