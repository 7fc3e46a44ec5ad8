"""SharedRead: concurrent callers share one request, never one sent before they asked."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.adapters.bybit.shared_read import SharedRead


async def settle() -> None:
    """Let every ready task run (everything here is in memory: no I/O, no timers)."""
    for _ in range(20):
        await asyncio.sleep(0)


@dataclass
class Exchange:
    """A read whose answers the test releases one by one; each answer names its request.

    With ``limited``, a request first waits for the test to ``let_go`` (the client-side rate
    limiter) and only then is sent (``sending()``, then the clock reads its send time)."""

    clock: itertools.count[int] = field(default_factory=itertools.count)
    in_flight: list[tuple[int, asyncio.Future[int]]] = field(default_factory=list)
    sent_at: dict[int, int] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    most_in_flight: int = 0
    limited: bool = False
    held: list[asyncio.Future[None]] = field(default_factory=list)

    async def fetch(self, key: str, trace_id: str, sending: Callable[[], None]) -> int:
        if self.limited:
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.held.append(room)
            await room
        sending()
        request = len(self.sent_at)
        self.sent_at[request] = next(self.clock)
        self.trace_ids.append(trace_id)
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.in_flight.append((request, answer))
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        return await answer

    def let_go(self) -> None:
        self.held.pop(0).set_result(None)

    def answer(self, error: Exception | None = None) -> None:
        request, future = self.in_flight.pop(0)
        if error is None:
            future.set_result(request)
        else:
            future.set_exception(error)


async def test_callers_waiting_together_share_one_request() -> None:
    exchange = Exchange()
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
    callers = [asyncio.create_task(shared.get("w", f"t{i}")) for i in range(5)]
    await settle()
    exchange.answer()
    assert await asyncio.gather(*callers) == [0] * 5
    assert (shared.requests, shared.answers) == (1, 5)
    assert exchange.trace_ids == ["t0"]  # the first caller's trace id


async def test_a_caller_arriving_during_a_request_gets_the_next_one() -> None:
    exchange = Exchange()
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
    early = asyncio.create_task(shared.get("w", "early"))
    await settle()  # request 0 is in flight
    late = [asyncio.create_task(shared.get("w", f"late{i}")) for i in range(3)]
    await settle()
    assert len(exchange.in_flight) == 1  # nothing is sent while request 0 is out
    exchange.answer()
    assert await early == 0
    await settle()
    assert len(exchange.in_flight) == 1  # request 1: sent after every late caller asked
    assert not any(task.done() for task in late)
    exchange.answer()
    assert await asyncio.gather(*late) == [1, 1, 1]
    assert shared.requests == 2


async def test_callers_asking_while_the_request_waits_for_the_limiter_join_it() -> None:
    exchange = Exchange(limited=True)
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
    first = asyncio.create_task(shared.get("w", "first"))
    await settle()  # request 0 waits for the limiter: not sent yet
    joined = [asyncio.create_task(shared.get("w", f"j{i}")) for i in range(3)]
    await settle()
    exchange.let_go()
    await settle()  # request 0 is out now: a caller from here on waits for request 1
    late = asyncio.create_task(shared.get("w", "late"))
    await settle()
    exchange.answer()
    assert await asyncio.gather(first, *joined) == [0, 0, 0, 0]
    await settle()
    assert not late.done()
    exchange.let_go()
    await settle()
    exchange.answer()
    assert await late == 1
    assert (shared.requests, shared.answers) == (2, 5)


async def test_a_request_failing_before_it_was_sent_fails_its_round_only() -> None:
    exchange = Exchange(limited=True)
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
    doomed = [asyncio.create_task(shared.get("w", "t")) for _ in range(2)]
    await settle()
    exchange.held.pop(0).set_exception(TimeoutError("limiter gave up"))
    for task in doomed:
        with pytest.raises(TimeoutError):
            await task
    again = asyncio.create_task(shared.get("w", "t"))
    await settle()
    exchange.let_go()
    await settle()
    exchange.answer()
    assert await again == 0


async def test_an_error_reaches_every_caller_of_its_round_and_the_next_round_retries() -> None:
    exchange = Exchange()
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
    failing = [asyncio.create_task(shared.get("w", "t")) for _ in range(2)]
    await settle()
    exchange.answer(ConnectionError("503"))
    for task in failing:
        with pytest.raises(ConnectionError, match="503"):
            await task
    again = asyncio.create_task(shared.get("w", "t"))
    await settle()
    exchange.answer()
    assert await again == 1


async def test_a_cancelled_caller_does_not_cancel_the_request_of_the_others() -> None:
    exchange = Exchange()
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
    quitter = asyncio.create_task(shared.get("w", "quitter"))
    stayer = asyncio.create_task(shared.get("w", "stayer"))
    await settle()
    quitter.cancel()
    await settle()
    exchange.answer()
    assert await stayer == 0
    assert quitter.cancelled()


async def test_keys_do_not_share() -> None:
    exchange = Exchange()
    shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="positions")
    a = asyncio.create_task(shared.get("linear", "t"))
    b = asyncio.create_task(shared.get("spot", "t"))
    await settle()
    assert len(exchange.in_flight) == 2  # one per key, concurrently
    exchange.answer()
    exchange.answer()
    assert sorted(await asyncio.gather(a, b)) == [0, 1]


@settings(max_examples=80, deadline=None)
@given(st.booleans(), st.lists(st.sampled_from(["ask", "let_go", "answer"]), max_size=40))
def test_every_answer_comes_from_a_request_sent_after_the_ask(
    limited: bool, script: list[str]
) -> None:
    async def run() -> None:
        exchange = Exchange(limited=limited)
        shared: SharedRead[str, int] = SharedRead(exchange.fetch, name="wallet")
        asked: list[tuple[int, asyncio.Task[int]]] = []
        for step in script:
            if step == "ask":
                asked.append((next(exchange.clock), asyncio.create_task(shared.get("w", "t"))))
            elif step == "let_go" and exchange.held:
                exchange.let_go()
            elif step == "answer" and exchange.in_flight:
                exchange.answer()
            await settle()
            assert len(exchange.in_flight) + len(exchange.held) <= 1  # one per key at a time
        while exchange.in_flight or exchange.held:  # release what is left
            if exchange.held:
                exchange.let_go()
            else:
                exchange.answer()
            await settle()
        for asked_at, task in asked:
            request = await task
            assert exchange.sent_at[request] > asked_at
        assert shared.requests <= len(asked)
        assert exchange.most_in_flight <= 1

    asyncio.run(run())
