"""Blocking pybit calls from async tests, without letting pybit hang the test process.

pybit is synchronous and some of its calls wait without a limit (its WebSocket `subscribe`
loops until a connection is open). `asyncio.to_thread` would run them on the loop's executor,
whose threads the interpreter joins at exit: one stuck call then keeps pytest alive after its
summary, and CI with it. Here each call gets its own daemon thread and a deadline, so a hang
becomes a test failure and never outlives the session.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

CALL_DEADLINE_S = 30.0


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in a daemon thread; fail after CALL_DEADLINE_S seconds."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting test, not swallowed
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    name = f"pybit-{getattr(fn, '__name__', 'call')}"
    threading.Thread(target=run, name=name, daemon=True).start()
    async with asyncio.timeout(CALL_DEADLINE_S):
        return await future
