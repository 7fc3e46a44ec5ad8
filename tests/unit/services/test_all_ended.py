"""`executor.all_ended`: concurrent legs all end before an error reaches the caller."""

from __future__ import annotations

import asyncio

import pytest

from order_manager.services.executor import all_ended


async def test_results_come_in_call_order() -> None:
    async def leg(n: int) -> int:
        return n

    assert await all_ended(leg(n) for n in (3, 1, 2)) == [3, 1, 2]


async def test_an_error_is_raised_only_after_the_other_legs_ended() -> None:
    release, failing = asyncio.Event(), asyncio.Event()
    ended: list[str] = []

    async def fails() -> str:
        failing.set()
        raise RuntimeError("leg 1 failed")

    async def slow() -> str:
        await release.wait()
        ended.append("slow")
        return "slow"

    waiting = asyncio.create_task(all_ended([fails(), slow()]))
    await failing.wait()  # leg 1 has failed; the call must still be waiting for leg 2
    await asyncio.wait({waiting}, timeout=0)
    assert not waiting.done()
    release.set()
    with pytest.raises(RuntimeError, match="leg 1 failed"):
        await waiting
    assert ended == ["slow"]


async def test_the_first_error_in_call_order_is_raised() -> None:
    async def fails(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match="first"):
        await all_ended([fails("first"), fails("second")])
