"""The composition root: the only module that picks concrete adapters and wires the service.

`build_container(settings)` makes the object graph without any I/O; the FastAPI lifespan then
calls `Container.start()` (connect PostgreSQL and RabbitMQ, open the HTTP session, register the
readiness checks, start every component, run the start-up tasks, open the readiness gate) and
`Container.stop()` (the same in reverse). uvicorn stops the lifespan on SIGTERM/SIGINT, so a
signal shuts everything down in order.

Extending it: later work adds
* a `Component` (anything with `name`, `async start()`, `async stop()`: consumers, the outbox
  relay, the tracker ...) with `container.add_component(...)`;
* a start-up task (e.g. the start-up reconciliation) with `container.add_startup_task(...)`;
  `/ready` stays 503 until every start-up task has finished;
* an `APIRouter` with `container.api_routers.append(...)` (mounted under `/api/v1`);
* a readiness check with `container.probes.add_check(name, coroutine_function)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import aio_pika
import aiohttp
import asyncpg
from fastapi import APIRouter, FastAPI

from order_manager.adapters.postgres.pool import create_pool, ping
from order_manager.api.app import create_app
from order_manager.api.probes import Probes
from order_manager.config import Settings, redact_url
from order_manager.logs import get_logger

log = get_logger("order_manager.bootstrap")

StartupTask = Callable[[], Awaitable[None]]


class Component(Protocol):
    """A long-lived part of the service started and stopped by the container."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StartupError(RuntimeError):
    """A dependency could not be reached within the start-up timeout."""


async def _retry_until(
    what: str, connect: Callable[[], Awaitable[Any]], within_seconds: float
) -> Any:
    """Call `connect` until it succeeds or `within_seconds` pass (then `StartupError`)."""
    deadline = time.monotonic() + within_seconds
    delay = 0.2
    while True:
        try:
            return await connect()
        except (OSError, asyncpg.PostgresError, aio_pika.exceptions.AMQPError) as exc:
            if time.monotonic() + delay > deadline:
                message = f"{what} unreachable after {within_seconds:.0f}s: {exc}"
                raise StartupError(message) from exc
            log.warning("dependency not reachable yet", dependency=what, error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def exchange_time_check(session: aiohttp.ClientSession, rest_url: str) -> None:
    """The exchange answers its public server-time endpoint with retCode 0."""
    async with session.get(f"{rest_url}/v5/market/time") as response:
        if response.status != 200:
            raise ConnectionError(f"HTTP {response.status} from {rest_url}")
        body = await response.json(content_type=None)
        if not isinstance(body, dict) or body.get("retCode") != 0:
            raise ConnectionError(f"unexpected answer from {rest_url}/v5/market/time")


@dataclass
class Container:
    """Everything the running service holds. Resources are None until `start()`."""

    settings: Settings
    probes: Probes
    api_routers: list[APIRouter] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    startup_tasks: list[tuple[str, StartupTask]] = field(default_factory=list)
    db_pool: asyncpg.Pool | None = None
    amqp: Any = None  # aio_pika.abc.AbstractRobustConnection (aio-pika ships no type stubs)
    http: aiohttp.ClientSession | None = None
    app: FastAPI | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _startup: asyncio.Task[None] | None = None

    def add_component(self, component: Component) -> None:
        self.components.append(component)

    def add_startup_task(self, name: str, task: StartupTask) -> None:
        self.startup_tasks.append((name, task))

    def require_db(self) -> asyncpg.Pool:
        if self.db_pool is None:
            raise RuntimeError("the database pool is not open (container not started)")
        return self.db_pool

    async def start(self) -> None:
        """Open every resource and start every component; on failure, close what was opened
        and re-raise (a `StartupError` names the unreachable dependency)."""
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            self.db_pool = self.amqp = self.http = None
            raise

    async def _start(self) -> None:
        s = self.settings
        log.info("starting", config=s.redacted_dict())
        self.db_pool = await _retry_until(
            f"PostgreSQL at {redact_url(s.database_url)}",
            lambda: create_pool(
                s.database_url,
                min_size=s.database_pool_min_size,
                max_size=s.database_pool_max_size,
                command_timeout=s.database_command_timeout_seconds,
            ),
            s.startup_timeout_seconds,
        )
        self._stack.push_async_callback(self.db_pool.close)
        self.amqp = await _retry_until(
            f"RabbitMQ at {redact_url(s.rabbitmq_url)}",
            lambda: aio_pika.connect_robust(s.rabbitmq_url),
            s.startup_timeout_seconds,
        )
        self._stack.push_async_callback(self.amqp.close)
        timeout = aiohttp.ClientTimeout(
            total=s.bybit_request_timeout_seconds, connect=s.bybit_connect_timeout_seconds
        )
        self.http = aiohttp.ClientSession(timeout=timeout)
        self._stack.push_async_callback(self.http.close)
        self._register_checks()
        for component in self.components:
            await component.start()
            self._stack.push_async_callback(component.stop)
            log.info("component started", component=component.name)
        self._startup = asyncio.create_task(self._run_startup_tasks(), name="startup-tasks")

    def _register_checks(self) -> None:
        pool, amqp, http = self.db_pool, self.amqp, self.http
        assert pool is not None and http is not None
        rest_url = self.settings.rest_url

        async def database() -> None:
            await ping(pool)

        async def broker() -> None:
            if amqp is None or amqp.is_closed:
                raise ConnectionError("RabbitMQ connection is closed")

        async def exchange() -> None:
            await exchange_time_check(http, rest_url)

        for name, check in (("database", database), ("broker", broker), ("exchange", exchange)):
            if name not in self.probes.checks:
                self.probes.add_check(name, check)

    async def _run_startup_tasks(self) -> None:
        for name, task in self.startup_tasks:
            log.info("start-up task running", task=name)
            try:
                await task()
            except Exception as exc:  # reported through /ready and the log, never swallowed
                log.error("start-up task failed", task=name, exc_info=exc)
                self.probes.mark_startup_failed(f"{name}: {type(exc).__name__}: {exc}")
                return
        self.probes.mark_startup_complete()
        log.info("start-up complete", tasks=[name for name, _ in self.startup_tasks])

    async def stop(self) -> None:
        log.info("stopping")
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            await asyncio.gather(self._startup, return_exceptions=True)
        await self._stack.aclose()
        self.db_pool = None
        self.amqp = None
        self.http = None
        log.info("stopped")


def build_container(settings: Settings) -> Container:
    """Wire the service for `settings` (no I/O here; see `Container.start`)."""
    container = Container(settings=settings, probes=Probes())
    # Services, routers and start-up tasks are added here, before the app is created (the app
    # mounts `api_routers` when it is built).
    container.app = create_app(container)
    return container
