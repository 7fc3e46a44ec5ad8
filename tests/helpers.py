"""Small test helpers shared by the suites.

`free_port` is a TCP port nobody listens on right now (for private services and for "the
broker is down" tests). `eventually` polls a condition with a deadline. It is for state that
offers no event to await (a row in another process's database, a simulator's REST view); where
an event, a queue or a future exists, await that instead. `record_create_call` records one
successful ``order.create`` exchange call on an orders repository (the audit row tests).
`database_fails` makes the real database refuse chosen writes for a while (an outage, or a
process dying at that write).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from order_manager.services.ports.orders import OrderRepository

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - a deadline that names what was awaited
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Return the first truthy value of `probe()`; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        result = probe()
        last = await result if inspect.isawaitable(result) else result
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


async def until(
    probe: Callable[[], Awaitable[object]],
    *,
    what: str,
    within: float = 10.0,
    interval: float = 0.02,
) -> None:
    """`eventually` for async probes whose value only matters as true or false."""

    async def truthy() -> bool:
        return bool(await probe())

    typed: Callable[[], Awaitable[bool] | bool] = truthy
    await eventually(typed, timeout=within, interval=interval, what=what)


async def record_create_call(
    orders: OrderRepository, link: str, *, order_uuid: str | None = None
) -> None:
    """One successful ``order.create`` call for orderLinkId ``link`` (its audit row: response
    ``{"orderId": "id-<link>", "message": "OK"}``, 1.5 ms, trace ``t-audit``)."""
    await orders.record_exchange_call(
        action="order.create",
        request={"orderLinkId": link},
        response={"orderId": f"id-{link}"},
        ok=True,
        ret_code=0,
        error_kind=None,
        message="OK",
        duration_ms=1.5,
        trace_id="t-audit",
        signal_id=None,
        order_uuid=order_uuid,
        order_link_id=link,
        is_dry_run=False,
    )


@contextlib.asynccontextmanager
async def database_fails(pool: asyncpg.Pool, *whens: str) -> AsyncIterator[None]:
    """Inside: the real database refuses every write each of ``whens`` names (a trigger timing
    and event, e.g. ``BEFORE INSERT ON orders FOR EACH ROW``) with 'the process died here'."""
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE FUNCTION om_test_die() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the process died here'; END $$"
        )
        tables = [when.split(" ON ", 1)[1].split()[0] for when in whens]
        for n, when in enumerate(whens):
            await conn.execute(
                f"CREATE TRIGGER om_test_die_{n} {when} EXECUTE FUNCTION om_test_die()"
            )
        try:
            yield
        finally:
            for n, table in enumerate(tables):
                await conn.execute(f"DROP TRIGGER om_test_die_{n} ON {table}")
            await conn.execute("DROP FUNCTION om_test_die()")
