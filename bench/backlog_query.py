"""Benchmark: the backlog monitor's statement on a database with a long history.

The monitor (`services/backlog.py`) runs one statement every 15 s on the live database. It
must stay cheap however long the service has run: it only counts what *waits*, through the
partial indexes the writers keep anyway (``signals_open_idx``, ``orders_active_idx``,
``outbox_unpublished_idx``). This fills a fresh database with ``--history`` settled rows per
table (executed signals, filled orders, published events) plus ``--waiting`` rows of each
waiting kind, then times the statement (``PgBacklogQueries.waiting``) against the same
database with no history at all, side by side, and prints the plan's node types (no
sequential scan may appear on the big tables).

    uv run python bench/backlog_query.py --history 1000000 --waiting 50

Writes ``bench/results/backlog_query-<YYYYMMDD>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from order_manager.adapters.postgres.backlog_repo import WAITING_SQL, PgBacklogQueries
from signal_to_order import fresh_database

FILL = {
    "signals": """
        INSERT INTO signals (signal_id, status, symbol, raw, received_at, completed_at)
        SELECT gen_random_uuid(), CASE WHEN g <= $2 THEN 'processing' ELSE 'executed' END,
               'BTCUSDT', '{}'::jsonb, now() - g * interval '1 second', now()
        FROM generate_series(1, $1) AS g
    """,
    "orders": """
        INSERT INTO orders (order_link_id, symbol, side, order_type, qty, status, created_at)
        SELECT 'b-' || g, 'BTCUSDT', 'Buy', 'Market', 0.01,
               CASE WHEN g <= $2 THEN 'submitting' ELSE 'filled' END,
               now() - g * interval '1 second'
        FROM generate_series(1, $1) AS g
    """,
    "outbox": """
        INSERT INTO outbox (event_id, topic, event_type, payload, created_at, published_at)
        SELECT gen_random_uuid(), 'order-manager.order_events', 'filled', '{}'::jsonb,
               now() - g * interval '1 second',
               CASE WHEN g <= $2 THEN NULL ELSE now() END
        FROM generate_series(1, $1) AS g
    """,
}


async def fill(url: str, history: int, waiting: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in FILL.values():
            await conn.execute(statement, history + waiting, waiting)
        await conn.execute("ANALYZE signals; ANALYZE orders; ANALYZE outbox")
    finally:
        await conn.close()


def plan_nodes(plan: Any) -> list[str]:
    """Node type (and relation or index) of every node of an EXPLAIN (FORMAT JSON) plan."""
    out: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        name = node["Node Type"]
        target = node.get("Index Name") or node.get("Relation Name")
        out.append(f"{name} ({target})" if target else name)
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return out


async def measure(url: str, runs: int) -> dict[str, Any]:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        queries = PgBacklogQueries(pool)
        waiting = await queries.waiting()  # warm the plan cache
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            waiting = await queries.waiting()
            times.append((time.perf_counter() - started) * 1000)
        async with pool.acquire() as conn:
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {WAITING_SQL}")
    finally:
        await pool.close()
    plan = json.loads(raw) if isinstance(raw, str) else raw
    return {
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 3),
        "waiting": {kind: count for kind, (count, _) in waiting.items()},
        "plan_nodes": plan_nodes(plan),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1_000_000, help="settled rows per table")
    parser.add_argument("--waiting", type=int, default=50, help="waiting rows per kind")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    db = os.environ.get("ORDERMANAGER_DATABASE_URL")
    if not db:
        sys.exit('run eval "$(scripts/infra env)" first (database settings missing)')
    figures: dict[str, Any] = {}
    for label, history in (("empty history", 0), (f"{args.history} settled rows", args.history)):
        async with fresh_database(db) as url:
            started = time.perf_counter()
            await fill(url, history, args.waiting)
            filled_s = time.perf_counter() - started
            figures[label] = await measure(url, args.runs) | {"fill_seconds": round(filled_s, 1)}
    print(f"{'database':<28} {'median ms':>10} {'p95 ms':>8}  waiting")
    for label, result in figures.items():
        print(f"{label:<28} {result['median_ms']:>10} {result['p95_ms']:>8}  {result['waiting']}")
    seq = [n for n in figures[list(figures)[-1]]["plan_nodes"] if n.startswith("Seq Scan")]
    print("plan:", ", ".join(figures[list(figures)[-1]]["plan_nodes"]))
    print("sequential scans on the big tables:", seq or "none")
    path = write_result(
        "backlog_query",
        figures,
        {"history": args.history, "waiting": args.waiting, "runs": args.runs},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
