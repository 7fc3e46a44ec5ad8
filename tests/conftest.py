"""Shared fixtures: real services only.

`scripts/test` (or `eval "$(scripts/infra env)"`) exports the connection settings; a test that
needs a service and does not find them fails loudly instead of being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite with scripts/test, or "
            'eval "$(scripts/infra env)" after scripts/infra up'
        )
    return value


@pytest.fixture(scope="session")
def amqp_base_url() -> str:
    return require_env("ORDERMANAGER_RABBITMQ_URL")


@pytest.fixture(scope="session")
def rabbitmq_api() -> str:
    return require_env("OM_RABBITMQ_API")


@pytest.fixture
async def amqp_url(amqp_base_url: str, rabbitmq_api: str) -> AsyncIterator[str]:
    """A fresh RabbitMQ vhost for one test, so fixed queue names never collide; deleted after."""
    vhost = f"t-{uuid.uuid4().hex[:12]}"
    api = urlsplit(rabbitmq_api)
    auth = (api.username or "guest", api.password or "guest")
    base = urlunsplit((api.scheme, f"{api.hostname}:{api.port}", api.path, "", ""))
    async with httpx.AsyncClient(auth=auth, timeout=10) as http:
        r = await http.put(f"{base}/vhosts/{vhost}")
        r.raise_for_status()
        r = await http.put(
            f"{base}/permissions/{vhost}/{auth[0]}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        )
        r.raise_for_status()
        parts = urlsplit(amqp_base_url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
        await http.delete(f"{base}/vhosts/{vhost}")


# ------------------------------------------------------------------------------ PostgreSQL
#
# One migrated template database per test session (om_tpl_<pid>), then one fresh database per
# test cloned from it (CREATE DATABASE ... TEMPLATE: a file copy, milliseconds), dropped after
# the test. Tests never share rows and never see each other's schema changes.


def pg_url_with_db(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


async def pg_admin_execute(admin_url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _drop_stale_templates(admin_url: str) -> None:
    """Drop om_tpl_<pid> databases left by test sessions whose process no longer exists."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        names = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'om_tpl_%'")
        for row in names:
            pid = row["datname"].removeprefix("om_tpl_")
            if pid.isdigit() and not _process_exists(int(pid)):
                await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of the maintenance database (`postgres`) on the server of ORDERMANAGER_DATABASE_URL."""
    return pg_url_with_db(require_env("ORDERMANAGER_DATABASE_URL"), "postgres")


@pytest.fixture(scope="session")
async def migrated_template(pg_admin_url: str) -> AsyncIterator[str]:
    """Name of a database migrated to head, used as the template for `db_url`."""
    import asyncio

    from order_manager.adapters.postgres.migrate import upgrade

    name = f"om_tpl_{os.getpid()}"
    await _drop_stale_templates(pg_admin_url)
    await pg_admin_execute(
        pg_admin_url,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
    )
    # Alembic's env runs its own event loop, so it runs in a worker thread.
    await asyncio.to_thread(upgrade, pg_url_with_db(pg_admin_url, name))
    yield name
    await pg_admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database at the newest schema revision for one test; dropped afterwards.

    The test also fails if PostgreSQL broke a deadlock while it ran (`no_deadlock_logged`)."""
    name = f"om_t_{uuid.uuid4().hex[:16]}"
    await pg_admin_execute(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    logged = await server_log_size(pg_admin_url)
    yield pg_url_with_db(pg_admin_url, name)
    await pg_admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await no_deadlock_logged(pg_admin_url, logged)


# A deadlock is PostgreSQL aborting one of two transactions that lock the same rows in opposite
# orders. The code retries the aborted one, so a test passes anyway and the stall (one
# `deadlock_timeout`, 1 s, each time) would go unnoticed — as the tracker's self-deadlock did
# until the seventh session. Every test on a fresh database therefore reads what the server
# logged while it ran (`scripts/infra` starts it with its log at `<data dir>/server.log`; the
# test role is the server's superuser, which may read it) and fails on "deadlock detected",
# quoting the two statements. On a server whose log cannot be read this way the check is off.
SERVER_LOG = "server.log"


async def server_log_size(admin_url: str) -> int | None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        size = await conn.fetchval("SELECT size FROM pg_stat_file($1, true)", SERVER_LOG)
    except asyncpg.PostgresError:  # not permitted: the check is off
        return None
    finally:
        await conn.close()
    return None if size is None else int(size)


async def no_deadlock_logged(admin_url: str, since: int | None) -> None:
    """Fail the current test if the server logged a deadlock after byte ``since`` of its log."""
    import asyncpg

    if since is None:
        return
    conn = await asyncpg.connect(admin_url)
    try:
        text = await conn.fetchval("SELECT pg_read_file($1, $2, 10000000, true)", SERVER_LOG, since)
    finally:
        await conn.close()
    if not text or "deadlock detected" not in text:
        return
    start = text.index("deadlock detected")
    excerpt = text[text.rfind("\n", 0, start) + 1 : start + 3000]
    pytest.fail(f"PostgreSQL broke a deadlock during this test:\n{excerpt}")


# ------------------------------------------------------------------------------ bybit_sim
#
# A fresh simulator per test on a free port. Prices are frozen so that every fill comes from the
# test itself (move them with `sim.state.exchange.set_price/step_price` or the /sim admin API);
# `sim_factory` starts simulators with any other SimConfig (random walk, hedge mode, no limits).


@pytest.fixture
async def sim() -> AsyncIterator[object]:
    """A running `bybit_sim.server.SimServer` (default Bybit config, frozen prices)."""
    from bybit_sim.config import SimConfig
    from bybit_sim.server import SimServer

    async with SimServer(SimConfig().with_path("frozen")) as server:
        yield server


@pytest.fixture
async def sim_factory() -> AsyncIterator[object]:
    """`await sim_factory(config)` starts a SimServer for `config`; all are stopped afterwards."""
    from bybit_sim.config import SimConfig
    from bybit_sim.server import SimServer

    servers: list[SimServer] = []

    async def start(config: SimConfig | None = None) -> SimServer:
        server = SimServer(config or SimConfig().with_path("frozen"))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
