"""Wiring of the backlog monitor (part of the composition root, `order_manager.bootstrap`).

`BacklogComponent` runs `services.backlog.BacklogMonitor` on the container's database pool and
broker connection: the waiting signals, intents and outbox events from PostgreSQL, the depth
of the signals' dead-letter queue from RabbitMQ, every
``ORDERMANAGER_BACKLOG_SAMPLE_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from order_manager.adapters.postgres.backlog_repo import PgBacklogQueries
from order_manager.adapters.rabbitmq.queue_depth import RabbitQueueDepth
from order_manager.services.backlog import BacklogMonitor

if TYPE_CHECKING:
    from order_manager.bootstrap import Container


class BacklogComponent:
    name = "backlog-monitor"

    def __init__(self, container: Container) -> None:
        self.container = container
        self.monitor: BacklogMonitor | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        container = self.container
        settings = container.settings
        self.monitor = BacklogMonitor(
            PgBacklogQueries(container.require_db()),
            RabbitQueueDepth(container.amqp, settings.signals_dlq),
            interval=settings.backlog_sample_interval_seconds,
        )
        self._stop.clear()
        self._task = asyncio.create_task(self.monitor.run(self._stop), name="backlog-monitor")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                await asyncio.wait_for(task, timeout=5)
            except TimeoutError:  # a sample stuck on a dead connection: wait_for cancelled it
                with contextlib.suppress(asyncio.CancelledError):
                    await task
