"""Outbox retention: published events older than the retention are deleted, in small steps.

Every event ever written stays in ``outbox`` after the relay published it: with full JSON
payloads, a service that runs for months would grow that table without bound (a few events of
1–2 kB per signal). The broker has the events; the table only needs them while they are
unpublished, plus a window for inspection and replay — ``ORDERMANAGER_OUTBOX_RETENTION_HOURS``
(default 168, one week; 0 keeps every row, as before).

What is never deleted:

* an unpublished row, and everything after the oldest one still unpublished or younger than
  the retention (a step stops at it: the relay may still need it, and id order is publish
  order);
* **the newest row of each aggregate** (order, position): the next event of an aggregate is
  numbered ``max(sequence) + 1`` from its rows (``om_outbox_add_many``), and consumers dedupe
  and order by ``(aggregate, sequence)``. Deleting the newest would restart a live order's
  sequence at 1. One row per aggregate stays; every older one goes.

How: every ``interval`` seconds a pass walks the table in id order from where the last pass
stopped, ``window`` rows per step, each step one short statement (``prune_published``) in its
own transaction, until it reaches a row that is unpublished or too young. The place where it
stopped is kept in memory, so a pass looks only at rows that became old since the last one;
a newest-of-its-aggregate row left behind becomes deletable when its aggregate gets a newer
event, and is reclaimed by the first pass after a restart (which starts from the beginning).
Nothing here races the writers: a row goes only when a newer row of its aggregate is already
committed, so ``max(sequence)`` is unchanged; the relay touches only unpublished rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import Counter

from order_manager.services.ports.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)

PRUNED = Counter("om_outbox_pruned_total", "Published outbox rows deleted by the retention")

#: rows looked at per step (one statement, one short transaction)
DEFAULT_WINDOW = 5000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class PruneReport:
    examined: int = 0
    deleted: int = 0
    steps: int = 0


class OutboxPruner:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        *,
        retention: timedelta,
        interval: float,
        window: int = DEFAULT_WINDOW,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError("retention must be positive (0 means: do not run a pruner)")
        self._uow_factory = uow_factory
        self._retention = retention
        self._interval = interval
        self._window = window
        self._clock = clock
        self._after = 0  # every old row up to this id has been looked at

    async def prune(self, stop: asyncio.Event | None = None) -> PruneReport:
        """One pass: from where the last one stopped to the first row too young or unpublished
        (or until ``stop`` is set: the next pass goes on from there)."""
        report = PruneReport()
        cutoff = self._clock() - self._retention
        while stop is None or not stop.is_set():
            async with self._uow_factory() as uow:
                step = await uow.outbox.prune_published(
                    after_id=self._after, published_before=cutoff, window=self._window
                )
                await uow.commit()
            report.steps += 1
            report.examined += step.examined
            report.deleted += step.deleted
            PRUNED.inc(step.deleted)
            if step.last_id is not None:
                self._after = step.last_id
            if not step.more:
                break
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Prune every ``interval`` seconds until ``stop`` is set; a failed pass is logged and
        tried again at the next interval."""
        log.info(
            "outbox retention running",
            retention_hours=self._retention.total_seconds() / 3600,
            interval_seconds=self._interval,
        )
        while not stop.is_set():
            try:
                report = await self.prune(stop)
                if report.deleted:
                    log.info(
                        "outbox pruned",
                        deleted=report.deleted,
                        examined=report.examined,
                        steps=report.steps,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database trouble: the next interval tries again
                log.warning("outbox retention pass failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
