"""StoreFreshness: waiting for the tracker's next commit, and trusting the store."""

from __future__ import annotations

import asyncio

from order_manager.services.store_freshness import StoreFreshness
from tests.helpers import eventually


async def test_a_commit_after_the_noted_version_ends_the_wait_at_once() -> None:
    freshness = StoreFreshness()
    noted = freshness.version
    freshness.committed()  # lands between the reader's read and its wait
    assert await freshness.wait_commit(noted, 0) is True
    assert freshness.waiting == 0


async def test_a_waiting_lane_wakes_on_the_next_commit() -> None:
    freshness = StoreFreshness()
    noted = freshness.version
    waiter = asyncio.create_task(freshness.wait_commit(noted, 30))
    await eventually(lambda: freshness.waiting == 1, what="the lane waits")
    assert not waiter.done()
    freshness.committed()
    assert await asyncio.wait_for(waiter, 5) is True
    assert freshness.version == noted + 1
    assert freshness.waiting == 0


async def test_no_commit_within_the_time_is_false() -> None:
    freshness = StoreFreshness()
    assert await freshness.wait_commit(freshness.version, 0) is False
    assert await freshness.wait_commit(freshness.version, 0.01) is False
    assert freshness.waiting == 0


async def test_one_lane_giving_up_does_not_cancel_the_others_wait() -> None:
    freshness = StoreFreshness()
    noted = freshness.version
    patient = asyncio.create_task(freshness.wait_commit(noted, 30))
    await eventually(lambda: freshness.waiting == 1, what="the patient lane waits")
    assert await freshness.wait_commit(noted, 0.01) is False  # shares the same future
    freshness.committed()
    assert await asyncio.wait_for(patient, 5) is True


async def test_every_commit_wakes_the_lanes_waiting_then_and_later_ones_wait_anew() -> None:
    freshness = StoreFreshness()
    first = asyncio.create_task(freshness.wait_commit(freshness.version, 30))
    await eventually(lambda: freshness.waiting == 1, what="first lane waits")
    freshness.committed()
    assert await asyncio.wait_for(first, 5) is True
    noted = freshness.version
    second = asyncio.create_task(freshness.wait_commit(noted, 30))
    await eventually(lambda: freshness.waiting == 1, what="second lane waits")
    assert not second.done()  # the earlier commit does not count for it
    freshness.committed()
    assert await asyncio.wait_for(second, 5) is True


def test_trusted_only_when_no_reason_is_left() -> None:
    freshness = StoreFreshness(untrusted=("stream",))
    assert not freshness.trusted
    assert freshness.reasons == {"stream"}
    freshness.distrust("reconciling")
    freshness.trust("stream")
    assert not freshness.trusted  # still reconciling
    freshness.trust("reconciling")
    assert freshness.trusted
    freshness.trust("never-held")  # harmless
    assert freshness.trusted
    freshness.distrust("stream")
    freshness.distrust("stream")  # one reason, held once
    freshness.trust("stream")
    assert freshness.trusted


async def test_a_lane_wakes_only_for_a_commit_naming_its_symbol() -> None:
    freshness = StoreFreshness()
    noted = freshness.version
    btc = asyncio.create_task(freshness.wait_commit(noted, 30, "BTCUSDT"))
    await eventually(lambda: freshness.waiting == 1, what="the BTCUSDT lane waits")
    freshness.committed({"ETHUSDT"})  # another symbol's fill: nothing to read again for
    eth_seen = await freshness.wait_commit(noted, 0, "ETHUSDT")
    assert eth_seen is True
    assert not btc.done() and freshness.waiting == 1
    freshness.committed({"ETHUSDT", "BTCUSDT"})
    assert await asyncio.wait_for(btc, 5) is True


async def test_a_commit_of_unknown_symbols_counts_for_every_symbol() -> None:
    freshness = StoreFreshness()
    noted = freshness.version
    freshness.committed({"ETHUSDT"})
    assert await freshness.wait_commit(noted, 0, "BTCUSDT") is False
    sol = asyncio.create_task(freshness.wait_commit(freshness.version, 30, "SOLUSDT"))
    await eventually(lambda: freshness.waiting == 1, what="the SOLUSDT lane waits")
    freshness.committed()  # what it touched is not known
    assert await asyncio.wait_for(sol, 5) is True
    assert await freshness.wait_commit(noted, 0, "BTCUSDT") is True
    assert await freshness.wait_commit(noted, 0) is True  # any commit
