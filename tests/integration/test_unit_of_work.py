"""The unit of work commits everything together or nothing (real PostgreSQL)."""

from collections.abc import AsyncIterator

import asyncpg
import pytest

from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from tests.helpers import record_create_call


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url, min_size=1, max_size=2)
    yield p
    await p.close()


async def _count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM audit_log"))


async def _insert(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO audit_log (kind, action) VALUES ('system', 'uow-test')")


async def test_commit_persists(pool: asyncpg.Pool) -> None:
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        await _insert(uow.connection)
        await uow.commit()
    assert await _count(pool) == 1


async def test_leaving_without_commit_rolls_back(pool: asyncpg.Pool) -> None:
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        await _insert(uow.connection)
    assert await _count(pool) == 0


async def test_exception_rolls_back_and_propagates(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="boom"):
        async with PostgresUnitOfWorkFactory(pool)() as uow:
            await _insert(uow.connection)
            raise ValueError("boom")
    assert await _count(pool) == 0


async def test_broken_connection_inside_the_block_keeps_the_original_error(
    pool: asyncpg.Pool,
) -> None:
    """A transaction whose connection died (as after a cancelled commit) is discarded on exit:
    the caller sees its own error, not a rollback failure, and the pool stays usable."""
    with pytest.raises(ValueError, match="after the break"):
        async with PostgresUnitOfWorkFactory(pool)() as uow:
            await _insert(uow.connection)
            uow.connection.terminate()
            raise ValueError("after the break")
    assert await _count(pool) == 0
    async with PostgresUnitOfWorkFactory(pool)() as uow:
        await _insert(uow.connection)
        await uow.commit()
    assert await _count(pool) == 1


async def test_released_connection_is_never_inside_a_transaction(pool: asyncpg.Pool) -> None:
    """The pool's reset does no round trip; asyncpg still rolls back what a holder left open,
    so the next holder starts clean and nothing uncommitted survives."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await _insert(conn)
        # released without commit or rollback
    for _ in range(2):  # max_size=2: whichever connection comes back
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
    assert await _count(pool) == 0


async def test_without_a_transaction_each_statement_commits_and_events_are_refused(
    pool: asyncpg.Pool,
) -> None:
    """atomic=False: no BEGIN/COMMIT — a write stands even when the block then fails, and an
    outbox event (which must commit with its change) is refused outright."""
    factory = PostgresUnitOfWorkFactory(pool)
    with pytest.raises(ValueError, match="later"):
        async with factory(atomic=False) as uow:
            await _insert(uow.connection)
            assert not uow.connection.is_in_transaction()
            raise ValueError("later")
    assert await _count(pool) == 1
    async with factory(atomic=False) as uow:
        with pytest.raises(RuntimeError, match="atomic=True"):
            await uow.outbox.add_event(
                topic="t",
                event_type="created",
                aggregate_type="order",
                aggregate_id="a",
                payload={},
                trace_id=None,
                is_dry_run=False,
            )
        await uow.commit()  # accepted: nothing to do
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_audit_rows_and_events_are_written_with_the_commit(pool: asyncpg.Pool) -> None:
    """A transaction's audit rows and outbox events are queued and written in one statement at
    commit, in the order recorded; a rollback writes neither; without a transaction the audit
    row waits for a statement to carry it (the executor's answer) and is written when the unit
    of work is left if none did."""
    factory = PostgresUnitOfWorkFactory(pool)
    async with factory() as uow:
        await record_create_call(uow.orders, "a-1")
        assert await _count(pool) == 0  # queued, not written yet
    assert await _count(pool) == 0  # rolled back

    async with factory() as uow:
        for link in ("b-1", "b-2", "b-3"):
            await record_create_call(uow.orders, link)
        await uow.outbox.add_event(
            topic="t",
            event_type="created",
            aggregate_type="order",
            aggregate_id="agg",
            payload={},
            trace_id="t-audit",
            is_dry_run=False,
        )
        await uow.commit()
    rows = await pool.fetch("SELECT entity_id, response, duration_ms FROM audit_log ORDER BY id")
    assert [r["entity_id"] for r in rows] == ["b-1", "b-2", "b-3"]
    assert rows[0]["response"] == {"orderId": "id-b-1", "message": "OK"}
    assert rows[0]["duration_ms"] == 1.5
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1

    async with factory(atomic=False) as uow:
        await record_create_call(uow.orders, "c-1")
        assert await _count(pool) == 3  # no transaction: queued for a statement to carry it
    assert await _count(pool) == 4  # none did: written when the block was left
