"""Port: orders persistence used inside a unit of work."""

from __future__ import annotations

from typing import Protocol


class OrderRepository(Protocol):
    """Repository bound to the current transaction (see `ports.uow.UnitOfWork`)."""
