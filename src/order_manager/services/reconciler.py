"""Reconciliation: make the database agree with the exchange (spec FR-005.10, FR-016, FR-024).

When it runs (architecture mechanism 8):

* **start-up** (`startup`, a start-up task: `/ready` waits for it) — scope `active`;
* **periodically** (`PeriodicReconciler`, every `ORDERMANAGER_RECONCILE_INTERVAL_SECONDS`) —
  skipped when another sync is running;
* **after every private-stream reconnect** (`on_gap`, the event source's gap handler) — events
  may have been lost; a sync is scheduled in the background (coalesced: one pending at most)
  so the stream keeps flowing;
* **on demand** (`POST /api/v1/sync`) — answered 409 while another sync runs.

What a run does (`sync`):

1. Candidates from the database: the non-terminal live orders (`active`), or every live order
   created in the last `all_lookback` (`all`, default 7 days = Bybit's history window);
   optionally one asset.
2. The exchange's view: open orders (`/v5/order/realtime`, which also reveals orders we do not
   know), then, for candidates not open any more, the order history of their symbol (one
   paginated list per symbol) and finally a lookup by orderId/orderLinkId for the rest.
3. Missing fills: wherever the exchange's `cumExecQty` exceeds the quantity of the fills we
   store, the symbol's executions since the oldest such order (or the order's own list).
4. **Apply through the tracker** (`ExchangeStateSink.handle`, the very code path of WebSocket
   pushes): order objects first (unknown orders are adopted: ours by prefix, else external),
   then executions, then positions. Row locks + the domain state machine make this safe while
   signals are processed concurrently, and stale REST data can never regress a newer state.
5. Positions: the exchange rows go through the tracker too (it records the exchange's view);
   books whose size or entry still differ are counted as drift and, when a position validator
   is wired (the positions service), corrected by it; a `reconcile` snapshot is written.

Nothing is concluded from a failed query: the error goes into the report (`errors`) and the
orders of that category stay as they are. An acknowledged order that the exchange knows
neither as open nor in its history is reported as `missing_on_exchange` and left unchanged
(the exchange is the truth, and it said nothing); a `submitting` intent the exchange does not
know is left to start-up recovery (`services.recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

import structlog
from prometheus_client import Counter, Histogram

from order_manager.domain.enums import Category
from order_manager.domain.positions import ExchangePosition, compare
from order_manager.services.ports.exchange_queries import ReconcileExchange
from order_manager.services.ports.queries import ReadQueries, Record
from order_manager.services.ports.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)

SYNC_RUNS = Counter("om_reconcile_runs_total", "Reconciliation runs", ["trigger", "result"])
SYNC_CHANGED = Counter("om_reconcile_orders_changed_total", "Orders changed by reconciliation")
SYNC_MISSING = Counter(
    "om_reconcile_missing_on_exchange_total", "Acknowledged orders the exchange does not know"
)
SYNC_ADOPTED = Counter("om_reconcile_adopted_total", "Exchange orders unknown to us, adopted")
SYNC_DURATION = Histogram(
    "om_reconcile_duration_seconds",
    "Reconciliation run time",
    ["trigger"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

Scope = Literal["active", "all"]
Trigger = Literal["startup", "periodic", "reconnect", "manual", "operator"]

#: above this many unresolved orders in one symbol, list the symbol's history instead of
#: looking orders up one by one
HISTORY_THRESHOLD = 3
#: items per tracker batch (one transaction each)
APPLY_BATCH = 50
#: clock slack when asking for history/executions "since an order was created"
SLACK = timedelta(minutes=1)


class AppliedBatch(Protocol):
    """What the tracker reports for one applied batch (`services.tracker.BatchOutcome`)."""

    @property
    def adopted(self) -> list[str]: ...


class ExchangeStateSink(Protocol):
    """The tracker's entry point (`services.tracker.Tracker.handle`)."""

    async def handle(
        self, topic: str, items: Sequence[Mapping[str, Any]], created_at: datetime | None = None
    ) -> AppliedBatch: ...


PositionValidator = Callable[[], Awaitable[int]]


class SyncInProgressError(RuntimeError):
    """A manual sync was asked for while another one runs."""

    def __init__(self, running: SyncRun) -> None:
        super().__init__(f"a {running.trigger} sync is already running since {running.started_at}")
        self.running = running


@dataclass(frozen=True, slots=True)
class SyncRun:
    trigger: str
    scope: str
    asset: str | None
    started_at: datetime


@dataclass(slots=True)
class OrderChange:
    id: str
    order_link_id: str
    order_id: str | None
    symbol: str
    before: str
    after: str
    cum_exec_qty_before: Decimal
    cum_exec_qty_after: Decimal


@dataclass(slots=True)
class SyncReport:
    trigger: str
    scope: str
    asset: str | None
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: float = 0.0
    orders_checked: int = 0
    orders_changed: int = 0
    fills_added: int = 0
    missing_on_exchange: int = 0
    unknown_to_us: int = 0
    submitting_unresolved: int = 0
    positions_checked: int = 0
    positions_drift: int = 0
    positions_corrected: int = 0
    errors: list[str] = field(default_factory=list)
    changed: list[OrderChange] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    adopted: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "scope": self.scope,
            "asset": self.asset,
            "started_at": self.started_at,
            "finished_at": self.finished_at or self.started_at,
            "duration_ms": round(self.duration_ms, 3),
            "orders_checked": self.orders_checked,
            "orders_changed": self.orders_changed,
            "fills_added": self.fills_added,
            "missing_on_exchange": self.missing_on_exchange,
            "unknown_to_us": self.unknown_to_us,
            "submitting_unresolved": self.submitting_unresolved,
            "positions_checked": self.positions_checked,
            "positions_drift": self.positions_drift,
            "positions_corrected": self.positions_corrected,
            "errors": list(self.errors),
            "changed": [
                {
                    "id": c.id,
                    "order_link_id": c.order_link_id,
                    "order_id": c.order_id,
                    "symbol": c.symbol,
                    "before": c.before,
                    "after": c.after,
                    "cum_exec_qty_before": c.cum_exec_qty_before,
                    "cum_exec_qty_after": c.cum_exec_qty_after,
                }
                for c in self.changed
            ],
            "missing": list(self.missing),
            "adopted": list(self.adopted),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def _dec(value: object) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    return Decimal(str(value))


@dataclass
class _Exchange:
    """What the exchange said during one run."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by orderId
    by_link: dict[str, str] = field(default_factory=dict)  # orderLinkId -> orderId
    failed_categories: set[str] = field(default_factory=set)

    def add(self, category: str, item: Mapping[str, Any]) -> None:
        order_id = str(item.get("orderId") or "")
        if not order_id:
            return
        current = self.orders.get(order_id)
        if current is not None and int(current.get("updatedTime") or 0) > int(
            item.get("updatedTime") or 0
        ):
            return
        self.orders[order_id] = {**item, "category": category}
        link = str(item.get("orderLinkId") or "")
        if link:
            self.by_link[link] = order_id

    def find(self, order_id: str | None, order_link_id: str) -> dict[str, Any] | None:
        if order_id and order_id in self.orders:
            return self.orders[order_id]
        found = self.by_link.get(order_link_id)
        return self.orders.get(found) if found else None


class Reconciler:
    def __init__(
        self,
        *,
        queries: ReadQueries,
        exchange: ReconcileExchange,
        tracker: ExchangeStateSink,
        uow_factory: UnitOfWorkFactory,
        categories: Sequence[Category] = (Category.LINEAR,),
        all_lookback: timedelta = timedelta(days=7),
        position_validator: PositionValidator | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._queries = queries
        self._exchange = exchange
        self._tracker = tracker
        self._uow_factory = uow_factory
        self._categories = tuple(categories)
        self._all_lookback = all_lookback
        self._validator = position_validator
        self._clock = clock
        self._lock = asyncio.Lock()
        self._running: SyncRun | None = None
        self._pending: asyncio.Task[SyncReport | None] | None = None
        self.last_report: SyncReport | None = None
        #: seconds between runs of an incomplete sync after a gap (`_after_gap`): ~4 min in all
        self.gap_retry_delays: tuple[float, ...] = (1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30)

    @property
    def running(self) -> SyncRun | None:
        return self._running

    # ------------------------------------------------------------------ triggers
    async def startup(self, *, attempts: int = 3, retry_delay_seconds: float = 2.0) -> None:
        """Start-up task: an `active` sync, repeated (up to `attempts`, `retry_delay_seconds`
        apart, doubling) while exchange queries fail; still incomplete after that, it raises
        and `/ready` reports why — the service must not call itself ready on unknown state."""
        delays = [retry_delay_seconds * 2**n for n in range(attempts - 1)]
        report = await self._sync_until_complete("startup", delays)
        if report.errors:
            raise RuntimeError(f"start-up reconciliation incomplete: {'; '.join(report.errors)}")

    async def _sync_until_complete(self, trigger: Trigger, delays: Iterable[float]) -> SyncReport:
        """An `active` sync, run again after each of ``delays`` while it is incomplete (the
        database or the exchange failing); returns the last run's report."""
        pending = iter(delays)
        attempt = 1
        while True:
            report = await self.sync(trigger=trigger, scope="active", wait=True)
            delay = next(pending, None)
            if not report.errors or delay is None:
                return report
            log.warning(
                "reconciliation incomplete; retrying",
                trigger=trigger,
                attempt=attempt,
                errors=report.errors,
                retry_in_s=delay,
            )
            await asyncio.sleep(delay)
            attempt += 1

    async def on_gap(self) -> None:
        """Gap handler of the private stream: schedule a sync, return at once."""
        if self._pending is not None and not self._pending.done():
            return
        self._pending = asyncio.create_task(self._after_gap(), name="reconcile-after-gap")

    async def _after_gap(self) -> SyncReport | None:
        """The sync after a gap, run again while it is incomplete (the database or the exchange
        failing — often the very outage that made a stream batch fail), ``gap_retry_delays``
        apart; after the last one the periodic run takes over. Until the eighth session it ran
        once: a batch lost to a database outage stayed lost until the next periodic run (5 min
        by default)."""
        try:
            report = await self._sync_until_complete("reconnect", self.gap_retry_delays)
        except Exception as exc:  # a background task: log it, the periodic run retries
            log.error("reconciliation after a gap failed", exc_info=exc)
            return None
        if report.errors:
            log.error("reconciliation after a gap still incomplete; the periodic run retries")
        return report

    async def cancel_pending(self) -> None:
        """Cancel a sync scheduled by `on_gap` that has not finished (shutdown)."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending

    async def wait_pending(self) -> SyncReport | None:
        """The result of the sync scheduled by `on_gap` (None when none was scheduled)."""
        return await self._pending if self._pending is not None else None

    async def sync(
        self,
        *,
        trigger: Trigger = "manual",
        scope: Scope = "active",
        asset: str | None = None,
        wait: bool = False,
    ) -> SyncReport:
        """Run one reconciliation. With `wait=False` a running sync raises
        `SyncInProgressError` instead of queueing behind it."""
        if not wait and self._lock.locked() and self._running is not None:
            raise SyncInProgressError(self._running)
        async with self._lock:
            started = self._clock()
            self._running = SyncRun(trigger, scope, asset, started)
            report = SyncReport(trigger=trigger, scope=scope, asset=asset, started_at=started)
            t0 = time.perf_counter()
            try:
                await self._run(report)
            except Exception as exc:  # reported (and logged with its traceback), never lost
                log.error("reconciliation aborted", trigger=trigger, exc_info=exc)
                report.errors.append(f"aborted: {type(exc).__name__}: {exc}")
            finally:
                report.duration_ms = (time.perf_counter() - t0) * 1000
                report.finished_at = self._clock()
                self._running = None
                SYNC_DURATION.labels(trigger).observe(report.duration_ms / 1000)
            SYNC_RUNS.labels(trigger, "errors" if report.errors else "ok").inc()
            SYNC_CHANGED.inc(report.orders_changed)
            SYNC_MISSING.inc(report.missing_on_exchange)
            SYNC_ADOPTED.inc(report.unknown_to_us)
            self.last_report = report
            log.info(
                "reconciliation finished",
                trigger=trigger,
                scope=scope,
                asset=asset,
                checked=report.orders_checked,
                changed=report.orders_changed,
                fills_added=report.fills_added,
                missing=report.missing_on_exchange,
                adopted=report.unknown_to_us,
                positions_drift=report.positions_drift,
                positions_corrected=report.positions_corrected,
                errors=report.errors,
                duration_ms=round(report.duration_ms, 1),
            )
            return report

    async def sync_orders(self, ids: Sequence[str], *, trigger: Trigger = "operator") -> SyncReport:
        """Reconcile exactly these orders (e.g. right after an operator cancel)."""
        async with self._lock:
            started = self._clock()
            # visible like any run: a manual sync meanwhile answers 409 instead of queueing
            self._running = SyncRun(trigger, "orders", None, started)
            report = SyncReport(trigger=trigger, scope="orders", asset=None, started_at=started)
            t0 = time.perf_counter()
            try:
                candidates = await self._queries.reconcile_candidates(
                    active_only=False, symbol=None, created_since=None, ids=ids
                )
                await self._reconcile(report, candidates, discover=False, with_positions=False)
            finally:
                self._running = None
                report.duration_ms = (time.perf_counter() - t0) * 1000
                report.finished_at = self._clock()
            return report

    # ------------------------------------------------------------------ the run
    async def _run(self, report: SyncReport) -> None:
        since = None if report.scope == "active" else self._clock() - self._all_lookback
        candidates = await self._queries.reconcile_candidates(
            active_only=report.scope == "active", symbol=report.asset, created_since=since
        )
        await self._reconcile(report, candidates, discover=True, with_positions=True)

    async def _reconcile(
        self,
        report: SyncReport,
        candidates: Sequence[Record],
        *,
        discover: bool,
        with_positions: bool,
    ) -> None:
        report.orders_checked = len(candidates)
        categories = {str(c["category"]) for c in candidates}
        if discover:
            categories |= {c.value for c in self._categories}
        exchange = _Exchange()
        # 1. open orders (per category; inverse and any category we cannot list whole are
        #    listed per symbol)
        for category in sorted(categories):
            symbols = {str(c["symbol"]) for c in candidates if c["category"] == category}
            await self._list_open(report, exchange, category, symbols, discover)
        # 2. closed candidates: history per symbol, then one by one
        unresolved = [
            c
            for c in candidates
            if str(c["category"]) not in exchange.failed_categories
            and exchange.find(c["order_id"], str(c["order_link_id"])) is None
        ]
        await self._resolve_closed(report, exchange, unresolved)
        # 3. missing fills
        executions = await self._missing_fills(report, exchange, candidates)
        # 4. apply through the tracker
        before = {str(c["id"]): c for c in candidates}
        adopted: list[str] = []
        order_items = list(exchange.orders.values())
        for topic, items in (("order", order_items), ("execution", executions)):
            # bounded batches: each is one transaction, so row locks are held briefly
            for start in range(0, len(items), APPLY_BATCH):
                outcome = await self._tracker.handle(topic, items[start : start + APPLY_BATCH])
                adopted.extend(outcome.adopted)
        await self._compare(report, before, adopted)
        # 5. what the exchange does not know
        for c in candidates:
            if str(c["category"]) in exchange.failed_categories:
                continue
            if exchange.find(c["order_id"], str(c["order_link_id"])) is not None:
                continue
            if c["status"] == "submitting":
                report.submitting_unresolved += 1
                continue
            if c["status"] not in ("pending", "partially_filled", "untriggered", "triggered"):
                continue  # a closed order aged out of the exchange's history: nothing to say
            report.missing_on_exchange += 1
            report.missing.append(
                {
                    "id": str(c["id"]),
                    "order_link_id": str(c["order_link_id"]),
                    "order_id": c["order_id"],
                    "symbol": str(c["symbol"]),
                    "status": str(c["status"]),
                }
            )
            log.warning(
                "order unknown to the exchange (left unchanged)",
                order_uuid=str(c["id"]),
                order_link_id=c["order_link_id"],
                order_id=c["order_id"],
                status=c["status"],
            )
        if with_positions:
            await self._positions(report, categories)

    async def _list_open(
        self,
        report: SyncReport,
        exchange: _Exchange,
        category: str,
        symbols: set[str],
        discover: bool,
    ) -> None:
        try:
            if report.asset is not None:
                items = list(await self._exchange.fetch_open_orders(category, report.asset))
            elif discover and category != Category.INVERSE.value:
                items = list(await self._exchange.fetch_open_orders(category))
            else:
                items = []
                for symbol in sorted(symbols):
                    items.extend(await self._exchange.fetch_open_orders(category, symbol))
        except Exception as exc:  # recorded: nothing is concluded for this category
            exchange.failed_categories.add(category)
            report.errors.append(f"open orders of {category}: {type(exc).__name__}: {exc}")
            log.warning("open-order listing failed", category=category, error=repr(exc))
            return
        for item in items:
            exchange.add(category, item)

    async def _resolve_closed(
        self, report: SyncReport, exchange: _Exchange, unresolved: Sequence[Record]
    ) -> None:
        groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
        for c in unresolved:
            groups[(str(c["category"]), str(c["symbol"]))].append(c)
        for (category, symbol), orders in groups.items():
            if len(orders) > HISTORY_THRESHOLD:
                since = min(o["created_at"] for o in orders) - SLACK
                try:
                    for item in await self._exchange.fetch_order_history(
                        category, symbol=symbol, since=since
                    ):
                        exchange.add(category, item)
                except Exception as exc:  # fall back to one-by-one lookups below
                    log.warning("order history listing failed", symbol=symbol, error=repr(exc))
            for o in orders:
                if exchange.find(o["order_id"], str(o["order_link_id"])) is not None:
                    continue
                try:
                    if o["order_id"]:
                        found = await self._exchange.fetch_order(
                            category, order_id=str(o["order_id"]), order_link_id=None, symbol=symbol
                        )
                    else:
                        found = await self._exchange.fetch_order(
                            category,
                            order_id=None,
                            order_link_id=str(o["order_link_id"]),
                            symbol=symbol,
                        )
                except Exception as exc:  # recorded; this order is not judged
                    exchange.failed_categories.add(category)
                    report.errors.append(
                        f"lookup of {o['order_link_id']}: {type(exc).__name__}: {exc}"
                    )
                    continue
                if found is not None:
                    exchange.add(category, found)

    async def _missing_fills(
        self, report: SyncReport, exchange: _Exchange, candidates: Sequence[Record]
    ) -> list[dict[str, Any]]:
        """Executions of every exchange order whose cumExecQty exceeds our stored fills."""
        stored: dict[str, Decimal] = {}
        for c in candidates:
            item = exchange.find(c["order_id"], str(c["order_link_id"]))
            if item is not None:
                stored[str(item["orderId"])] = Decimal(c["executed_qty"])
        short: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for order_id, item in exchange.orders.items():
            if _dec(item.get("cumExecQty")) > stored.get(order_id, Decimal(0)):
                short[(str(item["category"]), str(item["symbol"]))].append(item)
        out: list[dict[str, Any]] = []
        for (category, symbol), orders in short.items():
            wanted = {str(o["orderId"]) for o in orders}
            got: dict[str, Decimal] = defaultdict(Decimal)
            if len(orders) > HISTORY_THRESHOLD:
                since = (
                    datetime.fromtimestamp(
                        min(int(o.get("createdTime") or 0) for o in orders) / 1000, UTC
                    )
                    - SLACK
                )
                try:
                    for e in await self._exchange.fetch_executions(
                        category, symbol=symbol, since=since
                    ):
                        if str(e.get("orderId")) in wanted:
                            out.append({**e, "category": category})
                            got[str(e["orderId"])] += _dec(e.get("execQty"))
                except Exception as exc:  # fall back to per-order lists below
                    log.warning("execution listing failed", symbol=symbol, error=repr(exc))
            for o in orders:
                order_id = str(o["orderId"])
                if got[order_id] >= _dec(o.get("cumExecQty")):
                    continue
                try:
                    fills = await self._exchange.fetch_order_executions(category, order_id)
                except Exception as exc:  # recorded; the order object still applies
                    report.errors.append(f"fills of {order_id}: {type(exc).__name__}: {exc}")
                    continue
                seen = {e["execId"] for e in out}
                out.extend(
                    {**e, "category": category} for e in fills if e.get("execId") not in seen
                )
        out.sort(key=lambda e: (int(e.get("execTime") or 0), str(e.get("execId"))))
        return out

    async def _compare(
        self, report: SyncReport, before: Mapping[str, Record], adopted: Sequence[str]
    ) -> None:
        ids = list(before) + [a for a in adopted if a not in before]
        if not ids:
            return
        after = {
            str(r["id"]): r
            for r in await self._queries.reconcile_candidates(
                active_only=False, symbol=None, created_since=None, ids=ids
            )
        }
        for order_uuid, old in before.items():
            new = after.get(order_uuid)
            if new is None:
                continue
            report.fills_added += int(new["fill_count"]) - int(old["fill_count"])
            if new["status"] != old["status"] or Decimal(new["cum_exec_qty"]) != Decimal(
                old["cum_exec_qty"]
            ):
                report.changed.append(
                    OrderChange(
                        id=order_uuid,
                        order_link_id=str(new["order_link_id"]),
                        order_id=new["order_id"],
                        symbol=str(new["symbol"]),
                        before=str(old["status"]),
                        after=str(new["status"]),
                        cum_exec_qty_before=Decimal(old["cum_exec_qty"]),
                        cum_exec_qty_after=Decimal(new["cum_exec_qty"]),
                    )
                )
        report.orders_changed = len(report.changed)
        for order_uuid in dict.fromkeys(adopted):
            if order_uuid in before:
                continue
            new = after.get(order_uuid)
            if new is None:
                continue
            report.fills_added += int(new["fill_count"])
            report.adopted.append(
                {
                    "id": order_uuid,
                    "order_link_id": str(new["order_link_id"]),
                    "order_id": new["order_id"],
                    "symbol": str(new["symbol"]),
                    "status": str(new["status"]),
                }
            )
        report.unknown_to_us = len(report.adopted)

    async def _positions(self, report: SyncReport, categories: set[str]) -> None:
        rows: list[dict[str, Any]] = []
        for category in sorted(categories):
            if not Category(category).has_positions:
                continue
            try:
                items = await self._exchange.fetch_positions(category, report.asset)
            except Exception as exc:  # recorded; positions stay as they are
                report.errors.append(f"positions of {category}: {type(exc).__name__}: {exc}")
                continue
            rows.extend({**item, "category": category} for item in items)
        if rows:
            await self._tracker.handle("position", rows)
        exchange_books = {}
        for row in rows:
            try:
                parsed = ExchangePosition.from_bybit(row)
            except (KeyError, ValueError, ArithmeticError) as exc:
                report.errors.append(f"unusable position row {row.get('symbol')}: {exc}")
                continue
            exchange_books[(parsed.category, parsed.symbol, parsed.position_idx)] = parsed
        async with self._uow_factory() as uow:
            stored = await uow.tracking.positions(is_dry_run=False)
        known = {(b.position.category, b.position.symbol, b.position.position_idx) for b in stored}
        for key, exchange_book in exchange_books.items():
            if key not in known and exchange_book.size != 0:
                # the exchange holds a position we have no book for (e.g. a manual trade
                # before any fill reached us)
                report.positions_checked += 1
                report.positions_drift += 1
        for book in stored:
            p = book.position
            if report.asset is not None and p.symbol != report.asset:
                continue
            if p.category.value not in categories:
                continue
            report.positions_checked += 1
            actual = exchange_books.get((p.category, p.symbol, p.position_idx))
            if actual is None:
                if p.size != 0:
                    report.positions_drift += 1
                continue
            if compare(p, actual).has_drift:
                report.positions_drift += 1
        if self._validator is not None and report.positions_drift:
            try:
                report.positions_corrected = await self._validator()
            except Exception as exc:  # recorded; the periodic validation retries
                report.errors.append(f"position validation: {type(exc).__name__}: {exc}")
        if report.positions_checked and (
            report.trigger in ("startup", "manual") or report.positions_corrected
        ):
            async with self._uow_factory() as uow:
                await uow.tracking.snapshot_positions(source="reconcile", is_dry_run=False)
                await uow.commit()


class PeriodicReconciler:
    """Component: an `active` sync every `interval` seconds (skipped while one runs).

    `stop()` lets a running sync (its own or one scheduled by `on_gap`) finish within
    `stop_grace_seconds` before cancelling it: a cancel in the middle of a commit would leave
    the database driver's transaction in an error state."""

    name = "reconciler"

    def __init__(
        self, reconciler: Reconciler, interval_seconds: float, *, stop_grace_seconds: float = 10.0
    ) -> None:
        self._reconciler = reconciler
        self._interval = interval_seconds
        self._grace = stop_grace_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="reconcile-timer")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, self._grace)
            self._task = None
        try:
            await asyncio.wait_for(self._reconciler.wait_pending(), self._grace)
        except TimeoutError:
            await self._reconciler.cancel_pending()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
                return
            if self._reconciler.running is not None:
                log.info("periodic reconciliation skipped: a sync is running")
                continue
            try:
                await self._reconciler.sync(trigger="periodic", scope="active", wait=True)
            except Exception as exc:  # logged; the next tick retries
                log.error("periodic reconciliation failed", exc_info=exc)
