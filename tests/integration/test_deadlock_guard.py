"""The suite's deadlock guard (`tests.conftest.no_deadlock_logged`) sees a real deadlock.

Two transactions on a real PostgreSQL lock two rows in opposite orders; PostgreSQL aborts one.
The guard, reading the server's log from before the deadlock, must fail the test that ran it —
and must stay quiet for a window in which nothing was deadlocked.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.conftest import (
    no_deadlock_logged,
    pg_admin_execute,
    pg_url_with_db,
    server_log_size,
)


async def test_the_guard_fails_a_test_during_which_postgres_broke_a_deadlock(
    pg_admin_url: str,
) -> None:
    name = f"om_t_{uuid.uuid4().hex[:16]}"
    await pg_admin_execute(pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        url = pg_url_with_db(pg_admin_url, name)
        first, second = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            await first.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
            await first.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
            since = await server_log_size(pg_admin_url)
            assert since is not None, "the test server's log must be readable"
            await no_deadlock_logged(pg_admin_url, since)  # nothing yet: quiet

            async def lock(conn: asyncpg.Connection, a: int, b: int, both: asyncio.Barrier) -> None:
                async with conn.transaction():
                    await conn.execute("UPDATE t SET v = v + 1 WHERE id = $1", a)
                    await both.wait()  # each holds its first row before taking the other's
                    await conn.execute("UPDATE t SET v = v + 1 WHERE id = $1", b)

            both = asyncio.Barrier(2)
            results = await asyncio.gather(
                lock(first, 1, 2, both), lock(second, 2, 1, both), return_exceptions=True
            )
            assert sum(isinstance(r, asyncpg.DeadlockDetectedError) for r in results) == 1

            with pytest.raises(pytest.fail.Exception, match="deadlock detected"):
                await no_deadlock_logged(pg_admin_url, since)
        finally:
            await first.close()
            await second.close()
    finally:
        await pg_admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
