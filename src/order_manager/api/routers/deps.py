"""What the `/api/v1` routes reach the service through.

`ServicesView` is all a route sees: read-side queries, the reconciler, the trading switch and
the operator actions. Two implementations:

* `ApiServices` — a plain bundle (tests build the app over a real database with it);
* `LateServices` — for the real service, whose pool and exchange client only exist after
  `Container.start()`: the routers are mounted when the app is built, and `bind(...)` fills the
  slot at start-up. Until then every route answers 503 `STARTING` (the standard error shape).

A member that is `None` (e.g. no reconciler in a mode without an exchange) makes its routes
answer 503 too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from order_manager.api.errors import ApiError
from order_manager.services.operator import OperatorActions
from order_manager.services.ports.queries import ReadQueries
from order_manager.services.reconciler import Reconciler
from order_manager.services.trading_control import TradingControl


class ServicesView(Protocol):
    @property
    def queries(self) -> ReadQueries: ...

    @property
    def reconciler(self) -> Reconciler | None: ...

    @property
    def trading(self) -> TradingControl | None: ...

    @property
    def operator(self) -> OperatorActions | None: ...


@dataclass(frozen=True, slots=True)
class ApiServices:
    queries: ReadQueries
    reconciler: Reconciler | None = None
    trading: TradingControl | None = None
    operator: OperatorActions | None = None


class LateServices:
    """A `ServicesView` bound at start-up (see the module docstring)."""

    def __init__(self) -> None:
        self._bound: ApiServices | None = None

    def bind(self, services: ApiServices) -> None:
        self._bound = services

    def unbind(self) -> None:
        self._bound = None

    def _get(self) -> ApiServices:
        if self._bound is None:
            raise ApiError(503, "STARTING", "the service is starting or stopping; retry shortly")
        return self._bound

    @property
    def queries(self) -> ReadQueries:
        return self._get().queries

    @property
    def reconciler(self) -> Reconciler | None:
        return self._get().reconciler

    @property
    def trading(self) -> TradingControl | None:
        return self._get().trading

    @property
    def operator(self) -> OperatorActions | None:
        return self._get().operator
