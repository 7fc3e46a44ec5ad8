"""Signal intake: parse → dedupe → per-symbol lane → process → commit outcome → ack.

At-least-once delivery, exactly-once effect (architecture mechanism 3):

1. The dispatch loop takes one delivery at a time from the ``SignalSource`` and parses it with
   the domain's parser (numbers are Decimals from the raw text). A valid signal goes to the
   lane of its ``(category, symbol)``; a malformed message to the ``malformed`` lane. A full
   lane blocks the loop, so the consumer stops taking (backpressure; prefetch bounds the rest).
2. In its lane, a valid signal is *claimed* in the signals table (FR-019):
   new → ``processing``; ``failed`` → retried (attempts + 1); ``processing`` (a crash left it
   unfinished, this is the redelivery) → resumed; ``executed``/``rejected`` → the delivery is a
   duplicate: logged, acked, dropped.
3. Checks that need state run next (``validate_signal``: unknown asset → dead letter, stale or
   future timestamp, expired → ``rejected``), then the warm-up policy
   (``ORDERMANAGER_WARMUP_SIGNALS``: ``execute`` as usual, ``dry_run`` → handed to the
   ``dry_run_processor`` (the same pipeline on the paper exchange) instead of the live one,
   ``ignore`` → recorded ``rejected`` ``warmup_ignored``, no order, no event: a configured
   policy, not a refusal). The signal row's ``is_dry_run`` is the processor's word
   (``outcome.is_dry_run``). ``processing`` is committed before any exchange work.
4. The ``SignalProcessor`` (execution) plans, checks risk, commits its own order rows and
   returns the outcome; the intake commits the signal's final status — with a
   ``signal_rejected`` outbox event in the same transaction when rejected — and only then acks.
   A retryable ``failed`` outcome (exchange unavailable, outcome unknown, our own error after
   its retries) is also republished to the dead-letter queue with its reason before the ack,
   so it is never dropped silently; replaying it retries the signal.

Malformed messages (not JSON, missing/badly typed fields, out-of-range values, unknown asset)
are republished unchanged to the dead-letter queue with reason headers (the sink returns after
the broker's confirm), recorded as ``rejected`` when a UUID ``signal_id`` could be read, and
acked. The consumer keeps going.

Failures of our own machinery (database unreachable, broker hiccup, a processor that raises)
are retried inside the lane with exponential backoff, so per-symbol order is kept and nothing
is acked before its outcome is committed. A processor that raises ``processor_max_attempts``
times in a row for one delivery gets the signal recorded ``failed`` (``processing_error``) so a
bug cannot wedge a lane forever. A ``SignalFailed`` that is not retryable (e.g. exchange
authentication) is recorded, left unacked, and stops the intake: consuming on would only fail
every signal the same way.

Shutdown (``stop``, on SIGTERM): stop consuming, let every lane finish the signal it is
handling, leave everything else unacked (the broker redelivers it), close the channel.

Every log line of one signal carries its ``trace_id`` (the signal's own, or a generated one),
which is also written to the signals row and handed to the processor.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from prometheus_client import Counter, Histogram

from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument
from order_manager.domain.signals import (
    SignalRejection,
    TradingSignal,
    parse_signal,
    validate_signal,
)
from order_manager.logs import get_logger, new_trace_id, trace_context
from order_manager.services.events import SignalSummary, publish_signal_rejected
from order_manager.services.lanes import Lanes, LanesClosedError
from order_manager.services.ports.messaging import DeadLetterSink, ReceivedMessage, SignalSource
from order_manager.services.ports.processing import (
    SignalExecuted,
    SignalFailed,
    SignalOutcome,
    SignalProcessor,
    SignalRejected,
)
from order_manager.services.ports.signals import SignalClaim, SignalStore
from order_manager.services.ports.uow import UnitOfWorkFactory

log = get_logger("order_manager.services.intake")

SIGNALS_RECEIVED = Counter("om_signals_received_total", "Signal messages taken from the queue")
SIGNAL_OUTCOMES = Counter(
    "om_signal_outcomes_total",
    "Settled signal deliveries by outcome (executed, rejected, failed, dead_lettered, duplicate)",
    ["outcome"],
)
SIGNAL_HANDLING = Histogram(
    "om_signal_handling_seconds",
    "From taking a signal off the queue to its outcome being committed (lane wait included)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INTAKE_ERRORS = Counter(
    "om_signal_intake_errors_total", "Failures of the intake's own steps, retried in the lane"
)

InstrumentLookup = Callable[[Category, str], Instrument | None]
LaneKey = tuple[str, str]
MALFORMED_LANE: LaneKey = ("", "malformed")

WARMUP_IGNORED = "warmup_ignored"
PROCESSING_ERROR = "processing_error"


class WarmupPolicy(StrEnum):
    EXECUTE = "execute"
    DRY_RUN = "dry_run"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    max_age: timedelta = timedelta(seconds=60)
    max_future_skew: timedelta = timedelta(seconds=5)
    warmup: WarmupPolicy = WarmupPolicy.EXECUTE
    dry_run: bool = False
    lane_capacity: int = 256
    processor_max_attempts: int = 3
    retry_base_delay: float = 0.1
    retry_max_delay: float = 5.0
    #: category of a signal without ``metadata.category`` (``ORDERMANAGER_CATEGORY``)
    default_category: Category = Category.LINEAR


@dataclass(frozen=True, slots=True)
class _Work:
    message: ReceivedMessage
    signal: TradingSignal | None
    rejection: SignalRejection | None
    trace_id: str
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class IntakeStats:
    """Counters for tests, logs and metrics (per process, since start)."""

    received: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    executed: int = 0
    rejected: int = 0
    failed: int = 0
    retried_errors: int = 0
    abandoned: int = 0


class IntakeFatalError(RuntimeError):
    """The intake stopped because consuming on would fail every signal (see ``fatal``)."""


class SignalIntake:
    def __init__(
        self,
        *,
        source: SignalSource,
        dead_letters: DeadLetterSink,
        uow_factory: UnitOfWorkFactory,
        processor: SignalProcessor,
        instruments: InstrumentLookup,
        dry_run_processor: SignalProcessor | None = None,
        signal_store: SignalStore | None = None,
        config: IntakeConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self._source = source
        self._dead_letters = dead_letters
        self._uow_factory = uow_factory
        self._processor = processor
        self._dry_run_processor = dry_run_processor
        self._store = signal_store
        self._instruments = instruments
        self.config = config or IntakeConfig()
        self._clock = clock
        self._on_fatal = on_fatal
        self.stats = IntakeStats()
        if (
            self.config.warmup is WarmupPolicy.DRY_RUN
            and not self.config.dry_run
            and dry_run_processor is None
        ):
            raise ValueError(
                "ORDERMANAGER_WARMUP_SIGNALS=dry_run needs a dry-run (paper) processor"
            )
        self.fatal: str | None = None
        self._lanes: Lanes[LaneKey, _Work] = Lanes(
            self._handle,
            capacity=self.config.lane_capacity,
            on_abandon=self._abandon,
            name="signal lanes",
        )
        self._in_flight: set[str] = set()
        self._stopping = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._fatal_stop: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def lanes(self) -> Lanes[LaneKey, _Work]:
        return self._lanes

    def start(self) -> asyncio.Task[None]:
        """Start the dispatch loop in a task (returned; also awaited by ``stop``)."""
        if self._run_task is None:
            self._run_task = asyncio.create_task(self.run(), name="signal-intake")
        return self._run_task

    async def run(self) -> None:
        """Take deliveries until ``stop()`` (or a fatal failure) and dispatch them to lanes."""
        log.info("signal intake running", lane_capacity=self.config.lane_capacity)
        try:
            async for message in self._source.messages():
                if self._stopping.is_set():
                    break  # left unacked: the broker redelivers it
                try:
                    await self._dispatch(message)
                except LanesClosedError:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in dispatch: stop loudly rather than stall silently
            log.error("signal dispatch failed", error=str(exc), exc_info=exc)
            self._fail_fatally(f"dispatch failed: {type(exc).__name__}: {exc}")
        if not self._stopping.is_set():
            self._fail_fatally("the signal source ended without a stop request")
        log.info("signal intake stopped taking messages")

    async def stop(self) -> None:
        """Graceful stop: no new deliveries, in-flight signals finish, the rest stays unacked."""
        self._stopping.set()
        await self._source.stop()
        if not self._lanes.closed:
            self._lanes.close()
        await self._lanes.wait_closed()
        if self._run_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
        await self._source.close()
        log.info("signal intake stopped", **vars(self.stats))

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self, message: ReceivedMessage) -> None:
        self.stats.received += 1
        SIGNALS_RECEIVED.inc()
        parsed = parse_signal(message.body)
        if isinstance(parsed, SignalRejection):
            trace_id = parsed.trace_id or new_trace_id()
            await self._lanes.submit(MALFORMED_LANE, _Work(message, None, parsed, trace_id))
            return
        trace_id = parsed.trace_id or new_trace_id()
        if parsed.notes:
            with trace_context(trace_id):
                log.warning("signal accepted with parts set aside", notes=list(parsed.notes))
        key = (parsed.category_or(self.config.default_category).value, parsed.asset)
        await self._lanes.submit(key, _Work(message, parsed, None, trace_id))

    def _settled(self, outcome: str, work: _Work) -> None:
        SIGNAL_OUTCOMES.labels(outcome).inc()
        SIGNAL_HANDLING.observe(time.monotonic() - work.received_at)

    async def _abandon(self, work: _Work) -> None:
        self.stats.abandoned += 1
        with trace_context(work.trace_id):
            log.info("signal left unacked for redelivery (shutting down)")

    # ------------------------------------------------------------------ one delivery

    async def _handle(self, work: _Work) -> None:
        with trace_context(work.trace_id):
            errors = 0
            while True:
                try:
                    if work.signal is None:
                        assert work.rejection is not None
                        await self._handle_malformed(work, work.rejection)
                    else:
                        give_up = errors >= self.config.processor_max_attempts - 1
                        await self._handle_signal(work, work.signal, give_up=give_up)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # our own machinery failed: retry in the lane
                    errors += 1
                    self.stats.retried_errors += 1
                    INTAKE_ERRORS.inc()
                    delay = min(
                        self.config.retry_base_delay * 2 ** (errors - 1),
                        self.config.retry_max_delay,
                    )
                    log.error(
                        "signal handling failed; retrying",
                        attempt=errors,
                        retry_in_seconds=delay,
                        error=f"{type(exc).__name__}: {exc}",
                        exc_info=exc,
                    )
                    if await self._stopped_within(delay):
                        log.warning("stopping: signal left unacked for redelivery")
                        return

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _dead_letter(self, work: _Work, reason: str, error: str) -> None:
        """The message, unchanged, to the DLQ with its reason (returns after the confirm)."""
        await self._dead_letters.dead_letter(
            work.message.body,
            reason=reason,
            error=error,
            failed_at=self._clock(),
            trace_id=work.trace_id,
        )

    async def _handle_malformed(self, work: _Work, rejection: SignalRejection) -> None:
        body = work.message.body
        await self._dead_letter(work, rejection.code.value, rejection.message)
        recorded = False
        signal_id = _uuid_or_none(rejection.signal_id)
        if signal_id is not None:
            async with self._uow_factory() as uow:
                recorded = await uow.signals.record_malformed(
                    signal_id,
                    raw_body=body.decode("utf-8", errors="replace"),
                    reason_code=rejection.code.value,
                    reason_message=rejection.message,
                    trace_id=work.trace_id,
                )
                await uow.commit()
        self.stats.dead_lettered += 1
        self._settled("dead_lettered", work)
        log.warning(
            "malformed signal dead-lettered",
            reason=rejection.code.value,
            error=rejection.message,
            field=rejection.details.get("field"),
            signal_id=rejection.signal_id,
            recorded=recorded,
        )
        await work.message.ack()

    def _is_dry_run(self, signal: TradingSignal) -> bool:
        return self.config.dry_run or (
            signal.is_warmup and self.config.warmup is WarmupPolicy.DRY_RUN
        )

    def _validate(self, signal: TradingSignal) -> TradingSignal | SignalRejection:
        category = signal.category_or(self.config.default_category)
        instrument = self._instruments(category, signal.asset)
        known = {} if instrument is None else {(category, signal.asset): instrument}
        return validate_signal(
            signal,
            instruments=known,
            default_category=self.config.default_category,
            now=self._clock(),
            max_age=self.config.max_age,
            max_future_skew=self.config.max_future_skew,
        )

    async def _handle_signal(self, work: _Work, signal: TradingSignal, *, give_up: bool) -> None:
        trace_id = work.trace_id
        if signal.signal_id in self._in_flight:
            self.stats.duplicates += 1
            self._settled("duplicate", work)
            log.info("duplicate of a signal in progress dropped", signal_id=signal.signal_id)
            await work.message.ack()
            return
        self._in_flight.add(signal.signal_id)
        try:
            claim = await self._claim_and_check(work, signal)
            if claim is not None:
                outcome = await self._run_processor(
                    signal, trace_id, give_up=give_up, is_new=claim.previous_status is None
                )
                await self._commit_outcome(work, signal, outcome)
        finally:
            self._in_flight.discard(signal.signal_id)

    async def _claim(self, work: _Work, signal: TradingSignal) -> SignalClaim:
        """Claim the signal's row (one statement; committed before anything else happens)."""
        raw_body = work.message.body.decode("utf-8")
        is_dry_run = self._is_dry_run(signal)
        if self._store is not None:
            return await self._store.claim(
                signal, raw_body=raw_body, trace_id=work.trace_id, is_dry_run=is_dry_run
            )
        async with self._uow_factory() as uow:
            claim = await uow.signals.claim(
                signal, raw_body=raw_body, trace_id=work.trace_id, is_dry_run=is_dry_run
            )
            await uow.commit()
        return claim

    async def _claim_and_check(self, work: _Work, signal: TradingSignal) -> SignalClaim | None:
        """Claim the signal; settle duplicates and refusals here (None). The claim: go on and
        process."""
        claim = await self._claim(work, signal)
        if claim.is_duplicate:
            self.stats.duplicates += 1
            self._settled("duplicate", work)
            log.info(
                "duplicate signal dropped",
                signal_id=signal.signal_id,
                previous_status=claim.previous_status,
                redelivered=work.message.redelivered,
            )
            await work.message.ack()
            return None
        if claim.previous_status is not None:
            log.info(
                "signal retried" if claim.previous_status == "failed" else "signal resumed",
                signal_id=signal.signal_id,
                previous_status=claim.previous_status,
                attempts=claim.attempts,
            )
        checked = self._validate(signal)
        if isinstance(checked, SignalRejection):
            await self._refuse(work, signal, checked)
            return None
        if signal.is_warmup and self.config.warmup is WarmupPolicy.IGNORE:
            async with self._uow_factory() as uow:
                await uow.signals.finish(
                    signal.signal_id,
                    status="rejected",
                    reason_code=WARMUP_IGNORED,
                    reason_message="warm-up signals are ignored (ORDERMANAGER_WARMUP_SIGNALS)",
                )
                await uow.commit()
            self.stats.rejected += 1
            self._settled("rejected", work)
            log.info("warm-up signal ignored", signal_id=signal.signal_id)
            await work.message.ack()
            return None
        return claim

    async def _refuse(self, work: _Work, signal: TradingSignal, checked: SignalRejection) -> None:
        """A claimed signal failed a stateful check: dead letter (malformed) or rejection."""
        if checked.dead_letter:
            # DLQ first: a crash before the commit means a second dead letter at worst,
            # never a recorded outcome whose dead letter is missing.
            await self._dead_letter(work, checked.code.value, checked.message)
        async with self._uow_factory() as uow:
            await uow.signals.finish(
                signal.signal_id,
                status="rejected",
                reason_code=checked.code.value,
                reason_message=checked.message,
            )
            if not checked.dead_letter:
                await publish_signal_rejected(
                    uow.outbox,
                    signal.signal_id,
                    checked,
                    trace_id=work.trace_id,
                    is_dry_run=self._is_dry_run(signal),
                    signal=SignalSummary.from_signal(signal),
                )
            await uow.commit()
        if checked.dead_letter:
            self.stats.dead_lettered += 1
            self._settled("dead_lettered", work)
            log.warning(
                "signal dead-lettered",
                signal_id=signal.signal_id,
                reason=checked.code.value,
                error=checked.message,
            )
        else:
            self.stats.rejected += 1
            self._settled("rejected", work)
            log.info(
                "signal rejected",
                signal_id=signal.signal_id,
                reason=checked.code.value,
                error=checked.message,
            )
        await work.message.ack()

    async def _run_processor(
        self, signal: TradingSignal, trace_id: str, *, give_up: bool, is_new: bool = False
    ) -> SignalOutcome:
        processor = self._processor
        if (
            signal.is_warmup
            and self.config.warmup is WarmupPolicy.DRY_RUN
            and self._dry_run_processor is not None
        ):
            processor = self._dry_run_processor
        try:
            return await processor.process(signal, trace_id, is_new=is_new)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not give_up:
                raise
            log.error(
                "signal processor keeps failing; recording the signal as failed",
                signal_id=signal.signal_id,
                error=f"{type(exc).__name__}: {exc}",
                exc_info=exc,
            )
            return SignalFailed(
                PROCESSING_ERROR,
                f"{type(exc).__name__}: {exc}"[:500],
                retryable=True,
                is_dry_run=self._is_dry_run(signal),
            )

    async def _commit_outcome(
        self, work: _Work, signal: TradingSignal, outcome: SignalOutcome
    ) -> None:
        if self._store is not None and not isinstance(outcome, SignalRejected):
            # A single-row outcome needs no event: one autocommitted statement.
            await self._store.finish(signal.signal_id, **_finish_fields(outcome))
        else:
            await self._commit_outcome_in_uow(work, signal, outcome)
        self._after_outcome(work, signal, outcome)
        if isinstance(outcome, SignalFailed):
            if not outcome.retryable:
                return  # left unacked: redelivered (and retried) after the cause is fixed
            # nothing is dropped silently: the message goes to the dead-letter queue with the
            # reason, where an operator or the model service can replay it (a replay of a
            # `failed` signal is retried; intents left `submitting` are resumed, never doubled).
            # After the commit: a crash in between means a redelivery, which retries.
            await self._dead_letter(work, outcome.code, outcome.message)
        await work.message.ack()

    async def _commit_outcome_in_uow(
        self, work: _Work, signal: TradingSignal, outcome: SignalOutcome
    ) -> None:
        async with self._uow_factory() as uow:
            if isinstance(outcome, SignalRejected):
                await uow.signals.finish(
                    signal.signal_id,
                    status="rejected",
                    reason_code=outcome.code.value,
                    reason_message=outcome.message,
                    is_dry_run=outcome.is_dry_run,
                )
                await publish_signal_rejected(
                    uow.outbox,
                    signal.signal_id,
                    outcome.rejection,
                    trace_id=work.trace_id,
                    is_dry_run=outcome.is_dry_run,
                    signal=SignalSummary.from_signal(signal),
                )
            else:
                await uow.signals.finish(signal.signal_id, **_finish_fields(outcome))
            await uow.commit()

    def _after_outcome(self, work: _Work, signal: TradingSignal, outcome: SignalOutcome) -> None:
        self._settled(outcome.status, work)
        elapsed_ms = round((time.monotonic() - work.received_at) * 1000, 3)
        if isinstance(outcome, SignalExecuted):
            self.stats.executed += 1
            log.info(
                "signal executed",
                signal_id=signal.signal_id,
                order_link_ids=list(outcome.order_link_ids),
                is_dry_run=outcome.is_dry_run,
                elapsed_ms=elapsed_ms,
            )
        elif isinstance(outcome, SignalRejected):
            self.stats.rejected += 1
            log.info(
                "signal rejected",
                signal_id=signal.signal_id,
                reason=outcome.code.value,
                error=outcome.message,
                elapsed_ms=elapsed_ms,
            )
        else:
            self.stats.failed += 1
            log.warning(
                "signal failed",
                signal_id=signal.signal_id,
                reason=outcome.code,
                error=outcome.message,
                retryable=outcome.retryable,
            )
            if not outcome.retryable:
                self._fail_fatally(f"{outcome.code}: {outcome.message}")

    def _fail_fatally(self, reason: str) -> None:
        if self.fatal is not None:
            return
        self.fatal = reason
        log.critical("signal intake stops: non-retryable failure", reason=reason)
        self._stopping.set()
        if not self._lanes.closed:
            self._lanes.close()
        if self._on_fatal is not None:
            self._on_fatal(reason)
        self._fatal_stop = asyncio.create_task(self._source.stop(), name="intake-fatal-stop")


def _finish_fields(outcome: SignalExecuted | SignalFailed) -> dict[str, Any]:
    if isinstance(outcome, SignalExecuted):
        return {"status": "executed", "is_dry_run": outcome.is_dry_run}
    return {
        "status": "failed",
        "reason_code": outcome.code,
        "reason_message": outcome.message,
        "is_dry_run": outcome.is_dry_run,
    }


def _uuid_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
