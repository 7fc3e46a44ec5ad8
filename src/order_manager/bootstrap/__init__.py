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
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import aio_pika
import aiohttp
import asyncpg
from fastapi import APIRouter, FastAPI

from order_manager.adapters.bybit.config import (
    ENVIRONMENTS,
    BybitClientConfig,
    Endpoints,
    RetryConfig,
    WebSocketConfig,
    simulator_endpoints,
)
from order_manager.adapters.bybit.errors import BybitError, UnknownInstrumentError
from order_manager.adapters.bybit.gateway import BybitGateway, to_instrument
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.adapters.postgres.pool import create_pool, ping
from order_manager.adapters.postgres.signals_repo import PgSignalStore
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.connection import open_robust
from order_manager.adapters.rabbitmq.dead_letters import RabbitDeadLetterPublisher
from order_manager.adapters.rabbitmq.signal_consumer import RabbitSignalSource
from order_manager.api.app import create_app
from order_manager.api.probes import Probes
from order_manager.api.routers import ApiServices, LateServices, build_routers
from order_manager.bootstrap.monitoring import BacklogComponent
from order_manager.bootstrap.tracking import STREAM_DOWN, TrackingComponent
from order_manager.config import Settings, redact_url
from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument
from order_manager.logs import get_logger
from order_manager.services.intake import (
    InstrumentLookup,
    IntakeConfig,
    SignalIntake,
    WarmupPolicy,
)
from order_manager.services.operator import OperatorActions
from order_manager.services.ports.exchange import ExchangeGateway
from order_manager.services.ports.processing import SignalProcessor
from order_manager.services.processor import (
    AccountSource,
    Processor,
    ProcessorConfig,
    TradingSwitch,
)
from order_manager.services.reconciler import (
    ExchangeStateSink,
    PeriodicReconciler,
    PositionValidator,
    Reconciler,
)
from order_manager.services.recovery import Recovery
from order_manager.services.stale_orders import StaleOrderSweeper
from order_manager.services.store_freshness import StoreFreshness
from order_manager.services.trading_control import TradingControl

if TYPE_CHECKING:
    from order_manager.adapters.paper.exchange import PaperExchange

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
    #: run after every start-up task, whatever was added later (e.g. consuming signals only
    #: once tracking is up and the start-up reconciliation has brought our rows up to date)
    final_startup_tasks: list[tuple[str, StartupTask]] = field(default_factory=list)
    #: called first on stop, in registration order, before any component stops (the intake
    #: finishes its in-flight signals while tracking and the outbox relay still run)
    drains: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    db_pool: asyncpg.Pool | None = None
    amqp: Any = None  # aio_pika.abc.AbstractRobustConnection (aio-pika ships no type stubs)
    http: aiohttp.ClientSession | None = None
    app: FastAPI | None = None
    #: the `/api/v1` routes' view of the services, bound at start-up (`bind_api`)
    api_services: LateServices = field(default_factory=LateServices)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    _startup: asyncio.Task[None] | None = None

    def add_component(self, component: Component) -> None:
        self.components.append(component)

    def add_startup_task(self, name: str, task: StartupTask) -> None:
        self.startup_tasks.append((name, task))

    def add_final_startup_task(self, name: str, task: StartupTask) -> None:
        self.final_startup_tasks.append((name, task))

    def add_drain(self, drain: Callable[[], Awaitable[None]]) -> None:
        self.drains.append(drain)

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
            lambda: open_robust(s.rabbitmq_url),
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
        for name, task in [*self.startup_tasks, *self.final_startup_tasks]:
            log.info("start-up task running", task=name)
            try:
                await task()
            except Exception as exc:  # reported through /ready and the log, never swallowed
                log.error("start-up task failed", task=name, exc_info=exc)
                self.probes.mark_startup_failed(f"{name}: {type(exc).__name__}: {exc}")
                return
        self.probes.mark_startup_complete()
        log.info(
            "start-up complete",
            tasks=[name for name, _ in [*self.startup_tasks, *self.final_startup_tasks]],
        )

    async def stop(self) -> None:
        log.info("stopping")
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
            await asyncio.gather(self._startup, return_exceptions=True)
        for drain in self.drains:
            try:
                await drain()
            except Exception as exc:  # stopping goes on: every component still gets stop()
                log.error("drain failed", exc_info=exc)
        await self._stack.aclose()
        self.db_pool = None
        self.amqp = None
        self.http = None
        log.info("stopped")


def build_container(settings: Settings) -> Container:
    """Wire the service for `settings` (no I/O here; see `Container.start`)."""
    container = Container(settings=settings, probes=Probes())
    container.api_routers.extend(build_routers(container.api_services))
    # Services, routers and start-up tasks are added here, before the app is created (the app
    # mounts `api_routers` when it is built).
    container.app = create_app(container)
    return container


# ==============================================================================================
# Signal intake (issue 6, intake half). `build_signal_intake` wires consumer + lanes + intake
# around any `SignalProcessor`; `SignalPipeline` is the runnable live wiring used by
# `order-manager run` (Bybit/bybit_sim REST client, instrument cache, gateway, processor,
# start-up recovery, then the intake). The lead may fold this into the final object graph.
# ==============================================================================================


def intake_config(settings: Settings) -> IntakeConfig:
    """The intake's knobs from Settings. The intake owns the warm-up policy: `ignore` records
    the signal without an order, `dry_run` hands it to the paper processor (`add_signal_pipeline`
    builds one for it)."""
    return IntakeConfig(
        max_age=timedelta(seconds=settings.signal_max_age_seconds),
        max_future_skew=timedelta(seconds=settings.signal_max_future_skew_seconds),
        default_category=settings.category,
        warmup=WarmupPolicy(settings.warmup_signals.value),
        dry_run=settings.dry_run,
        lane_capacity=settings.lane_queue_bound,
    )


def build_signal_intake(
    container: Container,
    processor: SignalProcessor,
    instruments: InstrumentLookup,
    *,
    dry_run_processor: SignalProcessor | None = None,
) -> SignalIntake:
    """Consumer of the signals queue + DLQ publisher + lanes + intake around `processor`.

    Needs the started container (database pool and broker connection). Registers a readiness
    check that fails once the intake stopped on a non-retryable failure."""
    s = container.settings
    intake = SignalIntake(
        source=RabbitSignalSource(container.amqp, s.signals_queue, prefetch=s.consumer_prefetch),
        dead_letters=RabbitDeadLetterPublisher(container.amqp, s.signals_dlq),
        uow_factory=PostgresUnitOfWorkFactory(container.require_db()),
        signal_store=PgSignalStore(container.require_db()),
        processor=processor,
        instruments=instruments,
        dry_run_processor=dry_run_processor,
        config=intake_config(s),
    )

    async def intake_alive() -> None:
        if intake.fatal is not None:
            raise RuntimeError(f"signal intake stopped: {intake.fatal}")

    if "signal_intake" not in container.probes.checks:
        container.probes.add_check("signal_intake", intake_alive)
    return intake


def processor_config(settings: Settings) -> ProcessorConfig:
    """Planner and risk settings for the processor: `Settings.planner_config()` and
    `Settings.risk_limits()` are the one mapping of ORDERMANAGER_* onto the domain
    (docs/decisions.md)."""
    return ProcessorConfig(
        settings.planner_config(),
        settings.risk_limits(),
        default_category=settings.category,
        account_source=AccountSource(settings.account_source),
        store_wait=settings.account_store_wait_ms / 1000,
    )


def bybit_client_config(settings: Settings) -> BybitClientConfig:
    s = settings
    assert s.bybit_api_key is not None and s.bybit_api_secret is not None  # Settings defaults
    categories = tuple(c.value for c in s.traded_categories)
    if s.bybit_ws_public_url:
        public_ws = s.bybit_ws_public_url
    elif s.is_simulated_exchange:
        public_ws = simulator_endpoints(s.rest_url).public_ws
    else:
        public_ws = ENVIRONMENTS[s.bybit_environment.value].public_ws
    return BybitClientConfig(
        endpoints=Endpoints(rest=s.rest_url, private_ws=s.ws_private_url, public_ws=public_ws),
        api_key=s.bybit_api_key.get_secret_value(),
        api_secret=s.bybit_api_secret,
        recv_window_ms=s.bybit_recv_window_ms,
        connect_timeout=s.bybit_connect_timeout_seconds,
        read_timeout=s.bybit_request_timeout_seconds,
        retry=RetryConfig(
            max_attempts=s.bybit_api_retry_max_attempts,
            base_delay=s.bybit_api_retry_base_delay,
            multiplier=s.bybit_api_retry_multiplier,
            max_delay=s.bybit_api_retry_max_delay,
        ),
        websocket=WebSocketConfig(
            ping_interval=s.ws_ping_interval_seconds,
            reconnect_max_delay=s.ws_reconnect_max_delay_seconds,
        ),
        categories=categories,
    )


class SignalPipeline:
    """Live signal path: exchange client → processor → recovery → intake.

    `open()` runs as a start-up task (so `/ready` waits for it): it retries the exchange until
    reachable and resolves every write-ahead intent left `submitting` by a previous process
    (recovery). Consuming starts in `start_consuming()`, the container's *final* start-up task,
    after tracking and the start-up reconciliation. On SIGTERM `drain()` runs before any
    component stops: the intake stops gracefully — in-flight signals finish, the rest stays
    unacked — while the tracker and the outbox relay still record and publish their events;
    `stop()` then closes the client."""

    name = "signal-pipeline"

    def __init__(self, container: Container, *, switch: TradingSwitch | None = None) -> None:
        self.container = container
        #: the operator's pause switch the processor obeys (share it with the API's control)
        self.switch = switch or TradingSwitch()
        self.rest: BybitRestClient | None = None
        self.instruments: InstrumentCache | None = None
        self.gateway: BybitGateway | None = None
        self.paper: Any = None  # the PaperExchange in dry-run / warm-up dry_run
        self.intake: SignalIntake | None = None
        self.sweepers: list[StaleOrderSweeper] = []
        #: periodic passes: intent settling, stale-order sweeps (ended first on a stop)
        self._periodic: list[asyncio.Task[None]] = []
        self._uow: PostgresUnitOfWorkFactory | None = None
        self._gateways: list[ExchangeGateway] = []
        #: `ORDERMANAGER_ACCOUNT_SOURCE=store`: the tracker's commits and whether its store is
        #: trusted (untrusted until the tracking wiring has the private stream subscribed)
        self.freshness = StoreFreshness(untrusted=(STREAM_DOWN,))

    async def start(self) -> None:
        """Nothing to do before the start-up tasks (see `open`)."""

    async def _connect_exchange(self) -> tuple[BybitRestClient, InstrumentCache]:
        config = bybit_client_config(self.container.settings)
        delay = 0.2
        while True:
            rest = BybitRestClient(config)
            try:
                await rest.start()
                cache = InstrumentCache(rest, config.categories)
                await cache.start()
                return rest, cache
            except (OSError, ConnectionError, BybitError) as exc:
                await rest.close()
                log.warning("exchange not reachable yet", url=config.endpoints.rest, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def open(self) -> None:
        from order_manager.adapters.paper.exchange import PaperExchange

        settings = self.container.settings
        self.rest, self.instruments = await self._connect_exchange()
        uow = PostgresUnitOfWorkFactory(self.container.require_db())
        live = self.gateway = BybitGateway(self.rest, self.instruments)
        config = processor_config(settings)
        # Dry-run: the whole pipeline on the paper exchange (market data and instruments from
        # the live one). Warm-up dry_run: live processor, warm-ups handed to a paper one.
        # The paper exchange's update feed is drained by the tracking wiring's paper tracker, so
        # resting paper orders that fill later are tracked like live ones.
        paper = (
            PaperExchange(live, publish_updates=True)
            if settings.dry_run or _warmup_to_paper(settings)
            else None
        )
        self.paper = paper
        if paper is not None:
            await restore_paper(paper, uow)
        warmup_processor = None
        if paper is not None and not settings.dry_run:
            warmup_processor = Processor(uow, paper, config, switch=self.switch)
        gateway = paper if settings.dry_run and paper is not None else live
        processor = Processor(uow, gateway, config, switch=self.switch, freshness=self.freshness)
        report = await Recovery(uow, gateway).run_until_settled()
        log.info("recovery done", adopted=len(report.adopted), failed=len(report.failed))
        cache = self.instruments

        def lookup(category: Category, symbol: str) -> Instrument | None:
            try:
                return to_instrument(cache.get(category.value, symbol))
            except UnknownInstrumentError:
                return None

        self.intake = build_signal_intake(
            self.container, processor, lookup, dry_run_processor=warmup_processor
        )
        self._uow = uow
        self._gateways = [g for g in (None if settings.dry_run else live, paper) if g is not None]

    async def start_consuming(self) -> None:
        """The last start-up task: consume signals (and sweep stale orders) only once every
        other part — tracking, the start-up reconciliation — has run, so the first signal is
        planned against up-to-date order rows."""
        settings = self.container.settings
        uow = self._uow
        if self.intake is None or uow is None:
            raise RuntimeError("the signal pipeline did not open")
        self.intake.start()
        # intents their failed signals left `submitting` are settled while the service runs
        self._periodic = [
            asyncio.create_task(
                Recovery(uow, g).watch(settings.intent_settle_interval_seconds),
                name="intent-settler",
            )
            for g in self._gateways
        ]
        if settings.cancel_stale_orders:
            # one sweeper per exchange in use: live orders, and paper ones (dry-run / warm-ups)
            used = self._gateways
            self.sweepers = [
                StaleOrderSweeper(
                    uow,
                    g,
                    max_age=timedelta(seconds=settings.stale_order_timeout_seconds),
                    interval=settings.stale_order_sweep_interval_seconds,
                )
                for g in used
            ]
            self._periodic += [
                asyncio.create_task(sweeper.run(), name="stale-order-sweeper")
                for sweeper in self.sweepers
            ]

    async def drain(self) -> None:
        """First step of a graceful stop: no new signals, in-flight ones finish (the rest stays
        unacked), the periodic passes end — while tracking and the outbox relay still run."""
        for task in self._periodic:
            task.cancel()
        for task in self._periodic:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._periodic = []
        if self.intake is not None:
            intake, self.intake = self.intake, None
            await intake.stop()

    async def stop(self) -> None:
        await self.drain()
        if self.instruments is not None:
            await self.instruments.stop()
        if self.rest is not None:
            await self.rest.close()


async def restore_paper(paper: PaperExchange, uow: PostgresUnitOfWorkFactory) -> None:
    """The paper account of the previous run, from the database: its fills rebuild the books
    and the wallet, its resting orders rest again, and fills its order rows count but the
    process died before storing are booked (`PaperExchange.restore`)."""
    async with uow(atomic=False) as reading:
        fills = await reading.tracking.all_fills(is_dry_run=True)
        resting = await reading.orders.all_open_orders(is_dry_run=True)
        unbooked = await reading.tracking.unbooked_fills(is_dry_run=True)
    paper.restore(fills, [row.state for row in resting], unbooked)
    log.info(
        "paper exchange restored", fills=len(fills), resting=len(resting), unbooked=len(unbooked)
    )


def _warmup_to_paper(settings: Settings) -> bool:
    return settings.warmup_signals.value == WarmupPolicy.DRY_RUN.value


def add_signal_pipeline(
    container: Container, *, switch: TradingSwitch | None = None
) -> SignalPipeline:
    pipeline = SignalPipeline(container, switch=switch)
    container.add_component(pipeline)
    container.add_startup_task("signal-pipeline", pipeline.open)
    container.add_final_startup_task("consume-signals", pipeline.start_consuming)
    container.add_drain(pipeline.drain)
    return pipeline


# ---------------------------------------------------------------- API & reconciliation wiring


@dataclass
class ApiParts:
    """The API's services plus the parts the container must run (see `build_api_parts`)."""

    services: ApiServices
    trading: TradingControl
    reconciler: Reconciler | None
    periodic: PeriodicReconciler | None


def build_api_parts(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    switch: TradingSwitch,
    gateway: ExchangeGateway,
    rest: BybitRestClient | None,
    tracker: ExchangeStateSink | None,
    position_validator: PositionValidator | None = None,
) -> ApiParts:
    """Wire the read side, the trading switch, the reconciler and the operator actions.

    Call it in `Container.start()` once the pool, the Bybit REST client, the gateway and the
    tracker exist; then `container.api_services.bind(parts.services)`, add
    `parts.trading.load` as the FIRST start-up task (a persisted pause must hold before any
    signal is consumed), `parts.reconciler.startup` as a start-up task, `parts.periodic` as a
    component and `parts.reconciler.on_gap` as the private stream's gap handler. Without a live
    exchange (`rest`/`tracker` None: dry-run) there is no reconciler and `/sync` answers 503.
    """
    from order_manager.adapters.bybit.queries import BybitReconcileQueries
    from order_manager.adapters.postgres.operator_log_repo import PgOperatorLog
    from order_manager.adapters.postgres.queries_repo import PgReadQueries
    from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory

    queries = PgReadQueries(pool)
    log_store = PgOperatorLog(pool)
    uow = PostgresUnitOfWorkFactory(pool)
    trading = TradingControl(switch, log_store)
    categories = settings.traded_categories
    reconciler: Reconciler | None = None
    periodic: PeriodicReconciler | None = None
    operator: OperatorActions | None = None
    if rest is not None and tracker is not None:
        exchange = BybitReconcileQueries(rest)
        reconciler = Reconciler(
            queries=queries,
            exchange=exchange,
            tracker=tracker,
            uow_factory=uow,
            categories=categories,
            position_validator=position_validator,
        )
        periodic = PeriodicReconciler(reconciler, settings.reconcile_interval_seconds)
        operator = OperatorActions(
            queries=queries,
            gateway=gateway,
            exchange=exchange,
            uow_factory=uow,
            log_store=log_store,
            reconciler=reconciler,
            categories=categories,
        )
    services = ApiServices(
        queries=queries, reconciler=reconciler, trading=trading, operator=operator
    )
    return ApiParts(services, trading, reconciler, periodic)


class ApiWiring:
    """Runs the API's parts inside the container (see `add_api`)."""

    name = "api"

    def __init__(
        self,
        container: Container,
        pipeline: SignalPipeline,
        *,
        tracker: Callable[[], ExchangeStateSink | None] | None = None,
        position_validator: PositionValidator | None = None,
    ) -> None:
        self.container = container
        self.pipeline = pipeline
        self._tracker = tracker
        self._validator = position_validator
        self.parts: ApiParts | None = None
        self._trading: TradingControl | None = None

    async def start(self) -> None:
        """Nothing before the start-up tasks."""

    async def load_trading_switch(self) -> None:
        """First start-up task: a persisted pause holds before any signal is consumed."""
        from order_manager.adapters.postgres.operator_log_repo import PgOperatorLog

        self._trading = TradingControl(
            self.pipeline.switch, PgOperatorLog(self.container.require_db())
        )
        await self._trading.load()

    async def open(self) -> None:
        """After the signal pipeline opened the exchange: bind the routes' services, then the
        start-up reconciliation (when a tracker is wired) and the periodic timer."""
        settings = self.container.settings
        pipeline = self.pipeline
        live = not settings.dry_run
        gateway: ExchangeGateway | None = pipeline.gateway if live else pipeline.paper
        if gateway is None:
            raise RuntimeError("the signal pipeline has no exchange gateway")
        tracker = self._tracker() if self._tracker is not None else None
        parts = build_api_parts(
            settings,
            self.container.require_db(),
            switch=pipeline.switch,
            gateway=gateway,
            rest=pipeline.rest if live else None,
            tracker=tracker if live else None,
            position_validator=self._validator,
        )
        if self._trading is not None:  # keep the instance that restored the state
            parts.services = ApiServices(
                queries=parts.services.queries,
                reconciler=parts.reconciler,
                trading=self._trading,
                operator=parts.services.operator,
            )
            parts.trading = self._trading
        self.parts = parts
        self.container.api_services.bind(parts.services)
        if parts.reconciler is not None:
            await parts.reconciler.startup()
        if parts.periodic is not None:
            await parts.periodic.start()

    async def stop(self) -> None:
        self.container.api_services.unbind()
        if self.parts is not None and self.parts.periodic is not None:
            await self.parts.periodic.stop()


def add_api(
    container: Container,
    pipeline: SignalPipeline,
    *,
    tracker: Callable[[], ExchangeStateSink | None] | None = None,
    position_validator: PositionValidator | None = None,
) -> ApiWiring:
    """Wire the `/api/v1` services into `container` after `add_signal_pipeline`.

    * start-up task `trading-switch` FIRST (before the pipeline consumes signals);
    * start-up task `api` after the pipeline's: binds the routes, runs the start-up
      reconciliation and starts the periodic one (only with a live exchange and a `tracker`
      — a callable, since the tracker is built at start-up too);
    * the tracker's event source should use `wiring.parts.reconciler.on_gap` as gap handler.
    """
    wiring = ApiWiring(container, pipeline, tracker=tracker, position_validator=position_validator)
    container.add_component(wiring)
    container.startup_tasks.insert(0, ("trading-switch", wiring.load_trading_switch))
    container.add_startup_task("api", wiring.open)
    return wiring


# ----------------------------------------------------- tracking wiring and the whole service


class TrackingWiring:
    """Runs `TrackingComponent` (outbox relay, tracker, positions keeper) in the container.

    Its start-up task runs after the signal pipeline's (it shares the pipeline's REST client)
    and before the API's, so the start-up reconciliation sees a tracker whose private stream is
    already connected: anything that happened before is found by that sync, anything after
    arrives on the stream. A stream gap (reconnect) triggers the reconciler once the API wiring
    has built it; before that, the tracker's own resync of open orders.
    """

    name = "tracking"

    def __init__(self, container: Container, pipeline: SignalPipeline) -> None:
        self.container = container
        self.pipeline = pipeline
        self.api: ApiWiring | None = None
        self.component: TrackingComponent | None = None

    async def start(self) -> None:
        """Nothing before the start-up tasks (see `open`)."""

    async def _on_gap(self) -> None:
        parts = self.api.parts if self.api is not None else None
        if parts is not None and parts.reconciler is not None:
            await parts.reconciler.on_gap()
        elif self.component is not None:
            await self.component.resync()

    async def open(self) -> None:
        settings = self.container.settings
        live = not settings.dry_run
        self.component = TrackingComponent(
            settings,
            self.container.require_db(),
            bybit_client_config(settings) if live else None,
            rest=self.pipeline.rest if live else None,
            on_gap=self._on_gap,
            paper=self.pipeline.paper,
            freshness=self.pipeline.freshness,
        )
        await self.component.start()
        component = self.component

        async def alive() -> None:
            component.check_alive()

        if "tracking" not in self.container.probes.checks:
            self.container.probes.add_check("tracking", alive)

    def tracker(self) -> ExchangeStateSink | None:
        return self.component.tracker if self.component is not None else None

    async def validate_positions(self) -> int:
        return await self.component.validate_positions() if self.component is not None else 0

    async def stop(self) -> None:
        if self.component is not None:
            await self.component.stop()


def add_service(container: Container) -> tuple[SignalPipeline, TrackingWiring, ApiWiring]:
    """Everything `order-manager run` runs: signal pipeline, tracking, API and reconciliation.

    Start-up order: trading switch (a persisted pause holds first) → signal pipeline (exchange,
    recovery) → tracking (relay, private stream, positions) → API (routes bound, start-up
    reconciliation, periodic timer) → consuming signals and sweeping stale orders (last, so the
    first signal sees reconciled rows). `/ready` waits for all of them. Stop: the intake drains
    first, then API, tracking and the pipeline stop in reverse order.
    """
    pipeline = add_signal_pipeline(container)
    tracking = TrackingWiring(container, pipeline)
    container.add_component(tracking)
    container.add_startup_task("tracking", tracking.open)
    api = add_api(
        container,
        pipeline,
        tracker=tracking.tracker,
        position_validator=tracking.validate_positions,
    )
    tracking.api = api
    container.add_component(BacklogComponent(container))
    return pipeline, tracking, api
