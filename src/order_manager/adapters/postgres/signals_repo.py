"""PostgreSQL implementation of the signals port (`order_manager.services.ports.signals`)."""

from __future__ import annotations

import asyncpg


class PgSignalRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
