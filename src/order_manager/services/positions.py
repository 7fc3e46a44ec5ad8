"""Positions: periodic snapshots and validation against the exchange (the tracker owns the
books; this service only snapshots and corrects them).

Hybrid storage (spec): `positions` holds the current book, `position_snapshots` a copy every
`ORDERMANAGER_POSITION_SNAPSHOT_INTERVAL` seconds (plus one per correction).

Validation (every `ORDERMANAGER_POSITION_VALIDATION_INTERVAL` seconds, and on demand after a
WebSocket gap): the exchange's positions are read through REST and compared with our books
(size exactly, average entry within a relative tolerance). A difference is drift; it is logged
and counted. It is corrected only when the book has been quiet (no fill stored for
`quiet_seconds`): a book in the middle of a burst of fills legitimately differs from a REST view
taken at another instant.

Before correcting, the keeper looks for the fills we missed (with `history` and `apply_fills`
configured, as the service does): it lists the exchange's executions of the symbol since the
book was last found equal to the exchange (`validated_at`, less a minute of slack; an hour back
when it never was) and hands them to the tracker, which skips the ones it has (execId) and
applies the rest exactly like stream events — their fees and realised PnL included, which a
correction cannot recover. If the book then matches, the drift is reported as `caught_up`;
otherwise (the fills do not explain it, or the listing failed) it is corrected.

Correction makes the exchange's figures the book's *baseline*, valid up to the position's
`updatedTime` (fills up to that instant are inside it); stored fills after it are replayed on
top, and later fills continue from there. Realised PnL and fees stay ours (Bybit's cumulative
figure includes funding). Every correction writes a snapshot (`validation`) and a
`position_updated` event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog
from prometheus_client import Counter

from order_manager.domain.enums import Category, PositionIdx
from order_manager.domain.orders import ms_to_datetime
from order_manager.domain.positions import ExchangePosition, Position, apply_fill, compare
from order_manager.services import events
from order_manager.services.ports.exchange_events import ExchangeQueries
from order_manager.services.ports.tracking import ExecKey, StoredPosition
from order_manager.services.ports.uow import UnitOfWorkFactory

log = structlog.get_logger(__name__)

DRIFT_DETECTED = Counter(
    "om_position_drift_total", "Position validations that found drift", ["corrected"]
)
SNAPSHOTS = Counter("om_position_snapshots_total", "Position snapshot rows written", ["source"])

#: how far before the last good validation the fill catch-up starts listing executions
CATCH_UP_SLACK = timedelta(minutes=1)
#: how far back it lists for a book that was never validated
CATCH_UP_LOOKBACK = timedelta(hours=1)


class ExecutionHistory(Protocol):
    """The exchange's fills of a symbol (`adapters.bybit.queries.BybitReconcileQueries`)."""

    async def fetch_executions(
        self, category: str, *, symbol: str | None, since: datetime, until: datetime | None = None
    ) -> Sequence[Mapping[str, Any]]: ...


#: hands raw `execution` items to the tracker (`Tracker.handle("execution", items)`)
ApplyFills = Callable[[str, Sequence[Mapping[str, Any]]], Awaitable[object]]

#: seq/execId that sort after any real fill of the same millisecond
_AFTER_ALL_SEQ = 2**62
_AFTER_ALL_ID = "~"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ValidationReport:
    checked: int = 0
    drift: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    #: drift explained by fills the exchange listed and the tracker had missed
    caught_up: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def baseline_from_exchange(ours: Position, exchange: ExchangePosition) -> Position:
    """Our book with the exchange's size and average entry (our PnL and fees kept)."""
    size = exchange.size
    avg = exchange.avg_entry_price
    if size == 0 or avg is None:
        entry = Decimal(0)
    elif ours.category is Category.INVERSE:
        entry = abs(size) / avg
    else:
        entry = abs(size) * avg
    return replace(ours, size=size, entry_value=entry, mark_price=exchange.mark_price)


def catch_up_start(book: StoredPosition, now: datetime) -> datetime:
    """Where listing missed fills starts: the last moment the book was known equal to the
    exchange (its last good validation, or its correction's baseline), less a minute of slack;
    an hour back when there is neither."""
    known = [book.validated_at, book.baseline_key[0] if book.baseline_key else None]
    good = max((moment for moment in known if moment is not None), default=None)
    return now - CATCH_UP_LOOKBACK if good is None else good - CATCH_UP_SLACK


class PositionKeeper:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        queries: ExchangeQueries,
        *,
        categories: Sequence[Category] = (Category.LINEAR,),
        is_dry_run: bool = False,
        quiet_seconds: float = 5.0,
        price_tolerance: Decimal = Decimal("0.0001"),
        clock: Callable[[], datetime] = _now,
        history: ExecutionHistory | None = None,
        apply_fills: ApplyFills | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._queries = queries
        self._categories = tuple(c for c in categories if c.has_positions)
        self._is_dry_run = is_dry_run
        self._quiet = timedelta(seconds=quiet_seconds)
        self._tolerance = price_tolerance
        self._clock = clock
        self._history = history
        self._apply_fills = apply_fills

    async def snapshot(self, source: str = "periodic") -> int:
        async with self._uow_factory() as uow:
            count = await uow.tracking.snapshot_positions(
                source=source, is_dry_run=self._is_dry_run
            )
            await uow.commit()
        SNAPSHOTS.labels(source).inc(count)
        return count

    async def validate(self, *, force: bool = False) -> ValidationReport:
        """Compare every book with the exchange; correct lasting drift (`force`: even when the
        book is not quiet — for operator-triggered syncs)."""
        report = ValidationReport()
        for category in self._categories:
            try:
                rows = await self._queries.fetch_positions(category.value)
            except Exception as exc:  # the exchange cannot answer: nothing is concluded
                report.errors.append(f"{category.value}: {exc!r}")
                log.warning("position validation could not read the exchange", error=repr(exc))
                continue
            exchange: dict[tuple[str, PositionIdx], tuple[ExchangePosition, Mapping[str, Any]]] = {}
            for raw in rows:
                try:
                    pos = ExchangePosition.from_bybit(raw, category)
                except (KeyError, ValueError, ArithmeticError) as exc:
                    report.errors.append(f"unparseable position {raw!r}: {exc!r}")
                    continue
                exchange[(pos.symbol, pos.position_idx)] = (pos, raw)
            async with self._uow_factory() as uow:
                books = [
                    b
                    for b in await uow.tracking.positions(is_dry_run=self._is_dry_run)
                    if b.position.category is category
                ]
            keys = {(b.position.symbol, b.position.position_idx) for b in books} | set(exchange)
            for symbol, idx in sorted(keys):
                seen = exchange.get((symbol, idx))
                since = await self._validate_book(
                    category, symbol, idx, seen, report, force, may_catch_up=True
                )
                if since is not None:
                    await self._catch_up(category, symbol, since, report)
                    await self._validate_book(
                        category, symbol, idx, seen, report, force, may_catch_up=False
                    )
        return report

    async def _catch_up(
        self, category: Category, symbol: str, since: datetime, report: ValidationReport
    ) -> None:
        """Hand the exchange's fills of the symbol since ``since`` to the tracker (it skips
        the ones it has). A failed listing is reported; the book is then corrected."""
        assert self._history is not None and self._apply_fills is not None
        try:
            fills = await self._history.fetch_executions(category.value, symbol=symbol, since=since)
        except Exception as exc:  # recorded; the correction below still applies
            report.errors.append(f"executions of {category.value}:{symbol}: {exc!r}")
            log.warning("fill catch-up could not list executions", symbol=symbol, error=repr(exc))
            return
        if fills:
            await self._apply_fills("execution", [{**f, "category": category.value} for f in fills])

    async def _validate_book(
        self,
        category: Category,
        symbol: str,
        idx: PositionIdx,
        seen: tuple[ExchangePosition, Mapping[str, Any]] | None,
        report: ValidationReport,
        force: bool,
        *,
        may_catch_up: bool = False,
    ) -> datetime | None:
        """Validate one book. Returns where a fill catch-up should start listing when the book
        drifted and missed fills may explain it (nothing was concluded yet: the caller lists
        them, outside this transaction, and validates again); None when done."""
        now = self._clock()
        if seen is None:
            exchange = ExchangePosition(
                category, symbol, idx, Decimal(0), None, None, Decimal(0), Decimal(0)
            )
            raw: Mapping[str, Any] = {}
        else:
            exchange, raw = seen
        name = f"{category.value}:{symbol}:{int(idx)}"
        if may_catch_up:
            report.checked += 1
        async with self._uow_factory() as uow:
            book = await uow.tracking.lock_position(
                category, symbol, idx, is_dry_run=self._is_dry_run
            )
            drift = compare(book.position, exchange, price_tolerance=self._tolerance)
            if not drift.has_drift:
                await uow.tracking.mark_validated(
                    category, symbol, idx, is_dry_run=self._is_dry_run, at=now
                )
                await uow.commit()
                if not may_catch_up:  # the drift found a moment ago was missed fills
                    report.caught_up.append(name)
                    DRIFT_DETECTED.labels("fills").inc()
                    log.warning("position drift explained by missed fills, now applied", book=name)
                return None
            if may_catch_up:
                report.drift.append(name)
            fields = [(f.name, str(f.expected), str(f.actual)) for f in drift.fields]
            last_fill = await uow.tracking.last_fill_time(
                category, symbol, idx, is_dry_run=self._is_dry_run
            )
            if not force and last_fill is not None and now - last_fill < self._quiet:
                report.deferred.append(name)
                DRIFT_DETECTED.labels("no").inc()
                log.info(
                    "position drift while fills are arriving; re-checked later",
                    book=name,
                    fields=fields,
                )
                return None
            if may_catch_up and self._history is not None and self._apply_fills is not None:
                return catch_up_start(book, now)
            updated = raw.get("updatedTime")
            cut = ms_to_datetime(updated) if updated not in (None, "", "0", 0) else now
            baseline_key: ExecKey = (cut, _AFTER_ALL_SEQ, _AFTER_ALL_ID)
            baseline = baseline_from_exchange(book.position, exchange)
            await uow.tracking.correct_position(
                baseline, is_dry_run=self._is_dry_run, baseline_key=baseline_key, detected_at=now
            )
            position, last = baseline, baseline_key
            for fill, key in await uow.tracking.book_fills(
                category, symbol, idx, is_dry_run=self._is_dry_run, after=baseline_key
            ):
                position, last = apply_fill(position, fill), key
            if last != baseline_key:
                await uow.tracking.save_position(
                    position, is_dry_run=self._is_dry_run, last_exec_key=last
                )
            await uow.tracking.snapshot_positions(source="validation", is_dry_run=self._is_dry_run)
            await events.publish_position_updated(
                uow.outbox,
                position,
                is_dry_run=self._is_dry_run,
                trace_id=None,
                source="validation",
            )
            await uow.commit()
        report.corrected.append(name)
        DRIFT_DETECTED.labels("yes").inc()
        log.warning("position drift corrected from the exchange", book=name, fields=fields)
        return None

    async def run(
        self, stop: asyncio.Event, *, snapshot_interval: float, validation_interval: float
    ) -> None:
        """Snapshot and validate on their intervals until `stop` is set."""
        loop = asyncio.get_running_loop()
        next_snapshot = loop.time() + snapshot_interval
        next_validation = loop.time() + validation_interval
        while not stop.is_set():
            wake = min(next_snapshot, next_validation)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wake - loop.time()))
            if stop.is_set():
                return
            try:
                if loop.time() >= next_validation:
                    next_validation = loop.time() + validation_interval
                    await self.validate()
                if loop.time() >= next_snapshot:
                    next_snapshot = loop.time() + snapshot_interval
                    await self.snapshot()
            except Exception as exc:  # keep the schedule alive; the next round retries
                log.exception("position maintenance failed", error=repr(exc))
