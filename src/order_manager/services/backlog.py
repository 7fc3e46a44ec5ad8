"""Backlog gauges: what is waiting, and since when — the numbers an operator alerts on.

Counters say what happened; they cannot say that something is stuck. A signal a lane keeps
retrying, an intent whose outcome nobody settles, an event the broker never confirms, a
signal dead-lettered for an operator: each shows up here as a count and the age of the oldest
one. Every ``interval`` seconds (``ORDERMANAGER_BACKLOG_SAMPLE_INTERVAL_SECONDS``, 15) the
monitor reads, in one statement, the signals in progress, the intents ``submitting`` and the
unpublished outbox events (`ports.backlog.BacklogQueries`), and the depth of the signals'
dead-letter queue (`ports.backlog.QueueDepth`), then sets:

* ``om_backlog_waiting{kind}`` — rows waiting, ``kind`` one of ``signals_in_progress``,
  ``intents_submitting``, ``outbox_unpublished``;
* ``om_backlog_oldest_seconds{kind}`` — how long the oldest of them has waited (0 when none);
* ``om_dead_letter_messages`` — messages in ``order-manager.signals.dlq``;
* ``om_backlog_sampled_timestamp_seconds`` — when the last sample completed (Unix time);
* ``om_backlog_sample_failures_total`` — samples that failed.

A failed sample is logged and counted, and the sample time grows old, which is itself
alerted on (`deploy/prometheus/alerts.yml`), so a dead monitor or an unreachable database never
reads as "nothing waiting". The database's gauges do not depend on the broker: with RabbitMQ
unreachable they are still set (the unpublished events pile up exactly then), only the
dead-letter gauge and the sample time stay as they were. Ages are computed from
the rows' own timestamps (the database's clock) against this process's UTC clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter, Gauge

from order_manager.services.ports.backlog import (
    WAITING_KINDS,
    BacklogQueries,
    QueueDepth,
    Waiting,
)

log = structlog.get_logger(__name__)

WAITING = Gauge("om_backlog_waiting", "Rows waiting, by kind (services.backlog)", ["kind"])
OLDEST = Gauge(
    "om_backlog_oldest_seconds", "How long the oldest waiting row has waited, by kind", ["kind"]
)
DEAD_LETTERS = Gauge(
    "om_dead_letter_messages", "Messages in the signals' dead-letter queue (need an operator)"
)
SAMPLED = Gauge(
    "om_backlog_sampled_timestamp_seconds", "Unix time of the last complete backlog sample"
)
FAILED = Counter("om_backlog_sample_failures_total", "Backlog samples that failed")
#: seconds the dead-letter queue's depth may take before the sample counts as failed
DEPTH_TIMEOUT = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class BacklogSample:
    waiting: Waiting
    dead_letters: int
    at: datetime

    def oldest_seconds(self, kind: str) -> float:
        return _age(self.at, self.waiting[kind][1])


def _age(now: datetime, oldest: datetime | None) -> float:
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


class BacklogMonitor:
    def __init__(
        self,
        queries: BacklogQueries,
        dead_letters: QueueDepth,
        *,
        interval: float,
        clock: Callable[[], datetime] = utc_now,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._queries = queries
        self._dead_letters = dead_letters
        self._interval = interval
        self._clock = clock
        self._wall = wall

    async def sample(self) -> BacklogSample:
        """Read the database, set its gauges, then read the dead-letter queue and set its gauge
        and the sample time. A database failure raises with no gauge changed. A broker failure
        (or no answer within ``DEPTH_TIMEOUT``) still leaves the database's gauges set — during
        a broker outage the unpublished events are exactly what must stay visible — and raises
        with the dead-letter gauge and the sample time unchanged."""
        waiting = await self._queries.waiting()
        at = self._clock()
        for kind in WAITING_KINDS:
            count, oldest = waiting[kind]
            WAITING.labels(kind).set(count)
            OLDEST.labels(kind).set(_age(at, oldest))
        dead_letters = await asyncio.wait_for(self._dead_letters.depth(), DEPTH_TIMEOUT)
        DEAD_LETTERS.set(dead_letters)
        SAMPLED.set(self._wall())
        return BacklogSample(waiting, dead_letters, at)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``interval`` seconds until ``stop`` is set; a failed sample is logged
        and tried again at the next interval."""
        log.info("backlog monitor running", interval_seconds=self._interval)
        while not stop.is_set():
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or broker trouble: the sample time grows old
                FAILED.inc()
                log.warning("backlog sample failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
