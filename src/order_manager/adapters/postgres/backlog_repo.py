"""PostgreSQL side of the backlog gauges (`order_manager.services.ports.backlog`).

One statement, no transaction, on a pooled connection. Each part reads a partial index kept
for the writers anyway: ``signals_open_idx`` (received_at, signals received/processing),
``orders_active_idx`` (created_at, active orders — ``submitting`` is one of them) and
``outbox_unpublished_idx`` (id, unpublished events; the oldest is the lowest id).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

WAITING_SQL = """
SELECT
    (SELECT count(*) FROM signals WHERE status IN ('received', 'processing')) AS signals_n,
    (SELECT min(received_at) FROM signals WHERE status IN ('received', 'processing'))
        AS signals_oldest,
    (SELECT count(*) FROM orders WHERE status = 'submitting') AS intents_n,
    (SELECT min(created_at) FROM orders WHERE status = 'submitting') AS intents_oldest,
    (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS outbox_n,
    (SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1)
        AS outbox_oldest
"""


class PgBacklogQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def waiting(self) -> dict[str, tuple[int, datetime | None]]:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(WAITING_SQL)
        assert row is not None
        return {
            "signals_in_progress": (int(row["signals_n"]), row["signals_oldest"]),
            "intents_submitting": (int(row["intents_n"]), row["intents_oldest"]),
            "outbox_unpublished": (int(row["outbox_n"]), row["outbox_oldest"]),
        }
