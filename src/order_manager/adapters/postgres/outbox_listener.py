"""LISTEN on channel `outbox` (implements `services.ports.outbox.OutboxNotifications`).

Schema revision 0001 fires `pg_notify('outbox', '')` once per INSERT statement into `outbox`;
PostgreSQL delivers it when the inserting transaction commits, so a relay blocked in `wait`
wakes within milliseconds of the commit. The listener owns one dedicated connection (LISTEN
does not work through a pool that hands connections around). When that connection is lost,
`wait` reconnects and reports a wake-up, because notifications sent meanwhile are gone and the
relay must sweep the table to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

log = structlog.get_logger(__name__)

CHANNEL = "outbox"


class PgOutboxNotifications:
    def __init__(self, dsn: str, *, channel: str = CHANNEL) -> None:
        self._dsn = dsn
        self._channel = channel
        self._conn: asyncpg.Connection | None = None
        self._event = asyncio.Event()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, _payload: object) -> None:
        self._event.set()

    def _on_terminate(self, _conn: object) -> None:
        self._conn = None
        self._event.set()

    async def start(self) -> None:
        """Connect and LISTEN; raises when the database is unreachable."""
        if self._conn is not None and not self._conn.is_closed():
            return
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "order-manager.outbox-listener"}
        )
        await conn.add_listener(self._channel, self._on_notify)
        conn.add_termination_listener(self._on_terminate)
        self._conn = conn
        # Anything committed before LISTEN took effect is found by the caller's next sweep.
        self._event.set()

    async def wait(self, max_wait: float) -> bool:
        if self._conn is None or self._conn.is_closed():
            try:
                await self.start()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox listener cannot reconnect", error=repr(exc))
                await asyncio.sleep(min(max_wait, 1.0))
                return True  # sweep anyway: polling is the safety net
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), max_wait)
        woke = self._event.is_set()
        self._event.clear()
        return woke

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()
