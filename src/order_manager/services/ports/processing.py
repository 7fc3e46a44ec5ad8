"""Port: turn one validated signal into exchange orders (or a recorded refusal).

The intake (parse → dedupe → lane) calls exactly one thing for the actual work:

    outcome = await processor.process(signal, trace_id)

Division of labour (so that "ack only after the outcome is committed" holds):

* the processor COMMITS its own order rows: every write-ahead intent (status ``submitting``,
  deterministic orderLinkId) and its ``signal_order_links`` are committed before the exchange is
  called, and every exchange answer (+ its ``created``/``modified``/``rejected``/``cancelled``
  outbox event) is committed after. It never touches the ``signals`` row.
* the processor RETURNS the outcome; the intake then commits the signal's final status (and, for
  ``SignalRejected``, the ``signal_rejected`` outbox event) and acks the message.

Calling ``process`` again for the same signal (redelivery after a crash, retry after ``failed``)
is safe: orderLinkIds are derived from (signal_id, leg), existing intents are resumed instead of
re-planned, and an order the exchange already holds is adopted, never placed twice.

Outcomes:

* ``SignalExecuted`` — at least one exchange action took effect (order placed, resting order
  amended); ``order_link_ids``/``order_ids`` list what this signal owns. ``partial_failures``
  names legs that the exchange refused while others went through.
* ``SignalRejected`` — the signal is refused for good (planner, risk, or the exchange refused
  every order, e.g. Bybit 110007 with the balance check off). ``rejection`` is the domain
  ``Rejection`` (code, message, details) — the payload of ``signal_rejected``.
* ``SignalFailed`` — transient: nothing definite happened yet (exchange unreachable, outcome of
  a create unknown → the intent stays ``submitting`` and recovery resolves it). ``retryable``
  tells the intake whether the signal may be retried (redelivered / reprocessed). A non-retryable
  failure (e.g. exchange authentication) is loud: the service must not keep consuming.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from order_manager.domain.rejections import RejectCode, Rejection
from order_manager.domain.signals import TradingSignal


@dataclass(frozen=True, slots=True)
class SignalExecuted:
    order_link_ids: tuple[str, ...]
    order_ids: tuple[str, ...] = ()
    is_dry_run: bool = False
    #: orderLinkId -> reason, for legs the exchange refused while other legs succeeded
    partial_failures: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "partial_failures", MappingProxyType(dict(self.partial_failures)))

    @property
    def status(self) -> str:
        return "executed"


@dataclass(frozen=True, slots=True)
class SignalRejected:
    rejection: Rejection
    is_dry_run: bool = False
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return "rejected"

    @property
    def code(self) -> RejectCode:
        return self.rejection.code

    @property
    def message(self) -> str:
        return self.rejection.message

    @property
    def details(self) -> Mapping[str, str]:
        return self.rejection.details


@dataclass(frozen=True, slots=True)
class SignalFailed:
    code: str
    message: str
    retryable: bool = True
    is_dry_run: bool = False

    @property
    def status(self) -> str:
        return "failed"


SignalOutcome = SignalExecuted | SignalRejected | SignalFailed


class SignalProcessor(Protocol):
    async def process(
        self, signal: TradingSignal, trace_id: str, *, is_new: bool = False
    ) -> SignalOutcome:
        """Plan, risk-check and execute ``signal``; commit order rows; return the outcome.

        ``is_new``: the intake's claim just created the signal's row, so no order of this
        signal can exist yet (``orders.signal_id`` and ``signal_order_links`` reference the
        signals table): the processor may skip looking for orders to resume. ``False`` (the
        safe default) always looks.

        Never raises for business or exchange reasons (those are outcomes). Raises only for
        programming errors or a lost database (then nothing is acked and the message returns).
        """
        ...
