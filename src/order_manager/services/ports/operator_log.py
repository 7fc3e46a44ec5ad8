"""Port: the operator's actions, kept in the audit log (`audit_log`, kind `operator`).

It doubles as the durable store of the trading pause: the newest `trading_paused` /
`trading_resumed` row is the switch's state, so a pause survives a restart (a kill switch that
a restart silently undoes would be a trap) and every change is auditable with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol


class OperatorLog(Protocol):
    async def record(self, action: str, details: Mapping[str, Any]) -> datetime:
        """Append one operator action; its commit time."""
        ...

    async def latest(
        self, actions: Sequence[str]
    ) -> tuple[str, Mapping[str, Any], datetime] | None:
        """The newest row whose action is one of `actions`: (action, details, time)."""
        ...
