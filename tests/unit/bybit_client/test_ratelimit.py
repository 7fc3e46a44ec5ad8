"""Rate limiter: sliding windows per bucket, strict priority, adaptation to headers."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.adapters.bybit.config import RateLimitConfig
from order_manager.adapters.bybit.ratelimit import (
    LimiterCore,
    Priority,
    RateLimiter,
    bucket_name,
    configured_limit,
    default_priority,
)
from tests.helpers import eventually

CFG = RateLimitConfig(window_seconds=1.0, safety_margin=0.0)
CREATE = "/v5/order/create"
CANCEL = "/v5/order/cancel"
REALTIME = "/v5/order/realtime"


def drain(core: LimiterCore, now: float) -> list[int]:
    """Grant what may go at ``now``; each granted request is answered instantly."""
    granted, _ = core.dispatch(now)
    for waiter in granted:
        core.release(waiter, now)
    return [w.seq for w in granted]


def test_bybit_default_limits_per_endpoint_and_category() -> None:
    assert configured_limit(CREATE, "linear", {}) == 10
    assert configured_limit(CREATE, "spot", {}) == 20
    assert configured_limit("/v5/order/cancel-all", "option", {}) == 1
    assert configured_limit(REALTIME, "linear", {}) == 50
    assert configured_limit("/v5/market/tickers", "linear", {}) is None
    assert configured_limit(CREATE, "linear", {"/v5/order/create:linear": 3}) == 3
    assert bucket_name(CREATE, "linear") != bucket_name(CREATE, "spot")
    assert bucket_name(REALTIME, "linear") == bucket_name(REALTIME, "spot")


def test_priorities_by_endpoint() -> None:
    assert default_priority(CANCEL) is Priority.CANCEL
    assert default_priority("/v5/order/cancel-all") is Priority.CANCEL
    assert default_priority(CREATE) is Priority.TRADE
    assert default_priority("/v5/order/amend") is Priority.TRADE
    assert default_priority(REALTIME) is Priority.QUERY


def test_a_burst_is_released_at_the_limit_per_window() -> None:
    core = LimiterCore(CFG)
    for _ in range(25):
        core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
    assert len(drain(core, 0.0)) == 10
    assert drain(core, 0.5) == []
    granted, next_time = core.dispatch(0.99)
    assert granted == [] and next_time == 1.0
    assert len(drain(core, 1.0)) == 10
    assert len(drain(core, 2.0)) == 5
    assert core.waiters == []


def test_a_slot_is_held_until_a_window_after_the_response() -> None:
    core = LimiterCore(CFG)
    for _ in range(12):
        core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
    granted, _ = core.dispatch(0.0)
    assert len(granted) == 10
    # Nothing answered yet: only a response can free a slot, so there is no timer to set.
    assert core.dispatch(5.0) == ([], None)
    core.release(granted[0], 5.0)
    core.release(granted[1], 5.2)
    assert core.dispatch(5.5) == ([], 6.0)
    assert len(drain(core, 6.0)) == 1
    assert len(drain(core, 6.2)) == 1
    assert core.waiters == []


def test_buckets_are_independent_per_category() -> None:
    core = LimiterCore(CFG)
    for _ in range(15):
        core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
        core.enqueue(CREATE, "spot", Priority.TRADE, 0.0)
    granted, _ = core.dispatch(0.0)
    names = [w.buckets[0].name for w in granted]
    for waiter in granted:
        core.release(waiter, 0.0)
    assert names.count("/v5/order/create:linear") == 10
    assert names.count("/v5/order/create:spot") == 15


def test_higher_priority_goes_first_within_a_bucket() -> None:
    core = LimiterCore(
        RateLimitConfig(
            window_seconds=1.0,
            safety_margin=0.0,
            overrides={"/v5/order/create": 1, "/v5/order/cancel": 100},
            ip_limit=2,
            ip_window_seconds=1.0,
        )
    )
    # Fill the shared IP bucket, then queue a query, a create and a cancel.
    core.enqueue(REALTIME, "linear", Priority.QUERY, 0.0)
    core.enqueue(REALTIME, "linear", Priority.QUERY, 0.0)
    assert len(drain(core, 0.0)) == 2
    query = core.enqueue(REALTIME, "linear", Priority.QUERY, 0.1)
    create = core.enqueue(CREATE, "linear", Priority.TRADE, 0.2)
    cancel = core.enqueue(CANCEL, "linear", Priority.CANCEL, 0.3)
    assert drain(core, 0.5) == []
    assert drain(core, 1.0) == [cancel.seq, create.seq]
    assert drain(core, 2.0) == [query.seq]


def test_a_full_endpoint_bucket_does_not_hold_back_other_endpoints() -> None:
    core = LimiterCore(CFG)
    for _ in range(11):
        core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
    query = core.enqueue(REALTIME, "linear", Priority.QUERY, 0.0)
    granted = drain(core, 0.0)
    assert len(granted) == 11 and query.seq in granted


def test_headers_adapt_capacity_and_block_until_reset() -> None:
    core = LimiterCore(CFG)
    core.observe(CREATE, "linear", limit=2, remaining=1, reset_at=None, now=0.0)
    for _ in range(3):
        core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
    assert len(drain(core, 0.0)) == 2
    core.observe(CREATE, "linear", limit=2, remaining=0, reset_at=5.0, now=0.1)
    granted, next_time = core.dispatch(1.5)
    assert granted == [] and next_time == 5.0
    assert len(drain(core, 5.0)) == 1


def test_a_reset_timestamp_of_about_now_does_not_block() -> None:
    core = LimiterCore(CFG)
    core.observe(CREATE, "linear", limit=10, remaining=0, reset_at=1.004, now=1.0)
    core.enqueue(CREATE, "linear", Priority.TRADE, 1.0)
    assert len(drain(core, 1.0)) == 1


def test_an_explicit_override_is_not_replaced_by_the_header() -> None:
    core = LimiterCore(RateLimitConfig(overrides={CREATE: 100}, safety_margin=0.0))
    core.observe(CREATE, "linear", limit=10, remaining=9, reset_at=None, now=0.0)
    for _ in range(50):
        core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
    assert len(drain(core, 0.0)) == 50


def test_block_after_a_10006_holds_the_bucket() -> None:
    core = LimiterCore(CFG)
    core.block(CREATE, "linear", 3.0)
    core.enqueue(CREATE, "linear", Priority.TRADE, 0.0)
    other = core.enqueue(CREATE, "spot", Priority.TRADE, 0.0)
    assert drain(core, 0.0) == [other.seq]
    assert len(drain(core, 3.0)) == 1


@settings(max_examples=60, deadline=None)
@given(
    arrivals=st.lists(
        st.tuples(st.floats(0, 5), st.sampled_from([CREATE, CANCEL, REALTIME])),
        min_size=1,
        max_size=120,
    ),
    step=st.floats(0.01, 0.3),
    latency=st.floats(0.0, 0.2),
)
def test_no_window_ever_holds_more_than_the_limit(
    arrivals: list[tuple[float, str]], step: float, latency: float
) -> None:
    core = LimiterCore(CFG)
    pending = sorted(arrivals)
    grants: dict[str, list[float]] = {}
    now = 0.0
    while pending or core.waiters:
        while pending and pending[0][0] <= now:
            _, path = pending.pop(0)
            core.enqueue(path, "linear", default_priority(path), now)
        granted, next_time = core.dispatch(now)
        for waiter in granted:
            grants.setdefault(waiter.buckets[0].name, []).append(now)
            core.release(waiter, now + latency)
        candidates = [t for t in (next_time, pending[0][0] if pending else None) if t is not None]
        now = max(now + step, min(candidates)) if candidates else now + step
    total = sum(len(v) for v in grants.values())
    assert total == len(arrivals)
    for name, times in grants.items():
        limit = 50 if name == REALTIME else 10
        for i, t in enumerate(times):
            in_window = [u for u in times[i:] if u < t + 1.0]
            assert len(in_window) <= limit, (name, t)


async def test_async_limiter_serves_in_priority_order() -> None:
    fake = [0.0]
    limiter = RateLimiter(
        RateLimitConfig(
            overrides={"/v5/order/create": 1, "/v5/order/cancel": 1},
            ip_limit=1,
            ip_window_seconds=1000.0,
        ),
        clock=lambda: fake[0],
    )
    permit = await limiter.acquire(REALTIME, "linear")  # fills the IP bucket
    permit.release()
    order: list[str] = []

    async def go(path: str) -> None:
        await limiter.acquire(path, "linear")
        order.append(path)

    tasks = [asyncio.create_task(go(p)) for p in (REALTIME, CREATE, CANCEL)]
    await eventually(lambda: len(limiter.pending()) == 3, what="three queued requests")
    fake[0] = 2000.0
    limiter._schedule_pump()
    await asyncio.wait_for(tasks[2], 1)
    assert order == [CANCEL]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert limiter.pending() == ()
