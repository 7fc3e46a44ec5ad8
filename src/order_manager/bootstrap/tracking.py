"""Wiring of the tracking side (part of the composition root, `order_manager.bootstrap`).

`TrackingComponent` is one container component (`name`, `start()`, `stop()`) that runs:

- the outbox relay (LISTEN/NOTIFY + sweep every `ORDERMANAGER_OUTBOX_POLL_INTERVAL_SECONDS`,
  batches of `ORDERMANAGER_OUTBOX_BATCH_SIZE`, publisher confirms to the event queues), and
  the outbox retention (published rows older than `ORDERMANAGER_OUTBOX_RETENTION_HOURS`, each
  aggregate's newest kept, every `ORDERMANAGER_OUTBOX_PRUNE_INTERVAL_SECONDS`; 0 h: off);
- with a live exchange: the tracker fed by the private WebSocket (default) or the ws-gateway
  queue (`ORDERMANAGER_EVENT_SOURCE=ws_gateway`), and the positions keeper (snapshots every
  `ORDERMANAGER_POSITION_SNAPSHOT_INTERVAL` s, validation every
  `ORDERMANAGER_POSITION_VALIDATION_INTERVAL` s);
- with a paper exchange (dry-run, or warm-ups in dry-run): a second tracker (is_dry_run) fed by
  the paper exchange's update feed, and the paper watcher that keeps reading live market data
  for symbols with resting paper orders so they fill when the price crosses them.

Bootstrap usage::

    tracking = TrackingComponent(settings, pool, bybit_config, rest=rest, on_gap=reconciler.on_gap)
    container.add_component(tracking)          # tracking.tracker feeds the reconciler
    position_validator = tracking.validate_positions

Only the composition root (`order_manager.bootstrap` and this module in it) picks adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from order_manager.adapters.bybit.config import BybitClientConfig
from order_manager.adapters.bybit.event_source import PrivateStreamSource
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.bybit.queries import BybitExchangeQueries
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.adapters.bybit.ws_base import ConnectionEvent, Subscription
from order_manager.adapters.paper.exchange import PaperExchange
from order_manager.adapters.paper.feed import PaperFeedSource
from order_manager.adapters.postgres.outbox_listener import PgOutboxNotifications
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.publisher import RabbitEventPublisher
from order_manager.adapters.ws_gateway.source import WsGatewaySource
from order_manager.config import EventSource, Settings
from order_manager.domain.enums import Category
from order_manager.services.outbox_relay import OutboxRelay
from order_manager.services.outbox_retention import OutboxPruner
from order_manager.services.ports.exchange_events import ExchangeEventSource, GapHandler
from order_manager.services.ports.outbox import ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC
from order_manager.services.ports.uow import UnitOfWorkFactory
from order_manager.services.positions import PositionKeeper
from order_manager.services.store_freshness import StoreFreshness
from order_manager.services.tracker import Tracker, resync_orders, run_tracker

log = structlog.get_logger(__name__)

#: `StoreFreshness` reasons: the private stream is not (yet) subscribed or has dropped; a
#: reconciliation after a gap (reconnect, a batch not applied) has not finished
STREAM_DOWN = "stream_down"
RECONCILING = "reconciling"


class TrackingComponent:
    name = "tracking"

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        bybit_config: BybitClientConfig | None,
        *,
        rest: BybitRestClient | None = None,
        on_gap: GapHandler | None = None,
        paper: PaperExchange | None = None,
        freshness: StoreFreshness | None = None,
    ) -> None:
        self.settings = settings
        #: told of every tracker commit, and whether the private stream can be trusted
        #: (`ORDERMANAGER_ACCOUNT_SOURCE=store`)
        self.freshness = freshness
        self._pool = pool
        self._bybit_config = bybit_config
        self._rest = rest
        self._own_rest = rest is None
        self._on_gap = on_gap
        self._paper = paper
        #: dry-run's tracker, fed by the paper exchange (rows and events flagged is_dry_run)
        self.paper_tracker: Tracker | None = None
        self.uow: UnitOfWorkFactory = PostgresUnitOfWorkFactory(pool)
        self.publisher = RabbitEventPublisher(
            settings.rabbitmq_url,
            queues=(settings.order_events_queue, settings.position_events_queue),
            routes={
                ORDER_EVENTS_TOPIC: settings.order_events_queue,
                POSITION_EVENTS_TOPIC: settings.position_events_queue,
            },
        )
        self.relay = OutboxRelay(
            self.uow,
            self.publisher,
            PgOutboxNotifications(settings.database_url),
            batch_size=settings.outbox_batch_size,
            sweep_interval=settings.outbox_poll_interval_seconds,
            coalesce=settings.outbox_relay_coalesce_ms / 1000,
        )
        hours = settings.outbox_retention_hours
        self.pruner = (
            OutboxPruner(
                self.uow,
                retention=timedelta(hours=hours),
                interval=settings.outbox_prune_interval_seconds,
            )
            if hours > 0
            else None
        )
        self.tracker: Tracker | None = None
        self._queries: BybitExchangeQueries | None = None
        self.keeper: PositionKeeper | None = None
        self._stream: PrivateStream | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._ended)
        self._tasks.append(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not self._stop.is_set():
            log.error("tracking task ended while the service runs", reason=_ending(task))

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        return tuple(self._tasks)

    def check_alive(self) -> None:
        """The readiness check ``tracking``: raises while any background task (tracker, relay,
        positions, paper feed, ...) has ended although the component runs — orders would no
        longer be tracked or events published, and the service must not call itself ready."""
        if self._stop.is_set():
            return
        ended = [_ending(task) for task in self._tasks if task.done()]
        if ended:
            raise RuntimeError("; ".join(ended))

    @property
    def categories(self) -> tuple[Category, ...]:
        return self.settings.traded_categories

    def _source(self, config: BybitClientConfig) -> ExchangeEventSource:
        settings = self.settings
        if settings.event_source is EventSource.WS_GATEWAY:
            key = settings.ws_gateway_api_key
            return WsGatewaySource(
                settings.rabbitmq_url,
                settings.ws_gateway_url,
                key.get_secret_value() if key is not None else None,
            )
        self._stream = PrivateStream(config)
        return PrivateStreamSource(self._stream)

    async def start(self) -> None:
        self._stop.clear()
        self._spawn(self.relay.run(self._stop), "outbox-relay")
        if self.pruner is not None:
            self._spawn(self.pruner.run(self._stop), "outbox-retention")
        if self._paper is not None:
            self.paper_tracker = Tracker(
                self.uow,
                link_prefix=self.settings.order_link_id_prefix,
                is_dry_run=True,
                loss_warning_ratio=self._loss_warning_ratio,
            )
            self._spawn(
                run_tracker(self.paper_tracker, PaperFeedSource(self._paper.updates)),
                "paper-tracker",
            )
            self._spawn(self._paper.watch(self._stop), "paper-watch")
        config = self._bybit_config
        if config is None:  # dry-run without an exchange: only the relay
            return
        if self._rest is None:
            self._rest = BybitRestClient(config)
            await self._rest.start()
        queries = BybitExchangeQueries(self._rest)
        freshness = self.freshness
        self.tracker = Tracker(
            self.uow,
            link_prefix=self.settings.order_link_id_prefix,
            queries=queries,
            is_dry_run=False,
            loss_warning_ratio=self._loss_warning_ratio,
            on_commit=freshness.committed if freshness is not None else None,
        )
        self.keeper = PositionKeeper(
            self.uow,
            queries,
            categories=self.categories,
            is_dry_run=False,
            history=queries,  # drift: look for missed fills before correcting
            apply_fills=self.tracker.handle,
        )
        self._queries = queries
        tracker = self.tracker
        source = self._source(config)
        if isinstance(source, PrivateStreamSource):
            await source.connect()  # events from here on are seen (Bybit has no replay)
            if freshness is not None and self._stream is not None:
                # the store is complete from here on (the start-up reconciliation runs before
                # any signal) until the stream drops; the ws-gateway source tells us nothing
                # of its connection, so with it the store is never trusted
                events = self._stream.connection_events()  # before trusting: none missed
                self._spawn(_distrust_on_disconnect(events, freshness), "stream-watch")
                freshness.trust(STREAM_DOWN)
        self._spawn(run_tracker(tracker, source, on_gap=self._gap), "tracker")
        self._spawn(
            self.keeper.run(
                self._stop,
                snapshot_interval=float(self.settings.position_snapshot_interval),
                validation_interval=float(self.settings.position_validation_interval),
            ),
            "positions",
        )

    async def _gap(self) -> None:
        """Events may be missing (reconnect, a batch not applied): the store is not trusted
        until the reconciliation has run to the end (a failed one leaves it untrusted: REST
        until the next gap's reconciliation succeeds)."""
        if self.freshness is not None:
            self.freshness.distrust(RECONCILING)
        await (self._on_gap or self.resync)()
        if self.freshness is not None:
            self.freshness.trust(RECONCILING)

    async def resync(self) -> None:
        """Re-read our open orders from the exchange through the tracker (after a stream gap)."""
        if self.tracker is None or self._queries is None:
            return
        await resync_orders(self.tracker, self.uow, self._queries, categories=self.categories)

    async def validate_positions(self) -> int:
        """For the reconciler: validate now (even busy books); number of books brought back
        in line (corrected, or caught up with missed fills)."""
        if self.keeper is None:
            return 0
        report = await self.keeper.validate(force=True)
        return len(report.corrected) + len(report.caught_up)

    @property
    def _loss_warning_ratio(self) -> Decimal:
        return self.settings.loss_warning_threshold_pct / 100

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            if task.get_name() in ("tracker", "paper-tracker", "stream-watch"):
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await asyncio.wait_for(task, 10)
                except TimeoutError:
                    log.warning("tracking task did not stop in time", task=task.get_name())
        self._tasks.clear()
        if self._stream is not None:
            await self._stream.stop()
        await self.publisher.close()
        if self._own_rest and self._rest is not None:
            await self._rest.close()
            self._rest = None


def _ending(task: asyncio.Task[None]) -> str:
    if task.cancelled():
        return f"{task.get_name()} cancelled"
    error = task.exception()
    return f"{task.get_name()} ended" + (f": {error!r}" if error is not None else "")


async def _distrust_on_disconnect(
    events: Subscription[ConnectionEvent], freshness: StoreFreshness
) -> None:
    """A dropped private stream may miss events: the store is not trusted from the drop until
    the gap reconciliation after the reconnect (`TrackingComponent._gap`) has run. (Should a
    reconciliation ever finish before this task hears of the reconnect, the store stays
    untrusted until the next one: the safe side.)"""
    try:
        async for event in events:
            if event.kind == "disconnected":
                freshness.distrust(STREAM_DOWN)
            elif event.kind == "reconnected":
                freshness.distrust(RECONCILING)  # the source starts the gap reconciliation
                freshness.trust(STREAM_DOWN)
    finally:
        events.close()
