"""PostgreSQL unit of work: one pooled connection, one transaction, every repository on it.

Implements `order_manager.services.ports.uow.UnitOfWork` structurally. Leaving the `async with`
block without `commit()` rolls the transaction back; an exception always rolls back.
`commit()` first writes what the transaction queued — its audit rows (`orders_repo`) and outbox
events (`outbox_repo`) — in ONE statement, then commits.

With `atomic=False` there is no transaction at all (see the port): each statement autocommits,
`commit()` has nothing to do, and the outbox refuses events (they would have nothing to commit
with). An exchange call's audit row recorded there rides in the executor's answer statement
(`answer_untouched`) when one follows; otherwise it is written when the block is left — also
when it is left by an exception, so that no call goes unrecorded.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from order_manager.adapters.postgres.orders_repo import PgOrderRepository
from order_manager.adapters.postgres.outbox_repo import PgOutboxRepository
from order_manager.adapters.postgres.signals_repo import PgSignalRepository
from order_manager.adapters.postgres.tracking_repo import PgTrackingRepository

log = structlog.get_logger(__name__)


class PostgresUnitOfWork:
    signals: PgSignalRepository
    orders: PgOrderRepository
    outbox: PgOutboxRepository
    tracking: PgTrackingRepository

    def __init__(self, pool: asyncpg.Pool, *, atomic: bool = True) -> None:
        self._pool = pool
        self._atomic = atomic
        self._conn: PoolConnectionProxy | None = None
        self._tx: Transaction | None = None
        self._committed = False

    @property
    def connection(self) -> asyncpg.Connection:
        """The transaction's connection (for repositories and tests; not for services)."""
        if self._conn is None:
            raise RuntimeError("unit of work is not open")
        return self._conn  # type: ignore[return-value]

    async def __aenter__(self) -> Self:
        self._conn = await self._pool.acquire()
        if self._atomic:
            self._tx = self._conn.transaction()
            try:
                await self._tx.start()
            except BaseException:
                self._tx = None
                await self._pool.release(self._conn)
                self._conn = None
                raise
        conn = self.connection
        self.signals = PgSignalRepository(conn)
        self.orders = PgOrderRepository(conn, in_transaction=self._atomic)
        self.outbox = PgOutboxRepository(conn, in_transaction=self._atomic)
        self.tracking = PgTrackingRepository(conn)
        self._committed = False
        return self

    async def commit(self) -> None:
        if self._conn is None:
            raise RuntimeError("unit of work is not open")
        if self._tx is None:  # atomic=False: every statement has committed already
            self._committed = True
            return
        # what the transaction queued — audit rows and outbox events — in one statement
        await self.outbox.flush(audit=self.orders.take_audit())
        await self._tx.commit()
        self._committed = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, tx = self._conn, self._tx
        self._conn = None
        self._tx = None
        if conn is None:
            return
        try:
            if tx is None:
                await self._write_audit(failing=exc is not None)
            elif not self._committed:
                try:
                    await tx.rollback()
                except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    # The transaction's state is unknown (a commit or query was interrupted,
                    # e.g. by cancellation, or the connection broke). Nothing was committed that
                    # we know of; the connection is discarded rather than reused half-way (a
                    # proxy whose connection is already gone refuses even that: nothing to do).
                    with contextlib.suppress(asyncpg.InterfaceError):
                        conn.terminate()
        finally:
            await self._pool.release(conn)

    async def _write_audit(self, *, failing: bool) -> None:
        """``atomic=False``: the audit rows no statement carried. While the block is failing
        (often the database itself), a failure here is logged rather than raised over the
        block's own exception."""
        try:
            await self.orders.write_audit()
        except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError) as error:
            if not failing:
                raise
            log.error("audit rows not written", error=repr(error))


class PostgresUnitOfWorkFactory:
    """`UnitOfWorkFactory` over a pool: `async with factory() as uow: ...`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def __call__(self, *, atomic: bool = True) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self._pool, atomic=atomic)
