"""Port: the unit of work.

    async with uow_factory() as uow:
        await uow.orders.insert_intent(...)
        await uow.outbox.add(...)
        await uow.commit()

Leaving the block without `commit()` rolls back. Every repository on the unit of work shares one
database transaction, which is what makes the transactional outbox and the write-ahead order
intent real: a state change and its event are committed together or not at all.
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
    def __call__(self) -> UnitOfWork: ...
