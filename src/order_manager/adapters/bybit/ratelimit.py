"""Client-side rate limiter: queue a burst instead of earning 10006.

Bybit limits each UID per endpoint (and per category for trade endpoints) over a rolling second,
plus 600 requests per 5 s per IP (v5-reference §2). The limiter keeps one sliding window per
bucket and lets a request go only when every bucket it needs (its endpoint bucket and the IP
bucket) has room. Windows are a little longer than the exchange's (``safety_margin``) because the
server sees a request later than we release it, by a latency that varies.

Waiting requests are served strictly by priority (cancel > create/amend > query), FIFO inside a
priority. A waiter only holds back lower-priority waiters on the buckets that are actually full
for it, so a queue of creates never delays queries.

The limiter adapts to the exchange's view: ``X-Bapi-Limit`` replaces Bybit's default capacity
(accounts can be upgraded; an explicit override in the config is kept), and
``X-Bapi-Limit-Status == 0`` or a 10006 blocks the bucket until ``X-Bapi-Limit-Reset-Timestamp``.

:class:`LimiterCore` is pure (time is passed in) and fully unit-tested; :class:`RateLimiter` drives
it with the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .config import RateLimitConfig


class Priority(enum.IntEnum):
    """Lower value goes first."""

    CANCEL = 0
    TRADE = 1
    QUERY = 2


_TRADE_CATEGORIES = ("linear", "inverse", "option", "spot")


def _per_category(linear: int, option: int, spot: int) -> dict[str, int]:
    return {"linear": linear, "inverse": linear, "option": option, "spot": spot}


# Bybit's default per-UID limits, requests per second (v5-reference §2).
PER_CATEGORY_LIMITS: dict[str, dict[str, int]] = {
    "/v5/order/create": _per_category(10, 10, 20),
    "/v5/order/amend": _per_category(10, 10, 10),
    "/v5/order/cancel": _per_category(10, 10, 20),
    "/v5/order/cancel-all": _per_category(10, 1, 20),
    "/v5/order/create-batch": _per_category(10, 10, 20),
    "/v5/order/amend-batch": _per_category(10, 10, 20),
    "/v5/order/cancel-batch": _per_category(10, 10, 20),
    "/v5/position/trading-stop": _per_category(10, 10, 10),
    "/v5/position/switch-mode": _per_category(10, 10, 10),
    "/v5/position/set-leverage": _per_category(10, 10, 10),
}
# Endpoints limited regardless of category (shared across categories, the conservative reading).
SHARED_LIMITS: dict[str, int] = {
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/account/wallet-balance": 50,
    "/v5/account/info": 50,
    "/v5/account/fee-rate": 5,
    "/v5/order/disconnected-cancel-all": 5,
}

IP_BUCKET = "ip"
# A reset timestamp less than this far ahead is treated as "now" (seconds).
RESET_NOISE = 0.025


def default_priority(path: str) -> Priority:
    if path.startswith("/v5/order/cancel"):
        return Priority.CANCEL
    if path in ("/v5/order/create", "/v5/order/amend") or path.endswith("-batch"):
        return Priority.TRADE
    if path.startswith("/v5/position/") and path != "/v5/position/list":
        return Priority.TRADE
    return Priority.QUERY


def bucket_name(path: str, category: str | None) -> str | None:
    """Name of the endpoint bucket of a request, ``None`` for endpoints with only the IP limit."""
    if path in PER_CATEGORY_LIMITS:
        return f"{path}:{category or 'linear'}"
    if path in SHARED_LIMITS:
        return path
    return None


def configured_limit(path: str, category: str | None, overrides: dict[str, int]) -> int | None:
    name = bucket_name(path, category)
    if name is None:
        return None
    if name in overrides:
        return overrides[name]
    if path in overrides:
        return overrides[path]
    if path in PER_CATEGORY_LIMITS:
        return PER_CATEGORY_LIMITS[path].get(category or "linear", 10)
    return SHARED_LIMITS[path]


@dataclass(slots=True)
class Bucket:
    """At most ``capacity`` requests per ``window`` seconds, counted conservatively.

    A request holds its slot from the moment it is released to the network until ``window``
    seconds after its *response* arrived. The exchange stamps the request somewhere in between,
    so however long the request waited in our event loop or on the wire, two requests that use
    the same slot reach the exchange at least ``window`` apart.
    """

    name: str
    capacity: int
    window: float
    done: deque[float] = field(default_factory=deque)  # response times, ascending
    in_flight: int = 0
    blocked_until: float = 0.0

    def _prune(self, now: float) -> None:
        while self.done and self.done[0] + self.window <= now:
            self.done.popleft()

    def next_free(self, now: float) -> float:
        """Earliest time (>= now) at which one more request fits; ``inf`` when only a response
        of a request in flight can free a slot."""
        self._prune(now)
        excess = self.in_flight + len(self.done) - self.capacity
        if excess < 0:
            ready = now
        elif excess < len(self.done):
            ready = self.done[excess] + self.window
        else:
            ready = math.inf
        return max(ready, self.blocked_until, now)

    def take(self) -> None:
        self.in_flight += 1

    def give_back(self, now: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.done.append(now)

    def used(self, now: float) -> int:
        self._prune(now)
        return self.in_flight + len(self.done)


@dataclass(slots=True)
class Waiter:
    priority: int
    seq: int
    buckets: tuple[Bucket, ...]
    enqueued_at: float
    token: object = None

    def sort_key(self) -> tuple[int, int]:
        return (self.priority, self.seq)


class LimiterCore:
    """Pure scheduling state: buckets and the priority queue of waiters."""

    def __init__(self, config: RateLimitConfig) -> None:
        self.config = config
        self.buckets: dict[str, Bucket] = {}
        self.waiters: list[Waiter] = []
        self._keys: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self.ip_bucket = Bucket(IP_BUCKET, config.ip_limit, config.ip_window_seconds)

    def buckets_for(self, path: str, category: str | None) -> tuple[Bucket, ...]:
        name = bucket_name(path, category)
        if name is None:
            return (self.ip_bucket,)
        bucket = self.buckets.get(name)
        if bucket is None:
            limit = configured_limit(path, category, self.config.overrides)
            assert limit is not None
            bucket = Bucket(name, limit, self.config.window_seconds + self.config.safety_margin)
            self.buckets[name] = bucket
        return (bucket, self.ip_bucket)

    def enqueue(
        self, path: str, category: str | None, priority: int, now: float, token: object = None
    ) -> Waiter:
        waiter = Waiter(priority, next(self._seq), self.buckets_for(path, category), now, token)
        key = waiter.sort_key()
        index = bisect.bisect(self._keys, key)
        self._keys.insert(index, key)
        self.waiters.insert(index, waiter)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        index = bisect.bisect_left(self._keys, waiter.sort_key())
        if index < len(self.waiters) and self.waiters[index] is waiter:
            del self._keys[index]
            del self.waiters[index]

    def dispatch(self, now: float) -> tuple[list[Waiter], float | None]:
        """Grant every waiter that may go now, in priority order.

        Returns the granted waiters and the earliest time something else could be granted.
        """
        granted: list[Waiter] = []
        kept: list[Waiter] = []
        full: set[str] = set()
        next_time: float | None = None
        for waiter in self.waiters:
            if any(b.name in full for b in waiter.buckets):
                kept.append(waiter)
                continue
            ready = [b.next_free(now) for b in waiter.buckets]
            if max(ready) <= now:
                for bucket in waiter.buckets:
                    bucket.take()
                granted.append(waiter)
                continue
            kept.append(waiter)
            for bucket, at in zip(waiter.buckets, ready, strict=True):
                if at > now:
                    full.add(bucket.name)
                    if at != math.inf:
                        next_time = at if next_time is None else min(next_time, at)
        if granted:
            self.waiters = kept
            self._keys = [w.sort_key() for w in kept]
        return granted, next_time

    def release(self, waiter: Waiter, now: float) -> None:
        """The granted request got its response (or failed): start its slot's cool-down."""
        for bucket in waiter.buckets:
            bucket.give_back(now)

    def observe(
        self,
        path: str,
        category: str | None,
        *,
        limit: int | None,
        remaining: int | None,
        reset_at: float | None,
        now: float,
    ) -> None:
        """Adapt to the rate-limit headers of a response (``reset_at`` in the core's time)."""
        name = bucket_name(path, category)
        if name is None:
            return
        bucket = self.buckets_for(path, category)[0]
        # An explicitly configured limit is authoritative; Bybit's defaults follow the header
        # (accounts can be upgraded beyond them).
        overridden = name in self.config.overrides or path in self.config.overrides
        if limit is not None and limit > 0 and not overridden:
            bucket.capacity = limit
        # "Reset" is only meaningful when it lies clearly ahead: when the limit was not exceeded
        # Bybit sends ≈ now, which (with the clock offset's error) may look a few ms ahead.
        if (
            remaining is not None
            and remaining <= 0
            and reset_at is not None
            and reset_at > now + RESET_NOISE
        ):
            bucket.blocked_until = max(bucket.blocked_until, reset_at)

    def block(self, path: str, category: str | None, until: float) -> None:
        """Hold a bucket until ``until`` (after a 10006 / 429)."""
        for bucket in self.buckets_for(path, category):
            if bucket.name != IP_BUCKET or bucket_name(path, category) is None:
                bucket.blocked_until = max(bucket.blocked_until, until)


class Permit:
    """A granted slot; :meth:`release` it when the response arrived (or the request failed)."""

    __slots__ = ("_limiter", "_waiter", "waited")

    def __init__(self, limiter: RateLimiter | None, waiter: Waiter | None, waited: float) -> None:
        self._limiter = limiter
        self._waiter = waiter
        self.waited = waited

    def release(self) -> None:
        limiter, waiter = self._limiter, self._waiter
        self._limiter = self._waiter = None
        if limiter is not None and waiter is not None:
            limiter._release(waiter)


class RateLimiter:
    """Async front of :class:`LimiterCore`; ``clock`` is a monotonic clock in seconds.

    Requests enqueued in the same loop iteration are dispatched together (one scheduling pass
    per iteration, not one per request), so a burst of thousands costs little CPU.
    """

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic):
        self.core = LimiterCore(config)
        self.enabled = config.enabled
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pump_scheduled = False

    def now(self) -> float:
        return self._clock()

    async def acquire(
        self, path: str, category: str | None, priority: Priority | None = None
    ) -> Permit:
        """Wait for a slot; the returned permit must be released after the response."""
        if not self.enabled:
            return Permit(None, None, 0.0)
        start = self._clock()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        prio = default_priority(path) if priority is None else priority
        waiter = self.core.enqueue(path, category, prio, start, token=future)
        self._schedule_pump()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.core.release(waiter, self._clock())  # granted, then cancelled
            else:
                self.core.remove(waiter)
            self._schedule_pump()
            raise
        return Permit(self, waiter, self._clock() - start)

    def observe(
        self,
        path: str,
        category: str | None,
        *,
        limit: int | None,
        remaining: int | None,
        reset_in: float | None,
    ) -> None:
        now = self._clock()
        reset_at = None if reset_in is None else now + reset_in
        self.core.observe(
            path, category, limit=limit, remaining=remaining, reset_at=reset_at, now=now
        )

    def block_for(self, path: str, category: str | None, seconds: float) -> None:
        self.core.block(path, category, self._clock() + seconds)

    def pending(self) -> Sequence[Waiter]:
        return tuple(self.core.waiters)

    def _release(self, waiter: Waiter) -> None:
        self.core.release(waiter, self._clock())
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        now = self._clock()
        granted, next_time = self.core.dispatch(now)
        for waiter in granted:
            future = waiter.token
            assert isinstance(future, asyncio.Future)
            if future.done():  # cancelled while queued: hand the slot straight back
                self.core.release(waiter, now)
            else:
                future.set_result(None)
        if next_time is not None and (self._timer_at is None or next_time < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = next_time
            self._timer = asyncio.get_running_loop().call_later(
                max(0.0, next_time - now), self._on_timer
            )

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._pump()
