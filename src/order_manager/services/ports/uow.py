"""Port: the unit of work.

    async with uow_factory() as uow:
        await uow.orders.insert_intent(...)
        await uow.outbox.add(...)
        await uow.commit()

Leaving the block without `commit()` rolls back. Every repository on the unit of work shares one
database transaction, which is what makes the transactional outbox and the write-ahead order
intent real: a state change and its event are committed together or not at all.

`uow_factory(atomic=False)` opens a unit of work WITHOUT a transaction: each statement commits
on its own (two round trips fewer: no BEGIN, no COMMIT/ROLLBACK). Only for reads that need no
common snapshot and for a single write that is atomic by itself (e.g. one order intent with its
link in one statement). Outbox events are refused there: an event must commit with the change
it describes. `commit()` is accepted (nothing to do) so callers read the same either way.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from order_manager.services.ports.orders import OrderRepository
from order_manager.services.ports.outbox import OutboxRepository
from order_manager.services.ports.signals import SignalRepository
from order_manager.services.ports.tracking import TrackingRepository


class UnitOfWork(Protocol):
    # Read-only members: a mutable Protocol attribute is invariant, so an implementation whose
    # attribute has the concrete repository type would not match it.
    @property
    def signals(self) -> SignalRepository: ...

    @property
    def orders(self) -> OrderRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def tracking(self) -> TrackingRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, atomic: bool = True) -> UnitOfWork: ...
