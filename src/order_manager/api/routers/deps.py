"""`ApiServices`: everything the `/api/v1` routes reach the service through.

The same routers serve the real container (`bootstrap`) and the tests' app over a real
database; a member left `None` makes its routes answer 503 with the standard error shape (e.g.
no reconciler in a mode without an exchange).
"""

from __future__ import annotations

from dataclasses import dataclass

from order_manager.services.operator import OperatorActions
from order_manager.services.ports.queries import ReadQueries
from order_manager.services.reconciler import Reconciler
from order_manager.services.trading_control import TradingControl


@dataclass(frozen=True, slots=True)
class ApiServices:
    queries: ReadQueries
    reconciler: Reconciler | None = None
    trading: TradingControl | None = None
    operator: OperatorActions | None = None
