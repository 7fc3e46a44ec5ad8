"""When the tracker's store may stand in for the exchange's account reads (``StoreFreshness``).

With ``ORDERMANAGER_ACCOUNT_SOURCE=store`` the processor plans from the wallet, positions and
orders the tracker keeps from the private stream instead of asking Bybit's REST API for the
wallet and the positions on every signal (two requests fewer per signal: one round trip of
latency to a remote exchange, and Bybit's per-account read budget). That is only right while the
store is complete, and two things can make it incomplete:

1. **The stream itself**: while the private WebSocket is down, or after it reconnected and the
   gap reconciliation (REST) has not finished, events may be missing (Bybit has no replay). The
   store is then *not trusted* and every signal reads REST, as with ``exchange``. The tracking
   wiring calls ``distrust("stream")`` on a disconnect or when a batch could not be applied, and
   ``trust("stream")`` once the stream is subscribed and after each successful gap
   reconciliation. Any other reason can be added the same way; the store is trusted only when
   no reason is left.
2. **Our own taker orders in flight**: an acknowledged market/IOC order of the signal's symbol
   whose final event the tracker has not applied yet — its fill may be missing from the store.
   Rather than asking REST (which, under load, is exactly when the extra requests hurt most),
   the lane waits for the tracker's next commit (``wait_commit``) and reads the store again, up
   to ``ORDERMANAGER_ACCOUNT_STORE_WAIT_MS``; only past that does it fall back to REST.

The tracker calls ``committed(symbols)`` after every transaction it commits, with the symbols
its items named; ``version`` counts the commits. A reader notes ``version`` *before* it reads
the store and then waits for a commit of *its symbol* after that version, so a commit landing
between its read and its wait is never missed, and commits of other symbols (most of them,
with many symbols) do not send it to read again for nothing. ``committed()`` without symbols
(not known) counts for every symbol.

One instance per process, shared by the tracker (writer) and the processors (readers); pure
asyncio, no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from prometheus_client import Gauge

from order_manager.logs import get_logger

log = get_logger("order_manager.services.store_freshness")

STORE_TRUSTED = Gauge(
    "om_account_store_trusted",
    "1 while the tracker's store may stand in for account reads (ORDERMANAGER_ACCOUNT_SOURCE="
    "store): the private stream is subscribed, whole and not being reconciled",
)


class StoreFreshness:
    def __init__(self, *, untrusted: tuple[str, ...] = ()) -> None:
        """``untrusted``: the reasons the store starts out untrusted for (e.g. ``("stream",)``
        until the private stream is subscribed)."""
        self._version = 0
        #: per symbol, the version of the last commit that named it
        self._last: dict[str, int] = {}
        #: the version of the last commit whose symbols were not known (counts for all)
        self._unknown = 0
        #: the lanes waiting, per symbol (None: for any commit); resolved on a relevant commit
        self._next: dict[str | None, asyncio.Future[None]] = {}
        self._reasons: set[str] = set(untrusted)
        self._waiting = 0
        # the gauge moves only with trust() / distrust(): a default instance (trusted, e.g. a
        # processor's own when the wiring gave none) must not overwrite the service's state

    # ------------------------------------------------------------------ commits
    @property
    def version(self) -> int:
        """How many tracker transactions have committed so far."""
        return self._version

    def committed(self, symbols: Iterable[str] | None = None) -> None:
        """The tracker committed a transaction naming ``symbols`` (None: not known, i.e.
        any): wake the lanes waiting for one of them."""
        self._version += 1
        if symbols is None:
            self._unknown = self._version
            woken = list(self._next)
        else:
            woken = [None]
            for symbol in symbols:
                self._last[symbol] = self._version
                woken.append(symbol)
        for key in woken:
            waiter = self._next.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _seen(self, after: int, symbol: str | None) -> bool:
        if symbol is None:
            return self._version > after
        return max(self._last.get(symbol, 0), self._unknown) > after

    async def wait_commit(self, after: int, within: float, symbol: str | None = None) -> bool:
        """Wait until a commit later than ``after`` (a ``version`` read earlier) has named
        ``symbol`` (None: any commit); False when ``within`` seconds pass first."""
        if self._seen(after, symbol):
            return True
        if within <= 0:
            return False
        waiter = self._next.get(symbol)
        if waiter is None or waiter.done():
            waiter = self._next[symbol] = asyncio.get_running_loop().create_future()
        self._waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                # shielded: one waiter timing out must not cancel the future the others share
                await asyncio.wait_for(asyncio.shield(waiter), within)
        finally:
            self._waiting -= 1
        return self._seen(after, symbol)

    @property
    def waiting(self) -> int:
        """Lanes waiting for a commit right now."""
        return self._waiting

    # ------------------------------------------------------------------ trust
    @property
    def trusted(self) -> bool:
        """True when nothing is known to be missing from the store."""
        return not self._reasons

    @property
    def reasons(self) -> frozenset[str]:
        return frozenset(self._reasons)

    def distrust(self, reason: str) -> None:
        if reason not in self._reasons:
            self._reasons.add(reason)
            STORE_TRUSTED.set(0)
            log.info("account store not trusted; account reads go to the exchange", reason=reason)

    def trust(self, reason: str) -> None:
        if reason in self._reasons:
            self._reasons.discard(reason)
            STORE_TRUSTED.set(0 if self._reasons else 1)
            log.info("account store trusted again", reason=reason, still=sorted(self._reasons))
