"""Lanes: strict FIFO per key, parallel across keys, bounded with backpressure, graceful close."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.services.lanes import Lanes, LanesClosedError
from tests.helpers import eventually


async def test_items_of_one_key_run_in_submission_order() -> None:
    seen: list[int] = []

    async def handler(item: int) -> None:
        await asyncio.sleep(0)  # yield so that interleaving is possible
        seen.append(item)

    lanes: Lanes[str, int] = Lanes(handler, capacity=1000)
    for i in range(100):
        await lanes.submit("BTCUSDT", i)
    await lanes.drain()
    assert seen == list(range(100))


@settings(max_examples=60, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["A", "B", "C", "D", "E"]), st.integers(0, 3)),
        min_size=1,
        max_size=80,
    ),
    capacity=st.integers(1, 6),
)
def test_per_key_order_holds_for_any_interleaving(
    plan: list[tuple[str, int]], capacity: int
) -> None:
    """Whatever the interleaving, yields inside handlers and lane bound: per-key FIFO holds."""

    async def scenario() -> tuple[dict[str, list[int]], dict[str, list[int]], int]:
        seen: dict[str, list[int]] = defaultdict(list)
        running: set[str] = set()
        overlaps = 0

        async def handler(item: tuple[str, int, int]) -> None:
            nonlocal overlaps
            key, index, yields = item
            if key in running:
                overlaps += 1
            running.add(key)
            for _ in range(yields):
                await asyncio.sleep(0)
            seen[key].append(index)
            running.discard(key)

        lanes: Lanes[str, tuple[str, int, int]] = Lanes(handler, capacity=capacity)
        expected: dict[str, list[int]] = defaultdict(list)
        for index, (key, yields) in enumerate(plan):
            expected[key].append(index)
            await lanes.submit(key, (key, index, yields))
        await lanes.drain()
        return seen, expected, overlaps

    seen, expected, overlaps = asyncio.run(scenario())
    assert seen == expected
    assert overlaps == 0


async def test_different_keys_run_in_parallel() -> None:
    """A handler on key A waits for one on key B: only possible when lanes run concurrently."""
    b_started = asyncio.Event()
    done: list[str] = []

    async def handler(item: str) -> None:
        if item == "a":
            await b_started.wait()
        else:
            b_started.set()
        done.append(item)

    lanes: Lanes[str, str] = Lanes(handler, capacity=4)
    await lanes.submit("A", "a")
    await lanes.submit("B", "b")
    await asyncio.wait_for(lanes.drain(), timeout=5)
    assert done == ["b", "a"]


async def test_same_key_never_runs_concurrently() -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def handler(item: int) -> None:
        started.append(item)
        await release.wait()

    lanes: Lanes[str, int] = Lanes(handler, capacity=10)
    for i in range(3):
        await lanes.submit("K", i)
    await eventually(lambda: started == [0], what="first item started")
    assert lanes.pending("K") == 3
    assert started == [0]
    release.set()
    await lanes.drain()
    assert started == [0, 1, 2]


async def test_full_lane_blocks_submit_until_room() -> None:
    release = asyncio.Event()
    handled: list[int] = []

    async def handler(item: int) -> None:
        await release.wait()
        handled.append(item)

    lanes: Lanes[str, int] = Lanes(handler, capacity=2)
    await lanes.submit("K", 1)
    await lanes.submit("K", 2)
    third = asyncio.create_task(lanes.submit("K", 3))
    await eventually(lambda: lanes.blocked_submitters == 1, what="submit blocked")
    assert not third.done()
    assert lanes.pending("K") == 2
    # Another key is not affected by K being full.
    await lanes.submit("OTHER", 99)
    release.set()
    await asyncio.wait_for(third, timeout=5)
    await lanes.drain()
    assert sorted(handled) == [1, 2, 3, 99]
    assert [i for i in handled if i != 99] == [1, 2, 3]


async def test_close_finishes_in_flight_and_abandons_the_rest() -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    handled: list[int] = []
    abandoned: list[int] = []

    async def handler(item: int) -> None:
        if item == 0:
            started.set()
            await release.wait()
        handled.append(item)

    async def on_abandon(item: int) -> None:
        abandoned.append(item)

    lanes: Lanes[str, int] = Lanes(handler, capacity=10, on_abandon=on_abandon)
    for i in range(4):
        await lanes.submit("K", i)
    await asyncio.wait_for(started.wait(), timeout=5)
    lanes.close()
    closing = asyncio.create_task(lanes.wait_closed())
    release.set()
    await asyncio.wait_for(closing, timeout=5)
    assert handled == [0]
    assert abandoned == [1, 2, 3]
    with pytest.raises(LanesClosedError):
        await lanes.submit("K", 5)


async def test_close_wakes_blocked_submitters_with_an_error() -> None:
    release = asyncio.Event()

    async def handler(item: int) -> None:
        await release.wait()

    lanes: Lanes[str, int] = Lanes(handler, capacity=1)
    await lanes.submit("K", 1)
    blocked = asyncio.create_task(lanes.submit("K", 2))
    await eventually(lambda: lanes.blocked_submitters == 1, what="submit blocked")
    lanes.close()
    with pytest.raises(LanesClosedError):
        await asyncio.wait_for(blocked, timeout=5)
    release.set()
    await asyncio.wait_for(lanes.wait_closed(), timeout=5)
    assert lanes.pending() == 0


async def test_a_failing_handler_does_not_stop_its_lane() -> None:
    handled: list[int] = []

    async def handler(item: int) -> None:
        if item == 1:
            raise ValueError("boom")
        handled.append(item)

    lanes: Lanes[str, int] = Lanes(handler, capacity=10)
    for i in range(3):
        await lanes.submit("K", i)
    await lanes.drain()
    assert handled == [0, 2]


async def test_idle_lanes_release_their_worker() -> None:
    async def handler(item: int) -> None:
        return None

    lanes: Lanes[str, int] = Lanes(handler, capacity=2)
    for key in ("A", "B", "C"):
        await lanes.submit(key, 1)
    await lanes.drain()
    await eventually(lambda: lanes.active_keys() == [], what="idle lanes removed")


def test_capacity_must_be_positive() -> None:
    async def handler(item: int) -> None:
        return None

    with pytest.raises(ValueError, match="capacity"):
        Lanes(handler, capacity=0)


@settings(max_examples=50, deadline=None)
@given(
    plan=st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=40),
    stop_after=st.integers(0, 40),
    capacity=st.integers(1, 50),
)
def test_close_accounts_for_every_item_exactly_once(
    plan: list[str], stop_after: int, capacity: int
) -> None:
    """Handled + abandoned = submitted, once each; per key the handled items are a prefix."""

    async def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[int]]:
        handled: list[tuple[str, int]] = []
        abandoned: list[tuple[str, int]] = []
        accepted: list[int] = []
        handled_enough = asyncio.Event()

        async def handler(item: tuple[str, int]) -> None:
            await asyncio.sleep(0)
            handled.append(item)
            if len(handled) >= stop_after:
                handled_enough.set()

        async def on_abandon(item: tuple[str, int]) -> None:
            abandoned.append(item)

        lanes: Lanes[str, tuple[str, int]] = Lanes(
            handler, capacity=capacity, on_abandon=on_abandon
        )

        async def produce() -> None:
            for index, key in enumerate(plan):
                try:
                    await lanes.submit(key, (key, index))
                except LanesClosedError:
                    return
                accepted.append(index)

        producer = asyncio.create_task(produce())
        if stop_after >= len(plan):
            await producer
            await lanes.drain()
        else:
            await handled_enough.wait()
        lanes.close()
        await lanes.wait_closed()
        await producer
        return handled, abandoned, accepted

    handled, abandoned, accepted = asyncio.run(scenario())
    indices = sorted(i for _, i in handled + abandoned)
    assert indices == accepted  # each accepted item exactly once, nothing else
    for key in set(plan):
        mine = [i for i in accepted if plan[i] == key]
        done = [i for k, i in handled if k == key]
        assert done == mine[: len(done)]  # FIFO prefix per key
