"""Resuming an amend whose outcome was never recorded (pure).

A many-to-one amend is written ahead like a create: the signal's ``amend`` link is committed
before the call, with the absolute target the amend sends (quantity, price), the order's state it
was planned from and the quantity and notional it adds; the link is marked *landed* in the same
transaction that records the exchange's acknowledgement. A signal resumed with an amend link not
marked landed — the process died between the commit and the recorded answer, or an earlier run's
amend and the lookup that should have settled it both failed — cannot know whether the amend
reached the exchange. Counting it as done could lose the signal's quantity; sending it again
blindly could undo a later change to the order. The exchange's current word on the order
decides (:func:`resolve`):

==========================================  =================================================
the exchange's order                        what the resumed signal does
==========================================  =================================================
at the target quantity (and price)          ``LANDED``: record it (``modified``), send nothing
at the planned-from quantity and price,     ``SEND``: the amend never landed and still can:
still open                                  send it now (absolute values, as planned)
at the planned-from quantity, closed        ``REPLACE``: it can no longer land; the added
(filled, cancelled, rejected ...), or       quantity becomes the signal's own limit order, as
not found                                   for an amend the exchange refuses
anything else                               ``AMBIGUOUS``: something else changed the order
                                            (another amend since): sending would overwrite
                                            that change and placing could double this one, so
                                            neither — the leg is refused with the reason and
                                            logged as an error for an operator
==========================================  =================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from order_manager.domain.enums import Category, Side
from order_manager.domain.orders import ExchangeOrderUpdate
from order_manager.domain.plans import Amend


class AmendResolution(StrEnum):
    LANDED = "landed"
    SEND = "send"
    REPLACE = "replace"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class RecordedAmend:
    """A signal's ``amend`` link as written ahead of the call."""

    signal_id: str
    order_link_id: str  # the amended order's
    target_qty: Decimal
    target_price: Decimal | None
    previous_qty: Decimal
    previous_price: Decimal | None
    added_qty: Decimal
    added_notional: Decimal
    landed: bool

    def amend(self, order_id: str | None, category: Category, symbol: str, side: Side) -> Amend:
        """The amend exactly as it was planned (its absolute target, not a re-computed one)."""
        return Amend(
            order_link_id=self.order_link_id,
            order_id=order_id,
            category=category,
            symbol=symbol,
            side=side,
            qty=self.target_qty,
            price=self.target_price,
            previous_qty=self.previous_qty,
            previous_price=self.previous_price,
            added_qty=self.added_qty,
            reference_price=self.target_price or Decimal(0),
            added_notional=self.added_notional,
        )


def recorded(amend: Amend, signal_id: str) -> RecordedAmend:
    """The write-ahead record of ``amend`` (not landed yet)."""
    return RecordedAmend(
        signal_id=signal_id,
        order_link_id=amend.order_link_id,
        target_qty=amend.qty,
        target_price=amend.price,
        previous_qty=amend.previous_qty,
        previous_price=amend.previous_price,
        added_qty=amend.added_qty,
        added_notional=amend.added_notional,
        landed=False,
    )


def _at(order: ExchangeOrderUpdate, qty: Decimal, price: Decimal | None) -> bool:
    return order.qty == qty and (price is None or order.price == price)


def at_target(amend: Amend, found: ExchangeOrderUpdate | None) -> bool:
    """The exchange's order is at the amend's target: the amend landed."""
    return found is not None and _at(found, amend.qty, amend.price)


def resolve(record: RecordedAmend, found: ExchangeOrderUpdate | None) -> AmendResolution:
    """What a resumed signal does with an amend not known to have landed (module docstring)."""
    if found is None:
        return AmendResolution.REPLACE
    if _at(found, record.target_qty, record.target_price):
        return AmendResolution.LANDED
    if _at(found, record.previous_qty, record.previous_price):
        return AmendResolution.SEND if found.status.is_open else AmendResolution.REPLACE
    return AmendResolution.AMBIGUOUS
