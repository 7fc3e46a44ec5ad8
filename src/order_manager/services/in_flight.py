"""Approved plans that a concurrent signal's account state may not show yet (``InFlightPlans``).

Lanes of different symbols run at the same time. Each reads its account state — balances and
positions from the exchange (or the tracker's store), our open orders and today's volume from
the database — then plans, checks risk, writes its intents and places its orders. Two lanes
that both read before either wrote would each see the account-wide limits' whole headroom:
with a total exposure limit of 1 500 USDT, two 1 000 USDT buys on two symbols would both pass,
and so would two buys that together need more than the available balance. The balance check,
the order-size ratio, the total exposure and the daily volume would hold only for signals
processed one after another.

So an approved plan is **held** here from its risk approval until its execution has returned
(by then its intents, and the exchange's answers, are in the database and on the exchange). A
signal counts on top of its snapshot every held plan that the snapshot may miss: the ones still
executing, and the ones that finished after its reads began (``unseen``; ones that finished
before are in what it read). Counting a plan its reads did catch counts it twice:
conservative, never over a limit. Approval and hold happen with no ``await`` in between
(``unseen`` → plan → ``risk.check`` → ``holding``), so two lanes never check
against the same headroom. One instance per processor: paper and live plans never mix.

This makes concurrent lanes as exact as sequential processing, within this process; across
service instances (docs/scaling.md) the limits stay approximate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from order_manager.domain.account import Commitment


@dataclass(slots=True)
class _Held:
    commitment: Commitment
    #: value of the finish counter when its execution returned; None while executing
    finished_at: int | None = None


class InFlightPlans:
    def __init__(self) -> None:
        self._finished = 0  # executions that returned so far (a logical clock)
        self._held: dict[int, _Held] = {}
        self._readers: dict[int, int] = {}  # snapshot id -> the clock when its reads began
        self._next_id = 0

    @property
    def held(self) -> int:
        """Plans still remembered (executing, or finished but maybe unseen by a reader)."""
        return len(self._held)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[int]:
        """Around one signal's processing, entered before its first account read; yields
        the moment its reads began (for ``unseen``)."""
        key = self._key()
        began = self._readers[key] = self._finished
        try:
            yield began
        finally:
            del self._readers[key]
            self._forget()

    def unseen(self, began: int) -> tuple[Commitment, ...]:
        """Held plans that reads which began at ``began`` may not show."""
        return tuple(
            held.commitment
            for held in self._held.values()
            if held.finished_at is None or held.finished_at > began
        )

    @contextlib.contextmanager
    def holding(self, commitment: Commitment) -> Iterator[None]:
        """Hold an approved plan while it executes (entered right after its approval)."""
        key = self._key()
        self._held[key] = held = _Held(commitment)
        try:
            yield
        finally:
            self._finished += 1
            held.finished_at = self._finished
            self._forget()

    def _forget(self) -> None:
        """Drop finished plans that every current and future reader's snapshot includes."""
        oldest = min(self._readers.values(), default=self._finished)
        done = [k for k, h in self._held.items() if h.finished_at and h.finished_at <= oldest]
        for key in done:
            del self._held[key]

    def _key(self) -> int:
        self._next_id += 1
        return self._next_id
