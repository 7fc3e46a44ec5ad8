"""Schema migrations on the real PostgreSQL: upgrade, downgrade to base, upgrade again; the
constraints and triggers later work relies on behave as documented (docs/schema.md)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from order_manager.adapters.postgres.migrate import (
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from order_manager.adapters.postgres.pool import create_pool

pytestmark = pytest.mark.integration

EXPECTED_COLUMNS = {
    "signals": {
        "signal_id",
        "status",
        "symbol",
        "raw",
        "reason_code",
        "reason_message",
        "attempts",
        "trace_id",
        "received_at",
        "updated_at",
        "is_dry_run",
        "row_version",
    },
    "orders": {
        "id",
        "order_link_id",
        "order_id",
        "signal_id",
        "category",
        "symbol",
        "side",
        "order_type",
        "time_in_force",
        "qty",
        "price",
        "reduce_only",
        "status",
        "cum_exec_qty",
        "cum_exec_value",
        "cum_exec_fee",
        "avg_price",
        "exchange_updated_time",
        "row_version",
        "is_dry_run",
        "is_external",
        "trace_id",
        "created_at",
        "updated_at",
    },
    "signal_order_links": {
        "signal_id",
        "order_uuid",
        "relation",
        "sequence",
        "allocated_qty",
        "amend_qty",
        "amend_price",
        "amend_from_qty",
        "amend_from_price",
        "amend_notional",
        "amended_at",
        "cancel_done_at",
    },
    "executions": {"exec_id", "order_uuid", "exec_qty", "exec_price", "exec_fee", "exec_time"},
    "positions": {
        "category",
        "symbol",
        "position_idx",
        "size",
        "avg_entry_price",
        "realized_pnl",
        "is_dry_run",
        "row_version",
    },
    "position_snapshots": {"symbol", "size", "avg_entry_price", "snapshot_at"},
    "outbox": {
        "id",
        "event_id",
        "topic",
        "aggregate_id",
        "sequence",
        "payload",
        "created_at",
        "published_at",
        "attempts",
    },
    "audit_log": {"occurred_at", "kind", "action", "trace_id", "request", "response"},
}
MONEY_COLUMNS = [
    ("orders", "qty"),
    ("orders", "price"),
    ("orders", "cum_exec_value"),
    ("orders", "cum_exec_fee"),
    ("orders", "avg_price"),
    ("executions", "exec_price"),
    ("positions", "realized_pnl"),
    ("signals", "amount"),
]


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


@pytest.fixture
async def empty_db_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A brand-new database that was never migrated."""
    name = f"om_m_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield _with_db(pg_admin_url, name)
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _columns(url: str) -> dict[str, dict[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    return out


async def test_upgrade_downgrade_upgrade_round_trip(empty_db_url: str) -> None:
    assert await current_revision(empty_db_url) is None

    await asyncio.to_thread(upgrade, empty_db_url)
    assert await current_revision(empty_db_url) == head_revision()
    columns = await _columns(empty_db_url)
    for table, expected in EXPECTED_COLUMNS.items():
        assert expected <= set(columns[table]), (table, expected - set(columns[table]))
    for table, column in MONEY_COLUMNS:
        assert columns[table][column] == "numeric", (table, column)
    assert columns["orders"]["created_at"] == "timestamp with time zone"

    await asyncio.to_thread(upgrade, empty_db_url)  # a second upgrade is a no-op
    assert await current_revision(empty_db_url) == head_revision()

    await asyncio.to_thread(downgrade, empty_db_url, "base")
    assert await current_revision(empty_db_url) is None
    assert set(await _columns(empty_db_url)) <= {"alembic_version"}

    await asyncio.to_thread(upgrade, empty_db_url)
    assert set(EXPECTED_COLUMNS) <= set(await _columns(empty_db_url))


def test_cli_migrate_works_from_any_directory(empty_db_url: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "order-manager"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERMANAGER_")}
    env["ORDERMANAGER_DATABASE_URL"] = empty_db_url
    result = subprocess.run(
        [str(script), "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"at revision {head_revision()}" in result.stdout
    assert ":om@" not in result.stdout  # the password is masked
    current = subprocess.run(
        [str(script), "migrate", "current"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert f"current: {head_revision()}" in current.stdout


async def _insert_order(conn: asyncpg.Connection, link: str, status: str = "submitting") -> str:
    value = await conn.fetchval(
        "INSERT INTO orders (order_link_id, symbol, side, order_type, qty, status) "
        "VALUES ($1, 'BTCUSDT', 'Buy', 'Limit', 0.015, $2) RETURNING id",
        link,
        status,
    )
    return str(value)


async def test_constraints_reject_illegal_rows(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await _insert_order(conn, "om-1")
        with pytest.raises(asyncpg.UniqueViolationError):
            await _insert_order(conn, "om-1")
        with pytest.raises(asyncpg.CheckViolationError):
            await _insert_order(conn, "om-2", status="new")
        with pytest.raises(asyncpg.CheckViolationError):
            await _insert_order(conn, "x" * 37)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO signals (signal_id, status, raw) VALUES ($1, 'done', '{}')",
                uuid.uuid4(),
            )
        # exchange order ids are unique but optional
        await conn.execute("UPDATE orders SET order_id = 'X1' WHERE order_link_id = 'om-1'")
        await _insert_order(conn, "om-3")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("UPDATE orders SET order_id = 'X1' WHERE order_link_id = 'om-3'")
        await conn.execute(
            "INSERT INTO executions (exec_id, symbol, side, exec_qty, exec_price, exec_value, "
            "exec_time) VALUES ('e1', 'BTCUSDT', 'Buy', 0.01, 64240.5, 642.405, now())"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO executions (exec_id, symbol, side, exec_qty, exec_price, "
                "exec_value, exec_time) VALUES ('e1', 'BTCUSDT', 'Buy', 0.01, 1, 1, now())"
            )
    finally:
        await conn.close()


async def test_updates_bump_row_version_and_money_stays_exact(db_url: str) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            order_id = await _insert_order(conn, "om-rv")
            await conn.execute(
                "UPDATE orders SET cum_exec_value = '0.1' + '0.2'::numeric WHERE id = $1",
                uuid.UUID(order_id),
            )
            row = await conn.fetchrow(
                "SELECT row_version, cum_exec_value, qty, created_at FROM orders WHERE id = $1",
                uuid.UUID(order_id),
            )
    finally:
        await pool.close()
    assert row is not None
    assert row["row_version"] == 2
    assert str(row["cum_exec_value"]) == "0.3"
    assert str(row["qty"]) == "0.015"
    assert row["created_at"].utcoffset().total_seconds() == 0


async def test_outbox_insert_notifies_listeners(db_url: str) -> None:
    listener = await asyncpg.connect(db_url)
    writer = await asyncpg.connect(db_url)
    received: asyncio.Queue[str] = asyncio.Queue()  # (connection, pid, channel, payload)
    try:
        await listener.add_listener("outbox", lambda *args: received.put_nowait(args[2]))
        await writer.execute(
            "INSERT INTO outbox (event_id, topic, event_type, aggregate_id, sequence, payload) "
            "VALUES ($1, 'order-manager.order_events', 'created', 'o-1', 1, '{}')",
            uuid.uuid4(),
        )
        channel = await asyncio.wait_for(received.get(), timeout=10)
        assert channel == "outbox"
        unpublished = await writer.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        assert unpublished == 1
        with pytest.raises(asyncpg.UniqueViolationError):  # per-aggregate sequence is unique
            await writer.execute(
                "INSERT INTO outbox (event_id, topic, event_type, aggregate_id, sequence, "
                "payload) VALUES ($1, 'order-manager.order_events', 'filled', 'o-1', 1, '{}')",
                uuid.uuid4(),
            )
    finally:
        await listener.close()
        await writer.close()
