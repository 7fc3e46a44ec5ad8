"""Alembic environment: runs revisions over the asyncpg driver (SQLAlchemy is only the engine).

The DSN comes from the Alembic config attribute `dsn`, set by `migrate.py`; there is no
alembic.ini. Revisions are plain SQL (`op.execute`), so no ORM metadata is involved and
autogenerate is not used. Offline mode (`--sql`) renders the SQL without a database.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def _dsn() -> str:
    dsn = config.attributes.get("dsn") or config.get_main_option("sqlalchemy.url")
    if not dsn:
        raise RuntimeError("no database DSN given to the migration environment")
    return str(dsn)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_dsn(), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_dsn(), target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
