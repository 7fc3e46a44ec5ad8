"""The trading pause (`POST /api/v1/trading/pause|resume`): the operator's kill switch.

While paused, the risk check drops every opening leg (`AccountState.trading_paused`, reject
code `trading_paused`); reduce-only legs and cancels still go through, so exposure can always
be reduced. The switch the processor reads is `services.processor.TradingSwitch`; this service
flips it and **persists** each change as an operator row in the audit log (`OperatorLog`), so:

* a pause survives a restart (`load()` at start-up restores the newest state before any signal
  is consumed) — a kill switch that a restart silently undid would be a trap;
* every change is auditable, with its reason and time.

The persisted row is written before the in-memory flag flips on pause (never "paused in memory
but not on disk" after a crash) and the flag flips before the write on resume is acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from order_manager.services.ports.operator_log import OperatorLog
from order_manager.services.processor import TradingSwitch

log = structlog.get_logger(__name__)

PAUSED = "trading_paused"
RESUMED = "trading_resumed"


@dataclass(frozen=True, slots=True)
class TradingState:
    paused: bool
    changed_at: datetime | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"paused": self.paused, "changed_at": self.changed_at, "reason": self.reason}


class TradingControl:
    def __init__(self, switch: TradingSwitch, store: OperatorLog) -> None:
        self._switch = switch
        self._store = store
        self._changed_at: datetime | None = None
        self._reason: str | None = None

    @property
    def state(self) -> TradingState:
        return TradingState(self._switch.paused, self._changed_at, self._reason)

    async def load(self) -> TradingState:
        """Restore the newest persisted state (start-up task, before consuming signals)."""
        latest = await self._store.latest((PAUSED, RESUMED))
        if latest is not None:
            action, details, at = latest
            self._switch.paused = action == PAUSED
            self._changed_at = at
            self._reason = _reason(details)
            if self._switch.paused:
                log.warning(
                    "trading is PAUSED (restored)", since=at.isoformat(), reason=self._reason
                )
        return self.state

    async def pause(self, reason: str | None = None) -> TradingState:
        self._changed_at = await self._store.record(PAUSED, {"reason": reason})
        self._switch.paused = True
        self._reason = reason
        log.warning("trading paused by the operator", reason=reason)
        return self.state

    async def resume(self, reason: str | None = None) -> TradingState:
        self._changed_at = await self._store.record(RESUMED, {"reason": reason})
        self._switch.paused = False
        self._reason = reason
        log.warning("trading resumed by the operator", reason=reason)
        return self.state


def _reason(details: Mapping[str, Any]) -> str | None:
    value = details.get("reason")
    return str(value) if value is not None else None
