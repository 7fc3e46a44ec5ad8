"""PostgreSQL implementation of the orders port (`order_manager.services.ports.orders`)."""

from __future__ import annotations

import asyncpg


class PgOrderRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
