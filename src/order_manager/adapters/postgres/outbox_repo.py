"""PostgreSQL implementation of the outbox port (`order_manager.services.ports.outbox`)."""

from __future__ import annotations

import asyncpg


class PgOutboxRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
