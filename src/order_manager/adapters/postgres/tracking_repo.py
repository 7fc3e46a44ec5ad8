"""PostgreSQL implementation of the tracking port (`order_manager.services.ports.tracking`)."""

from __future__ import annotations

import asyncpg


class PgTrackingRepository:
    """Bound to one connection inside the unit of work's transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
