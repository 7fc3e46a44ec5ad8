"""Port: what is waiting right now, read for the backlog gauges (`services.backlog`).

Records are plain values (adapters may not import services): for each kind in
``WAITING_KINDS`` the number of rows waiting and the time the oldest of them arrived (``None``
when nothing waits), an aware UTC ``datetime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

#: signals received or processing — not yet executed, rejected or failed
SIGNALS_IN_PROGRESS = "signals_in_progress"
#: intents written ahead (``submitting``) whose exchange outcome is not known yet
INTENTS_SUBMITTING = "intents_submitting"
#: events committed to the outbox and not yet confirmed by the broker
OUTBOX_UNPUBLISHED = "outbox_unpublished"
WAITING_KINDS = (SIGNALS_IN_PROGRESS, INTENTS_SUBMITTING, OUTBOX_UNPUBLISHED)

Waiting = Mapping[str, tuple[int, datetime | None]]


class BacklogQueries(Protocol):
    async def waiting(self) -> Waiting:
        """``{kind: (count, oldest)}`` for every kind of ``WAITING_KINDS``, read at once."""
        ...


class QueueDepth(Protocol):
    async def depth(self) -> int:
        """Messages ready in the queue (0 when it was never declared)."""
        ...
