"""Schema migrations: Alembic configured in code, so `order-manager migrate` works from any
directory without an alembic.ini.

The revisions live in `migrations/versions` next to this module and are plain SQL. Alembic
talks to PostgreSQL through SQLAlchemy's asyncpg dialect (the same driver the service uses), so
no second driver is needed. The public functions are synchronous (Alembic's command API is);
`env.py` runs its own event loop, so from async code call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def sqlalchemy_url(dsn: str) -> str:
    """`postgresql://...` (libpq/asyncpg form) → `postgresql+asyncpg://...` for SQLAlchemy."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"not a PostgreSQL URL: scheme {parts.scheme!r}")
    return urlunsplit(("postgresql+asyncpg", *parts[1:]))


def alembic_config(dsn: str, output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output) if output is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The DSN goes through `attributes`, not the ini options, whose '%' interpolation would
    # mangle percent-encoded passwords.
    config.attributes["dsn"] = sqlalchemy_url(dsn)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(
        alembic_config("postgresql://localhost/x")
    ).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions found in {MIGRATIONS_DIR}")
    return head


def upgrade(dsn: str, rev: str = "head") -> None:
    """Apply revisions up to `rev` (default: the newest). Idempotent."""
    command.upgrade(alembic_config(dsn), rev)


def downgrade(dsn: str, rev: str) -> None:
    """Revert to `rev` (`base` removes every table of ours)."""
    command.downgrade(alembic_config(dsn), rev)


def upgrade_sql(rev: str = "head") -> str:
    """The SQL `upgrade(rev)` would run, rendered without a database (for review)."""
    out = io.StringIO()
    command.upgrade(alembic_config("postgresql://offline/x", out), rev, sql=True)
    return out.getvalue()


async def current_revision(dsn: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        if not exists:
            return None
        value = await conn.fetchval("SELECT version_num FROM alembic_version LIMIT 1")
        return None if value is None else str(value)
    finally:
        await conn.close()
