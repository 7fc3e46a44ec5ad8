"""The tracker: exchange events -> exact order, fill and position state, plus outbox events.

For every delivered batch (one WebSocket message or gateway envelope — or several messages that
were already waiting, `handle_many`) the tracker opens ONE transaction and, item by item:

- `order` objects: lock the order row (`SELECT ... FOR UPDATE`, by orderId, else orderLinkId),
  apply the domain state machine (`apply_update`: only newer updates apply, terminal states are
  sticky, illegal transitions are refused and logged) and write each resulting `OrderEvent` to
  the outbox;
- `execution` items: store the fill unique by execId (a duplicate changes nothing), apply it to
  the order (`apply_execution`) and to its position book, write the order events;
- `position` items: keep the exchange's view (size, average, mark) and log/count any drift
  (correction is the periodic validation's job: a position push often races its fills);
- `wallet` items: the per-coin balances the risk checks read.

Rows touched by the transaction stay locked and in memory (`_Work`); at its end each touched
order is saved once, each touched position book saved once with one `position_updated` event,
then the exchange's position view and the wallet figures are written (`_flush`). Outbox events
are written in processing order, so an order's sequence follows the exchange's story.

Orders we have no row for are never dropped: the object itself (order topic) or a REST lookup
(execution topic; failing that, the execution's own order fields) becomes a new row — ours when
the orderLinkId carries our prefix (linked back to its signal via `parse_order_link_id`),
otherwise `is_external`.

Positions (this service is their single owner) follow the fills in execution order: a fill that
sorts after the book's last one is applied incrementally; a late fill triggers a replay of the
book from its baseline (the last drift correction, or flat) over the stored fills. Either way
the result depends only on the set of fills, not on their arrival order.

An event that matches a row by one id and contradicts it on the other (orderId found, but a
different orderLinkId; or the reverse) is about another order — a reused id, a misconfigured
exchange or simulator — and is refused: kept in the audit log as `order_identity_conflict`
with its raw body, logged as an error, the row untouched (`plans.identity_conflict`).

A batch that fails on the database is retried (`retries` times); an item that cannot be parsed
is kept in the audit log with its raw body.

**One transaction at a time per tracker.** The live stream, the reconciler (its periodic and
gap syncs, the API's ``/sync``, operator cancels) and the position keeper's fill catch-up all
write through the same tracker, each batch locking its orders and books in the order its items
came (the stream's arrival order, the exchange's listing order, REST pages). Two such batches
running at once can lock the same rows in opposite orders: PostgreSQL then aborts one of them
after ``deadlock_timeout`` (a second's stall of the stream, a retry, at worst a failed sync).
So the tracker's transactions take turns (``asyncio.Lock``): none of them waits on the network
(an unknown order's REST lookup happens between transactions), so a turn is short, and a batch
can no longer wait on another's rows while holding rows that one needs. ``waiting`` says how
many batches are waiting for their turn.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from prometheus_client import Counter

from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.orders import (
    ExchangeOrderUpdate,
    Execution,
    OrderState,
    UpdateOutcome,
    UpdateResult,
    apply_execution,
    apply_update,
)
from order_manager.domain.plans import identity_conflict, parse_order_link_id
from order_manager.domain.positions import (
    ExchangePosition,
    Position,
    PositionFill,
    apply_fill,
    compare,
    loss_ratio,
)
from order_manager.domain.signals import SignalMarketData
from order_manager.logs import trace_context
from order_manager.services import events
from order_manager.services.ports.exchange_events import (
    ExchangeEventSource,
    ExchangeQueries,
    GapHandler,
    RawBatch,
)
from order_manager.services.ports.orders import StoredOrder
from order_manager.services.ports.tracking import ExecKey, StoredPosition
from order_manager.services.ports.uow import UnitOfWork, UnitOfWorkFactory

log = structlog.get_logger(__name__)

EXCHANGE_EVENTS = Counter(
    "om_tracker_items_total", "Exchange event items by topic and outcome", ["topic", "outcome"]
)
ADOPTED = Counter("om_tracker_adopted_orders_total", "Unknown orders adopted", ["kind"])
DRIFT_OBSERVED = Counter(
    "om_position_drift_observed_total", "Exchange position pushes that differ from our book"
)
LOSS_WARNINGS = Counter(
    "om_position_loss_warnings_total",
    "Positions whose unrealised loss crossed ORDERMANAGER_LOSS_WARNING_THRESHOLD_PCT",
)

#: audit action of an event refused because it contradicts its row's ids
IDENTITY_CONFLICT = "order_identity_conflict"

ORDER = "order"
EXECUTION = "execution"
POSITION = "position"
WALLET = "wallet"

#: signals whose event enrichment the tracker keeps in memory (least recently used dropped)
ENRICHMENT_CACHE_SIZE = 4096
_Enrichment = tuple[events.SignalSummary | None, events.MarketConditions | None]

#: execution types that move a position (funding, settlement fees do not)
POSITION_EXEC_TYPES = frozenset({"Trade", "AdlTrade", "BustTrade", "BlockTrade", "MovePosition"})


def _wallet_item(item: Mapping[str, Any]) -> Mapping[str, Any]:
    return item


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    ORDER: ExchangeOrderUpdate.from_bybit,
    EXECUTION: Execution.from_bybit,
    POSITION: ExchangePosition.from_bybit,
    WALLET: _wallet_item,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"expected a decimal string, got {value!r}")
    return Decimal(value)


def _seq(item: Mapping[str, Any]) -> int:
    value = item.get("seq")
    try:
        return int(value) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def exec_key(execution: Execution, seq: int) -> ExecKey:
    return (execution.exec_time, seq, execution.exec_id)


def signal_id_from_token(token: str) -> str | None:
    """The signal UUID inside an orderLinkId token (None for hashed, non-UUID signal ids)."""
    try:
        raw = base64.urlsafe_b64decode(token + "==")
    except (ValueError, TypeError):
        return None
    return str(uuid.UUID(bytes=raw)) if len(raw) == 16 else None


class _UnknownOrder(Exception):
    """Internal: a fill for an order without a row; the batch is rerun after a REST lookup."""

    def __init__(self, execution: Execution) -> None:
        super().__init__(execution.order_id)
        self.execution = execution


@dataclass
class BatchOutcome:
    """What one batch did (tests and the bench read it; logs summarise it)."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    illegal: int = 0
    adopted: list[str] = field(default_factory=list)
    problems: int = 0
    order_events: int = 0
    position_events: int = 0


class Tracker:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        *,
        link_prefix: str,
        queries: ExchangeQueries | None = None,
        is_dry_run: bool = False,
        retries: int = 3,
        clock: Callable[[], datetime] = _now,
        loss_warning_ratio: Decimal | None = None,
        on_commit: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        #: called after every committed transaction with the symbols its items named
        #: (``StoreFreshness.committed``: lanes of those symbols waiting for a taker's final
        #: event read the store again)
        self._on_commit = on_commit
        self._loss_warning_ratio = loss_warning_ratio
        #: books whose loss is above the threshold now (a warning is raised on crossing only)
        self._losing: set[BookKey] = set()
        self._prefix = link_prefix
        self._queries = queries
        self._is_dry_run = is_dry_run
        self._retries = retries
        #: event enrichment per signal id, most recently used last. A signal's stored fields
        #: (strategy, confidence, amount, warm-up, raw body) never change after its claim, so
        #: this saves one read per fill of a recent signal's order.
        self._enrichment: OrderedDict[str, _Enrichment] = OrderedDict()
        self._clock = clock
        self._turn = asyncio.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Batches waiting for their turn (the tracker runs one transaction at a time)."""
        return self._waiting

    # ------------------------------------------------------------------ entry point
    async def handle(
        self,
        topic: str,
        items: Sequence[Mapping[str, Any]],
        created_at: datetime | None = None,
    ) -> BatchOutcome:
        """Apply one batch of raw Bybit objects of `topic` (`order.linear` is `order`)."""
        return await self.handle_many([(topic, items, created_at)])

    async def handle_many(self, batches: Sequence[RawBatch]) -> BatchOutcome:
        """Apply several batches (e.g. the WebSocket messages that were waiting) in arrival
        order, in ONE transaction."""
        prepared: list[tuple[str, list[tuple[Mapping[str, Any], str | None, Any]], Any]] = []
        for topic, items, created_at in batches:
            base = topic.split(".", 1)[0]
            parser = _PARSERS.get(base)
            if parser is None:
                log.warning("tracker ignores an unknown topic", topic=topic, items=len(items))
                EXCHANGE_EVENTS.labels(base, "unknown_topic").inc(len(items))
                continue
            prepared.append((base, self._parse(items, parser, base), created_at))
        if not prepared:
            return BatchOutcome()
        prefetched: dict[str, Mapping[str, Any] | None] = {}

        async def body(uow: UnitOfWork, outcome: BatchOutcome) -> None:
            work = _Work(uow, outcome)
            for base, parsed_items, created_at in prepared:
                for raw, error, parsed in parsed_items:
                    if error is not None:
                        await self._problem(uow, outcome, f"unparseable_{base}", error, raw)
                    elif base == ORDER:
                        await self._on_order(work, parsed, raw)
                    elif base == EXECUTION:
                        await self._on_execution(work, parsed, raw, prefetched)
                    elif base == POSITION:
                        work.exchange_positions[_book_key(parsed, self._is_dry_run)] = parsed
                    else:
                        await self._on_wallet(work, raw, created_at)
            await self._flush(work)

        label = "+".join(sorted({base for base, _, _ in prepared}))
        symbols = frozenset(
            symbol
            for _, parsed_items, _ in prepared
            for _, _, parsed in parsed_items
            if isinstance(symbol := getattr(parsed, "symbol", None), str)
        )
        while True:
            try:
                return await self._transaction(label, body, symbols)
            except _UnknownOrder as unknown:
                # fills of an order we have no row for: ask the exchange (outside any
                # transaction), then run the batch again with the answer
                prefetched[unknown.execution.order_id] = await self._lookup(unknown.execution)

    @staticmethod
    def _parse(
        items: Sequence[Mapping[str, Any]], parse: Callable[[Mapping[str, Any]], Any], topic: str
    ) -> list[tuple[Mapping[str, Any], str | None, Any]]:
        out: list[tuple[Mapping[str, Any], str | None, Any]] = []
        for item in items:
            try:
                out.append((item, None, parse(item)))
            except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                log.error("unparseable exchange item", topic=topic, error=repr(exc), item=item)
                out.append((item, f"{type(exc).__name__}: {exc}", None))
        return out

    async def _transaction(
        self,
        topic: str,
        body: Callable[[UnitOfWork, BatchOutcome], Awaitable[None]],
        symbols: frozenset[str] = frozenset(),
    ) -> BatchOutcome:
        attempt = 0
        while True:
            outcome = BatchOutcome()
            try:
                await self._take_turn()
                try:
                    async with self._uow_factory() as uow:
                        await body(uow, outcome)
                        await uow.commit()
                finally:
                    self._turn.release()
                if self._on_commit is not None:
                    self._on_commit(symbols)
                return outcome
            except _UnknownOrder:
                raise
            except Exception as exc:  # database trouble (connection, deadlock): retry the batch
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being cancelled: the rollback error must not swallow it
                attempt += 1
                if attempt > self._retries:
                    raise
                log.warning("tracker batch failed; retrying", topic=topic, error=repr(exc))

    async def _take_turn(self) -> None:
        """Wait until no other transaction of this tracker runs (release: ``_turn.release``)."""
        self._waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self._waiting -= 1

    async def _problem(
        self,
        uow: UnitOfWork,
        outcome: BatchOutcome,
        action: str,
        message: str,
        raw: Mapping[str, Any],
    ) -> None:
        outcome.problems += 1
        EXCHANGE_EVENTS.labels(action, "problem").inc()
        await uow.tracking.record_problem(action=action, message=message, raw=raw, trace_id=None)

    # ------------------------------------------------------------------ orders
    async def _locate(self, work: _Work, order_id: str, order_link_id: str) -> _Open | None:
        """The order touched earlier in this transaction, else its row locked FOR UPDATE."""
        uid = (order_id and work.by_order_id.get(order_id)) or (
            order_link_id and work.by_link.get(order_link_id)
        )
        if uid:
            return work.orders[uid]
        if not order_id and not order_link_id:
            return None
        found = await work.uow.orders.locate(order_id, order_link_id, for_update=True)
        return work.register(found) if found is not None else None

    def _ownership(self, order_link_id: str) -> tuple[str | None, int | None, bool]:
        """(signal_id, leg, is_external) for an order link id."""
        parsed = parse_order_link_id(self._prefix, order_link_id) if order_link_id else None
        if parsed is None:
            return None, None, True
        token, leg = parsed
        return signal_id_from_token(token), leg, False

    async def _adopt(self, work: _Work, state: OrderState, source: str) -> _Open:
        uow = work.uow
        signal_id, leg, external = self._ownership(state.order_link_id)
        if signal_id is not None and not await uow.tracking.signal_exists(signal_id):
            signal_id = None
        order_uuid = await uow.tracking.adopt_order(
            state,
            signal_id=signal_id,
            leg=leg,
            is_external=external,
            trace_id=uuid.uuid4().hex,
            is_dry_run=self._is_dry_run,
        )
        stored = await uow.orders.get_by_uuid(order_uuid, for_update=True)
        if stored is None:
            raise RuntimeError(f"adopted order {order_uuid} vanished")
        kind = "external" if external else "ours"
        ADOPTED.labels(kind).inc()
        work.outcome.adopted.append(order_uuid)
        log.warning(
            "adopted an order we had no row for",
            kind=kind,
            source=source,
            order_id=state.order_id,
            order_link_id=state.order_link_id,
            signal_id=signal_id,
            order_uuid=order_uuid,
        )
        return work.register(stored)

    async def _conflicts(
        self,
        work: _Work,
        opened: _Open,
        order_id: str,
        order_link_id: str,
        raw: Mapping[str, Any],
    ) -> bool:
        """True (and the item kept as a problem, the row untouched) when the event contradicts
        the row it was matched to on the other id (``identity_conflict``)."""
        state = opened.state
        why = identity_conflict(state.order_id, state.order_link_id, order_id, order_link_id)
        if why is None:
            return False
        log.error(
            "exchange event refused: it names another order than the row it matched",
            reason=why,
            order_uuid=opened.stored.uuid,
            order_id=order_id,
            order_link_id=order_link_id,
        )
        await self._problem(work.uow, work.outcome, IDENTITY_CONFLICT, why, raw)
        return True

    async def _on_order(
        self, work: _Work, update: ExchangeOrderUpdate, raw: Mapping[str, Any]
    ) -> None:
        opened = await self._locate(work, update.order_id, update.order_link_id)
        if opened is not None and await self._conflicts(
            work, opened, update.order_id, update.order_link_id, raw
        ):
            return
        if opened is None:
            opened = await self._adopt(work, state_from_update(update), ORDER)
        with trace_context(opened.stored.trace_id):
            await self._after(work, opened, apply_update(opened.state, update), ORDER, raw)

    async def _after(
        self,
        work: _Work,
        opened: _Open,
        result: UpdateResult,
        topic: str,
        raw: Mapping[str, Any],
    ) -> None:
        """Keep an applied result (saved once per order at the end of the transaction) and
        write its events to the outbox now, in order."""
        outcome = work.outcome
        EXCHANGE_EVENTS.labels(topic, result.outcome.value).inc()
        if result.outcome is UpdateOutcome.DUPLICATE:
            outcome.duplicates += 1
            return
        if result.outcome is UpdateOutcome.STALE:
            outcome.stale += 1
            return
        if result.outcome is not UpdateOutcome.APPLIED:
            outcome.illegal += 1
            log.warning(
                "exchange event refused by the order state machine",
                outcome=result.outcome.value,
                reason=result.reason,
                order_uuid=opened.stored.uuid,
                status=opened.state.status.value,
                item=dict(raw),
            )
            return
        outcome.applied += 1
        opened.state = result.state
        opened.dirty = True
        if result.state.order_id:
            work.by_order_id[result.state.order_id] = opened.stored.uuid
        if not result.events:
            return
        stored = opened.stored
        context = events.OrderContext(
            order_uuid=stored.uuid,
            signal_id=stored.signal_id,
            is_dry_run=stored.is_dry_run,
            submitted_at=stored.submitted_at,
            is_external=stored.is_external,
        )
        signal, market = await self._signal(work, stored)
        for event in result.events:
            await events.publish_order_event(
                work.uow.outbox,
                event,
                context,
                trace_id=stored.trace_id,
                signal=signal,
                market=market,
            )
            outcome.order_events += 1

    async def _signal(self, work: _Work, stored: StoredOrder) -> _Enrichment:
        if stored.signal_id is None:
            return None, None
        cached = self._enrichment.get(stored.signal_id)
        if cached is not None:
            self._enrichment.move_to_end(stored.signal_id)
            return cached
        info = stored.signal_info  # joined by `locate`: no extra read
        if info is None:
            info = await work.uow.tracking.signal_info(stored.signal_id)
        result = signal_enrichment(stored.signal_id, info)
        if info is not None:  # a row that is not there (yet) is asked for again next time
            self._enrichment[stored.signal_id] = result
            if len(self._enrichment) > ENRICHMENT_CACHE_SIZE:
                self._enrichment.popitem(last=False)
        return result

    # ------------------------------------------------------------------ executions
    async def _lookup(self, execution: Execution) -> Mapping[str, Any] | None:
        """The exchange's order object for a fill of an unknown order (None if unavailable)."""
        if self._queries is None:
            return None
        category = (execution.category or Category.LINEAR).value
        try:
            return await self._queries.fetch_order(
                category, order_id=execution.order_id, order_link_id=None
            )
        except Exception as exc:  # the exchange may be unreachable: adopt from the fill
            log.warning(
                "order lookup for an unknown fill failed",
                order_id=execution.order_id,
                error=repr(exc),
            )
            return None

    async def _adopt_for_fill(
        self,
        work: _Work,
        execution: Execution,
        raw: Mapping[str, Any],
        prefetched: Mapping[str, Mapping[str, Any] | None],
    ) -> _Open:
        if (
            self._queries is not None
            and execution.order_id
            and execution.order_id not in prefetched
        ):
            raise _UnknownOrder(execution)
        fetched = prefetched.get(execution.order_id)
        update: ExchangeOrderUpdate | None = None
        if fetched is not None:
            try:
                update = ExchangeOrderUpdate.from_bybit(fetched)
            except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                log.warning("fetched order is unusable", error=repr(exc), order=fetched)
        state = state_from_update(update) if update else state_from_execution(execution, raw)
        opened = await self._adopt(work, state, EXECUTION)
        if update is not None and fetched is not None:
            # the fetched object is the freshest order state: apply it first
            await self._after(work, opened, apply_update(opened.state, update), ORDER, fetched)
        return opened

    async def _on_execution(
        self,
        work: _Work,
        execution: Execution,
        raw: Mapping[str, Any],
        prefetched: Mapping[str, Mapping[str, Any] | None],
    ) -> None:
        opened = await self._locate(work, execution.order_id, execution.order_link_id)
        if opened is not None and await self._conflicts(
            work, opened, execution.order_id, execution.order_link_id, raw
        ):
            return
        if opened is None:
            opened = await self._adopt_for_fill(work, execution, raw, prefetched)
        stored = opened.stored
        with trace_context(stored.trace_id):
            state = opened.state
            category = execution.category or state.category
            inserted = await work.uow.tracking.insert_execution(
                execution,
                order_uuid=stored.uuid,
                category=category,
                position_idx=state.position_idx,
                exchange_seq=_seq(raw) or None,
                closed_size=_dec(raw.get("closedSize")),
                fee_rate=_dec(raw.get("feeRate")),
                is_dry_run=stored.is_dry_run,
                trace_id=stored.trace_id,
            )
            if not inserted:
                work.outcome.duplicates += 1
                EXCHANGE_EVENTS.labels(EXECUTION, "duplicate").inc()
                return
            await self._after(work, opened, apply_execution(state, execution), EXECUTION, raw)
            if category.has_positions and execution.exec_type in POSITION_EXEC_TYPES:
                await self._apply_to_book(
                    work, category, execution, exec_key(execution, _seq(raw)), opened
                )

    async def _book(
        self, work: _Work, category: Category, symbol: str, idx: PositionIdx, is_dry_run: bool
    ) -> _Book:
        key = (category, symbol, idx, is_dry_run)
        book = work.books.get(key)
        if book is None:
            stored = await work.uow.tracking.lock_position(
                category, symbol, idx, is_dry_run=is_dry_run
            )
            book = _Book(stored, stored.position, stored.last_exec_key)
            work.books[key] = book
        return book

    async def _apply_to_book(
        self,
        work: _Work,
        category: Category,
        execution: Execution,
        key: ExecKey,
        opened: _Open,
    ) -> None:
        stored = opened.stored
        idx = opened.state.position_idx
        book = await self._book(work, category, execution.symbol, idx, stored.is_dry_run)
        baseline_key = book.stored.baseline_key
        if baseline_key is not None and key <= baseline_key:
            return  # already inside the exchange's corrected figures
        fill = PositionFill.from_execution(execution, idx)
        try:
            if book.last_key is None or key > book.last_key:
                book.position, book.last_key = apply_fill(book.position, fill), key
            else:  # a late fill: rebuild the book in execution order
                book.position, book.last_key = await self._replay(
                    work.uow, book.stored, stored.is_dry_run
                )
        except ValueError as exc:
            await self._problem(
                work.uow,
                work.outcome,
                "position_fill_refused",
                str(exc),
                {"exec_id": execution.exec_id},
            )
            return
        book.dirty = True
        book.trace_id = stored.trace_id

    async def _replay(
        self, uow: UnitOfWork, book: StoredPosition, is_dry_run: bool
    ) -> tuple[Position, ExecKey | None]:
        """The book rebuilt from its baseline over every stored fill after it, in order."""
        position = replace(book.baseline, mark_price=book.position.mark_price)
        last: ExecKey | None = book.baseline_key
        fills = await uow.tracking.book_fills(
            position.category,
            position.symbol,
            position.position_idx,
            is_dry_run=is_dry_run,
            after=book.baseline_key,
        )
        for fill, key in fills:
            position = apply_fill(position, fill)
            last = key
        return position, last

    # ------------------------------------------------------------------ end of transaction
    async def _flush(self, work: _Work) -> None:
        """Write what the batch changed: each touched order once, each touched book once (with
        one `position_updated` event), then the exchange's position view and the wallet."""
        uow = work.uow
        for opened in work.orders.values():
            if opened.dirty:
                await uow.orders.save(opened.stored, opened.state)
        views = dict(work.exchange_positions)
        for key, book in work.books.items():
            if not book.dirty:
                continue
            is_dry_run = key[3]
            # a push of the same book in this batch is written with it (one statement)
            view = views.pop(key, None) if key[0].has_positions else None
            if view is None:
                await uow.tracking.save_position(
                    book.position, is_dry_run=is_dry_run, last_exec_key=book.last_key
                )
            await events.publish_position_updated(
                uow.outbox,
                book.position,
                is_dry_run=is_dry_run,
                trace_id=book.trace_id,
                source="execution",
            )
            work.outcome.position_events += 1
            if view is not None:
                stored = await uow.tracking.save_position_with_view(
                    book.position,
                    view,
                    is_dry_run=is_dry_run,
                    last_exec_key=book.last_key,
                    observed_at=self._clock(),
                )
                await self._after_position(uow, view, stored)
        for exchange in views.values():
            await self._on_position(uow, exchange)
        for (account_type, coin), (figures, created_at) in work.wallet.items():
            await uow.tracking.upsert_wallet(
                account_type=account_type,
                coin=coin,
                figures=figures,
                exchange_time=created_at,
                source="ws",
                is_dry_run=self._is_dry_run,
            )

    async def _on_position(self, uow: UnitOfWork, exchange: ExchangePosition) -> None:
        if not exchange.category.has_positions:
            return
        book = await uow.tracking.record_exchange_position(
            exchange, is_dry_run=self._is_dry_run, observed_at=self._clock()
        )
        await self._after_position(uow, exchange, book)

    async def _after_position(
        self, uow: UnitOfWork, exchange: ExchangePosition, book: StoredPosition
    ) -> None:
        """The exchange's view is stored: watch the loss, compare with our book."""
        await self._watch_loss(uow, exchange, book.position)
        drift = compare(book.position, exchange)
        EXCHANGE_EVENTS.labels(POSITION, "drift" if drift.has_drift else "match").inc()
        if drift.has_drift:
            DRIFT_OBSERVED.inc()
            log.info(
                "exchange position differs from our book (validation corrects lasting drift)",
                symbol=exchange.symbol,
                position_idx=int(exchange.position_idx),
                fields=[(f.name, str(f.expected), str(f.actual)) for f in drift.fields],
            )

    async def _watch_loss(
        self, uow: UnitOfWork, exchange: ExchangePosition, position: Position
    ) -> None:
        """Loss monitor (docs/decisions.md §10): when a position's unrealised loss at the
        exchange's mark price (``positions.loss_ratio`` on our exact book) crosses the warning
        ratio, log a warning, count it and publish a `position_updated` event with
        source `loss_warning`. Once per crossing: the book must come back under the threshold
        before it warns again. It never closes anything — exits are the model's decision."""
        if self._loss_warning_ratio is None:
            return
        key = _book_key(exchange, self._is_dry_run)
        mark = exchange.mark_price
        ratio = loss_ratio(position, mark) if mark else None
        if ratio is None or ratio < self._loss_warning_ratio:
            self._losing.discard(key)
            return
        if key in self._losing:
            return
        self._losing.add(key)
        LOSS_WARNINGS.inc()
        log.warning(
            "position loss above the warning threshold",
            symbol=exchange.symbol,
            position_idx=int(exchange.position_idx),
            loss_pct=str((ratio * 100).quantize(Decimal("0.01"))),
            threshold_pct=str(self._loss_warning_ratio * 100),
            mark_price=str(mark),
            is_dry_run=self._is_dry_run,
        )
        await events.publish_position_updated(
            uow.outbox, position, is_dry_run=self._is_dry_run, trace_id=None, source="loss_warning"
        )

    async def _on_wallet(
        self, work: _Work, account: Mapping[str, Any], created_at: datetime | None
    ) -> None:
        """Parse now, write once per coin at the end (the newest figures win)."""
        coins = account.get("coin")
        if not isinstance(coins, Sequence) or isinstance(coins, str | bytes):
            await self._problem(
                work.uow, work.outcome, "unparseable_wallet", "no coin list", account
            )
            return
        account_type = str(account.get("accountType") or "UNIFIED")
        for coin in coins:
            try:
                figures = {
                    "wallet_balance": _dec(coin.get("walletBalance")),
                    "equity": _dec(coin.get("equity")),
                    "available_to_withdraw": _dec(coin.get("availableToWithdraw")),
                    "total_position_im": _dec(coin.get("totalPositionIM")),
                    "total_order_im": _dec(coin.get("totalOrderIM")),
                    "locked": _dec(coin.get("locked")),
                    "unrealised_pnl": _dec(coin.get("unrealisedPnl")),
                }
                name = str(coin["coin"])
            except (KeyError, ValueError, TypeError, ArithmeticError, AttributeError) as exc:
                await self._problem(
                    work.uow, work.outcome, "unparseable_wallet", repr(exc), {"coin": coin}
                )
                continue
            work.wallet[(account_type, name)] = (figures, created_at)
        EXCHANGE_EVENTS.labels(WALLET, "applied").inc()


# ---------------------------------------------------------------------------- batch context


@dataclass
class _Open:
    """An order touched in the current transaction (its row is locked)."""

    stored: StoredOrder
    state: OrderState
    dirty: bool = False


@dataclass
class _Book:
    """A position book touched in the current transaction (its row is locked)."""

    stored: StoredPosition
    position: Position
    last_key: ExecKey | None
    dirty: bool = False
    trace_id: str | None = None


BookKey = tuple[Category, str, PositionIdx, bool]


def _book_key(exchange: ExchangePosition, is_dry_run: bool) -> BookKey:
    return (exchange.category, exchange.symbol, exchange.position_idx, is_dry_run)


class _Work:
    """Everything one transaction touched; written once at its end (`Tracker._flush`)."""

    def __init__(self, uow: UnitOfWork, outcome: BatchOutcome) -> None:
        self.uow = uow
        self.outcome = outcome
        self.orders: dict[str, _Open] = {}
        self.by_order_id: dict[str, str] = {}
        self.by_link: dict[str, str] = {}
        self.books: dict[BookKey, _Book] = {}
        self.exchange_positions: dict[BookKey, ExchangePosition] = {}
        self.wallet: dict[tuple[str, str], tuple[dict[str, Decimal | None], datetime | None]] = {}

    def register(self, stored: StoredOrder) -> _Open:
        opened = self.orders.get(stored.uuid)
        if opened is None:
            opened = _Open(stored, stored.state)
            self.orders[stored.uuid] = opened
        state = opened.state
        if state.order_id:
            self.by_order_id[state.order_id] = stored.uuid
        self.by_link[state.order_link_id] = stored.uuid
        return opened


def signal_enrichment(signal_id: str, info: Mapping[str, Any] | None) -> _Enrichment:
    """Event enrichment from a stored signal: its summary and the market it saw."""
    if info is None:
        return events.SignalSummary(signal_id), None
    summary = events.SignalSummary(
        signal_id,
        info.get("strategy_id"),
        info.get("confidence"),
        info.get("amount"),
        is_warmup=bool(info.get("is_warmup", False)),
    )
    snapshot = info.get("market_data_snapshot")
    if not isinstance(snapshot, Mapping):
        return summary, None
    try:
        data = SignalMarketData(
            price=_dec(str(snapshot["price"])) if snapshot.get("price") is not None else None,
            spread=_dec(str(snapshot["spread"])) if snapshot.get("spread") is not None else None,
        )
    except (ValueError, ArithmeticError):
        return summary, None
    return summary, events.MarketConditions.from_signal(data)


# ---------------------------------------------------------------------------- adoption helpers


def state_from_update(update: ExchangeOrderUpdate) -> OrderState:
    """An acknowledged (pending) order built from an exchange order object; the object itself
    is then applied through the state machine like any other update."""
    state = OrderState.submitting(
        order_link_id=update.order_link_id,
        category=update.category or Category.LINEAR,
        symbol=update.symbol,
        side=update.side,
        order_type=update.order_type,
        qty=update.qty,
        price=update.price if update.order_type is OrderType.LIMIT else None,
        time_in_force=update.time_in_force,
        created_at=update.created_time or update.updated_time,
        reduce_only=update.reduce_only,
        position_idx=update.position_idx,
        take_profit=update.take_profit,
        stop_loss=update.stop_loss,
    )
    return replace(state, order_id=update.order_id)


def state_from_execution(execution: Execution, raw: Mapping[str, Any]) -> OrderState:
    """Best knowledge of an unknown order when only its fill is known (REST lookup failed)."""
    qty = _dec(raw.get("orderQty")) or execution.exec_qty
    order_type = OrderType(raw.get("orderType") or "Market")
    price = _dec(raw.get("orderPrice")) if order_type is OrderType.LIMIT else None
    tif = TimeInForce.IOC if order_type is OrderType.MARKET else TimeInForce.GTC
    state = OrderState.submitting(
        order_link_id=execution.order_link_id,
        category=execution.category or Category.LINEAR,
        symbol=execution.symbol,
        side=Side(execution.side),
        order_type=order_type,
        qty=max(qty, execution.exec_qty),
        price=price if price else None,
        time_in_force=tif,
        created_at=execution.exec_time,
    )
    return replace(state, order_id=execution.order_id or None)


# ---------------------------------------------------------------------------- running it


async def run_tracker(
    tracker: Tracker,
    source: ExchangeEventSource,
    *,
    on_gap: GapHandler | None = None,
) -> None:
    """Feed `tracker` from `source` until cancelled."""

    async def handle(batches: Sequence[RawBatch]) -> None:
        await tracker.handle_many(batches)

    await source.run(handle, on_gap)


async def resync_orders(
    tracker: Tracker,
    uow_factory: UnitOfWorkFactory,
    queries: ExchangeQueries,
    *,
    categories: Sequence[Category] = (Category.LINEAR,),
    is_dry_run: bool = False,
) -> int:
    """After a gap: re-apply the exchange's view of every open order and of every order we
    still think is open (with its fills). Returns the number of orders looked at. Everything
    goes through `Tracker.handle`, so it is idempotent and order-insensitive."""
    seen: set[str] = set()
    for category in categories:
        open_now = list(await queries.fetch_open_orders(category.value))
        if open_now:
            await tracker.handle(ORDER, [{"category": category.value, **o} for o in open_now])
        seen.update(str(o.get("orderId")) for o in open_now)
    async with uow_factory() as uow:
        ours = await uow.orders.all_open_orders(is_dry_run=is_dry_run)
    looked = len(seen)
    for stored in ours:
        state = stored.state
        if state.category not in categories:
            continue
        cat = state.category.value
        order = None
        if state.order_id and state.order_id not in seen:
            order = await queries.fetch_order(cat, order_id=state.order_id, order_link_id=None)
        elif not state.order_id:
            order = await queries.fetch_order(cat, order_id=None, order_link_id=state.order_link_id)
        if order is not None:
            looked += 1
            await tracker.handle(ORDER, [{"category": cat, **order}])
        order_id = state.order_id or (str(order.get("orderId")) if order else None)
        if order_id:
            fills = list(await queries.fetch_order_executions(cat, order_id))
            if fills:
                await tracker.handle(EXECUTION, [{"category": cat, **f} for f in fills])
    return looked
