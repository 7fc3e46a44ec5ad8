"""Intake end to end on the real broker and database, with a recording SignalProcessor."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from order_manager.adapters.rabbitmq.signal_publisher import build_signal, encode_signal
from order_manager.domain.rejections import RejectCode, Rejection
from order_manager.services.ports.processing import SignalFailed, SignalRejected
from tests.helpers import eventually
from tests.integration.intake.conftest import (
    DLQ,
    SIGNALS_QUEUE,
    SYMBOLS,
    Harness,
    RecordingProcessor,
    aged,
    signal_body,
    until,
)


def _mutated(**changes: object) -> tuple[str, bytes]:
    signal = build_signal(asset="BTCUSDT", side="buy", amount=Decimal("100"))
    for key, value in changes.items():
        if value is _DROP:
            signal.pop(key)
        else:
            signal[key] = value
    return signal["signal_id"], encode_signal(signal)


_DROP = object()


def _outcomes(outcome: str) -> float:
    value = REGISTRY.get_sample_value("om_signal_outcomes_total", {"outcome": outcome})
    return value or 0.0


MALFORMED: list[tuple[str, str, bytes]] = [
    ("invalid_json", "", b'{"signal_id": "x", not json'),
    ("not_an_object", "", b"[1, 2, 3]"),
    ("invalid_json", "", b"\xff\xfe garbage"),
    ("missing_field", *_mutated(signal_type=_DROP)),
    ("missing_field", *_mutated(amount=_DROP)),
    ("missing_field", *_mutated(asset=_DROP)),
    ("missing_field", *_mutated(strategy_id=_DROP)),
    ("missing_field", *_mutated(timestamp=_DROP)),
    ("missing_field", *_mutated(confidence=_DROP)),
    ("invalid_value", *_mutated(signal_type="hold")),
    ("bad_type", *_mutated(amount=True)),
    ("invalid_value", *_mutated(amount="abc")),
    ("amount_not_positive", *_mutated(amount=Decimal("0"))),
    ("amount_not_positive", *_mutated(amount=Decimal("-5"))),
    ("confidence_out_of_range", *_mutated(confidence=Decimal("1.5"))),
    ("bad_type", *_mutated(confidence="0.5")),
    ("invalid_value", *_mutated(timestamp="yesterday")),
    ("invalid_value", *_mutated(signal_id="not-a-uuid")),
    ("unknown_asset", *_mutated(asset="NOPEUSDT")),
    ("bad_type", *_mutated(metadata="oops")),
]


async def test_malformed_messages_are_dead_lettered_and_the_next_signal_still_runs(
    harness: Harness,
) -> None:
    dead_before = _outcomes("dead_lettered")
    executed_before = _outcomes("executed")
    intake = harness.intake()
    intake.start()
    good_ids: list[str] = []
    for _, _, body in MALFORMED:
        await harness.publish(body)
        good_ids.append(await harness.send("ETHUSDT"))
    for signal_id in good_ids:
        await harness.wait_status(signal_id, "executed")
    letters = await harness.dead_letters(len(MALFORMED))
    assert len(letters) == len(MALFORMED)
    by_body = {m.body: m for m in letters}
    for reason, signal_id, body in MALFORMED:
        message = by_body[body]  # body byte-for-byte unchanged
        headers = message.headers
        assert headers["x-om-reason"] == reason, (body, headers)
        assert headers["x-om-error"]
        failed_at = datetime.fromisoformat(str(headers["x-om-failed-at"]))
        assert failed_at.utcoffset() == timedelta(0)
        assert (datetime.now(UTC) - failed_at).total_seconds() < 120
        assert headers["x-om-trace-id"]
        assert message.delivery_mode == 2  # persistent
        if (signal_id and reason != "invalid_value") or reason == "unknown_asset":
            # recorded after its dead letter is confirmed (by design): wait for the row
            await harness.wait_status(signal_id, "rejected")
            row = await harness.signal_row(signal_id)
            assert row is not None, (reason, body)
            assert row["status"] == "rejected"
            assert row["reason_code"] == reason
    # The valid signals between them were processed, in order, and nothing else was.
    assert harness.processor.ids() == good_ids
    assert intake.stats.dead_lettered == len(MALFORMED)
    assert _outcomes("dead_lettered") - dead_before == len(MALFORMED)
    assert _outcomes("executed") - executed_before == len(good_ids)
    assert await harness.queue_depth(SIGNALS_QUEUE) == 0


async def test_dead_letter_keeps_the_signals_trace_id(harness: Harness) -> None:
    intake = harness.intake()
    intake.start()
    signal_id, body = _mutated(amount=Decimal("0"), trace_id="trace-abc")
    await harness.publish(body)
    (letter,) = await harness.dead_letters(1)
    assert letter.headers["x-om-trace-id"] == "trace-abc"
    await harness.wait_status(signal_id, "rejected")
    row = await harness.signal_row(signal_id)
    assert row is not None and row["trace_id"] == "trace-abc"


async def test_duplicate_after_success_places_nothing(harness: Harness) -> None:
    intake = harness.intake()
    intake.start()
    signal_id, body = signal_body("BTCUSDT", trace_id="t-dup")
    await harness.publish(body)
    await harness.wait_status(signal_id, "executed")
    await harness.publish(body)
    marker = await harness.send("BTCUSDT")  # same lane: runs after the duplicate was settled
    await harness.wait_status(marker, "executed")
    assert harness.processor.ids() == [signal_id, marker]
    assert intake.stats.duplicates == 1
    row = await harness.signal_row(signal_id)
    assert row is not None and row["attempts"] == 1 and row["trace_id"] == "t-dup"
    assert await harness.queue_depth(SIGNALS_QUEUE) == 0


async def test_duplicate_after_rejection_is_dropped(harness: Harness) -> None:
    intake = harness.intake()
    intake.start()
    signal_id, body = signal_body("BTCUSDT")
    rejection = Rejection(RejectCode.INSUFFICIENT_BALANCE, "not enough USDT", {"need": "100"})
    harness.processor.script(signal_id, SignalRejected(rejection))
    await harness.publish(body)
    await harness.wait_status(signal_id, "rejected")
    await harness.publish(body)
    marker = await harness.send("BTCUSDT")
    await harness.wait_status(marker, "executed")
    assert harness.processor.ids() == [signal_id, marker]
    row = await harness.signal_row(signal_id)
    assert row is not None and row["reason_code"] == "insufficient_balance"
    (event,) = await harness.outbox("signal_rejected")
    assert event["aggregate_id"] == signal_id
    assert event["payload"]["rejection_reason"]["code"] == "insufficient_balance"
    assert event["payload"]["signal"]["signal_id"] == signal_id


async def test_duplicate_after_failure_retries(harness: Harness) -> None:
    intake = harness.intake()
    intake.start()
    signal_id, body = signal_body("BTCUSDT")
    harness.processor.script(signal_id, SignalFailed("exchange_unavailable", "503 from Bybit"))
    await harness.publish(body)
    await harness.wait_status(signal_id, "failed")
    row = await harness.signal_row(signal_id)
    assert row is not None and row["reason_code"] == "exchange_unavailable"
    # not dropped silently: the message is in the DLQ with its reason, byte for byte
    (letter,) = await harness.dead_letters(1)
    assert letter.body == body
    assert letter.headers["x-om-reason"] == "exchange_unavailable"
    assert letter.headers["x-om-error"] == "503 from Bybit"
    await harness.publish(body)  # the replay
    await harness.wait_status(signal_id, "executed")
    assert harness.processor.ids() == [signal_id, signal_id]
    # only the first claim created the row: the retry must look for orders to resume
    assert harness.processor.is_new[signal_id] == [True, False]
    row = await harness.signal_row(signal_id)
    assert row is not None and row["attempts"] == 2
    assert await harness.queue_depth(SIGNALS_QUEUE) == 0


async def test_stale_signal_is_rejected_with_an_event(harness: Harness) -> None:
    intake = harness.intake(max_age=timedelta(seconds=60))
    intake.start()
    signal_id = await harness.send("SOLUSDT", timestamp=aged(61), trace_id="t-stale")
    await harness.wait_status(signal_id, "rejected")
    row = await harness.signal_row(signal_id)
    assert row is not None and row["reason_code"] == "stale_signal"
    (event,) = await harness.outbox("signal_rejected")
    assert event["trace_id"] == "t-stale"
    assert event["payload"]["rejection_reason"]["code"] == "stale_signal"
    assert harness.processor.calls == []


async def test_warmup_signals_follow_the_policy(harness: Harness) -> None:
    from order_manager.services.intake import WarmupPolicy

    ignoring = harness.intake(warmup=WarmupPolicy.IGNORE)
    ignoring.start()
    ignored = await harness.send("BTCUSDT", is_warmup=True)
    normal = await harness.send("BTCUSDT")
    await harness.wait_status(normal, "executed")
    row = await harness.signal_row(ignored)
    assert row is not None and row["status"] == "rejected"
    assert row["reason_code"] == "warmup_ignored" and row["is_warmup"] is True
    assert harness.processor.ids() == [normal]


async def test_warmup_dry_run_policy_flags_the_signal(harness: Harness) -> None:
    from order_manager.services.intake import WarmupPolicy

    paper = RecordingProcessor(is_dry_run=True)
    harness.intake(warmup=WarmupPolicy.DRY_RUN, dry_run_processor=paper).start()
    warm = await harness.send("BTCUSDT", is_warmup=True)
    live = await harness.send("BTCUSDT")
    await harness.wait_status(live, "executed")
    warm_row, live_row = await harness.signal_row(warm), await harness.signal_row(live)
    assert warm_row is not None and warm_row["is_dry_run"] is True
    assert warm_row["status"] == "executed"
    assert live_row is not None and live_row["is_dry_run"] is False
    assert paper.ids() == [warm]
    assert harness.processor.ids() == [live]


def test_warmup_dry_run_policy_needs_a_paper_processor() -> None:
    from order_manager.services.intake import IntakeConfig, SignalIntake, WarmupPolicy

    with pytest.raises(ValueError, match="dry-run"):
        SignalIntake(
            source=None,  # type: ignore[arg-type]
            dead_letters=None,  # type: ignore[arg-type]
            uow_factory=None,  # type: ignore[arg-type]
            processor=RecordingProcessor(),
            instruments=lambda c, s: None,
            config=IntakeConfig(warmup=WarmupPolicy.DRY_RUN),
        )


async def test_trace_id_is_generated_when_absent_and_reaches_the_processor(
    harness: Harness,
) -> None:
    harness.intake().start()
    signal = build_signal(asset="BTCUSDT", side="buy", amount=Decimal("10"))
    del signal["trace_id"]
    await harness.publish(encode_signal(signal))
    await harness.wait_status(signal["signal_id"], "executed")
    row = await harness.signal_row(signal["signal_id"])
    assert row is not None and row["trace_id"]
    ((_, _, trace_id),) = harness.processor.calls
    assert trace_id == row["trace_id"]


@pytest.mark.parametrize("blank", ["", "  "])
async def test_an_empty_trace_id_is_treated_as_absent_not_dead_lettered(
    harness: Harness, blank: str
) -> None:
    harness.intake().start()
    signal = build_signal(asset="BTCUSDT", side="buy", amount=Decimal("10"))
    signal["trace_id"] = blank
    await harness.publish(encode_signal(signal))
    await harness.wait_status(signal["signal_id"], "executed")
    row = await harness.signal_row(signal["signal_id"])
    assert row is not None and row["trace_id"] and row["trace_id"].strip()
    ((_, _, trace_id),) = harness.processor.calls
    assert trace_id == row["trace_id"]
    assert await harness.queue_depth(DLQ) == 0


async def test_signal_rejected_event_body_carries_dry_run_and_warmup(harness: Harness) -> None:
    """`order` is null on signal_rejected: the paper flag is a top-level body field (not only
    the x-om-dry-run header) and the warm-up flag is in `signal`."""
    from order_manager.services.intake import WarmupPolicy

    paper = RecordingProcessor(is_dry_run=True)
    harness.intake(
        warmup=WarmupPolicy.DRY_RUN, dry_run_processor=paper, max_age=timedelta(seconds=60)
    ).start()
    warm = await harness.send("BTCUSDT", is_warmup=True, timestamp=aged(61))
    live = await harness.send("BTCUSDT", timestamp=aged(61))
    await harness.wait_status(warm, "rejected")
    await harness.wait_status(live, "rejected")
    events = {e["aggregate_id"]: e for e in await harness.outbox("signal_rejected")}
    assert set(events) == {warm, live}
    warm_body, live_body = events[warm]["payload"], events[live]["payload"]
    assert warm_body["order"] is None and warm_body["is_dry_run"] is True
    assert warm_body["signal"]["is_warmup"] is True
    assert live_body["is_dry_run"] is False and live_body["signal"]["is_warmup"] is False
    assert paper.calls == [] and harness.processor.calls == []


async def test_per_symbol_order_holds_for_200_interleaved_signals(harness: Harness) -> None:
    harness.processor.yields = 3
    intake = harness.intake(prefetch=64)
    intake.start()
    sent: dict[str, list[str]] = {s: [] for s in SYMBOLS}
    for i in range(200):
        asset = SYMBOLS[(i * 7 + i // 5) % len(SYMBOLS)]
        sent[asset].append(await harness.send(asset))
    await eventually(lambda: len(harness.processor.calls) == 200, timeout=30, what="200 done")
    for asset in SYMBOLS:
        assert harness.processor.ids(asset) == sent[asset], asset
        assert len(sent[asset]) >= 30
    last = [ids[-1] for ids in sent.values()]
    for signal_id in last:
        await harness.wait_status(signal_id, "executed")
    assert intake.stats.executed == 200


async def test_other_symbols_proceed_while_one_is_held(harness: Harness) -> None:
    harness.intake().start()
    held_id, body = signal_body("BTCUSDT")
    gate = harness.processor.hold(held_id)
    await harness.publish(body)
    behind = await harness.send("BTCUSDT")
    others = [await harness.send(s) for s in SYMBOLS[1:]]
    for signal_id in others:
        await harness.wait_status(signal_id, "executed")
    assert await harness.status(held_id) == "processing"
    assert await harness.status(behind) is None  # not even claimed: FIFO behind the held one
    gate.set()
    await harness.wait_status(behind, "executed")
    assert harness.processor.ids("BTCUSDT") == [held_id, behind]


async def test_redelivery_after_a_consumer_crash_resumes(harness: Harness) -> None:
    from order_manager.adapters.rabbitmq.connection import connect

    crashing_conn = await connect(harness.amqp_url, name="crashing")
    first = harness.intake(connection=crashing_conn)
    first_run = first.start()
    signal_id, body = signal_body("BTCUSDT")
    harness.processor.hold(signal_id)  # never released: the "process" dies mid-signal
    await harness.publish(body)
    await asyncio.wait_for(harness.processor.entered[signal_id].wait(), timeout=10)
    assert await harness.status(signal_id) == "processing"
    # Crash: the connection vanishes without an ack, every task of the intake dies.
    first_run.cancel()
    await first.lanes.cancel()
    await crashing_conn.close()
    await asyncio.gather(first_run, return_exceptions=True)
    harness.intakes.remove(first)
    del harness.processor.gates[signal_id]

    second = harness.intake()
    second.start()
    await harness.wait_status(signal_id, "executed")
    row = await harness.signal_row(signal_id)
    assert row is not None and row["attempts"] == 2
    assert harness.processor.ids() == [signal_id, signal_id]
    assert await harness.queue_depth(SIGNALS_QUEUE) == 0


async def test_processor_errors_are_retried_in_the_lane_then_recorded(harness: Harness) -> None:
    harness.intake(processor_max_attempts=3, retry_base_delay=0.01).start()
    flaky, body = signal_body("BTCUSDT")
    harness.processor.script(flaky, RuntimeError("db blip"))
    await harness.publish(body)
    broken, body2 = signal_body("BTCUSDT")
    harness.processor.script(broken, *(RuntimeError("bug") for _ in range(3)))
    await harness.publish(body2)
    await harness.wait_status(flaky, "executed")
    await harness.wait_status(broken, "failed")
    row = await harness.signal_row(broken)
    assert row is not None and row["reason_code"] == "processing_error"
    assert "bug" in row["reason_message"]
    assert harness.processor.ids() == [flaky, flaky, broken, broken, broken]
    # a retry in the lane re-claims a row that is already `processing`: not new any more
    assert harness.processor.is_new[flaky] == [True, False]


async def test_non_retryable_failure_stops_the_intake_and_leaves_the_message(
    harness: Harness,
) -> None:
    intake = harness.intake()
    intake.start()
    signal_id, body = signal_body("BTCUSDT")
    harness.processor.script(signal_id, SignalFailed("auth_failed", "10003", retryable=False))
    await harness.publish(body)
    await harness.wait_status(signal_id, "failed")
    await eventually(lambda: intake.fatal is not None, what="intake fatal")
    await intake.stop()
    harness.intakes.remove(intake)
    # The message went back to the queue: a restarted service retries it.
    await until(lambda: harness.queue_depth(SIGNALS_QUEUE), what="message back in the queue")
    assert await harness.queue_depth(SIGNALS_QUEUE) == 1


async def test_graceful_stop_finishes_in_flight_and_leaves_the_rest(harness: Harness) -> None:
    intake = harness.intake()
    intake.start()
    first, body = signal_body("BTCUSDT")
    gate = harness.processor.hold(first)
    await harness.publish(body)
    rest = [await harness.send("BTCUSDT") for _ in range(3)]
    await asyncio.wait_for(harness.processor.entered[first].wait(), timeout=10)
    await eventually(lambda: intake.lanes.pending() == 4, what="all four in the lane")
    stopping = asyncio.create_task(intake.stop())
    await eventually(lambda: intake.lanes.closed, what="lanes closed")
    gate.set()
    await asyncio.wait_for(stopping, timeout=10)
    harness.intakes.remove(intake)
    assert await harness.status(first) == "executed"
    assert [await harness.status(s) for s in rest] == [None, None, None]
    await until(lambda: _equals(harness.queue_depth(SIGNALS_QUEUE), 3), what="3 requeued")
    # A restarted intake processes them, in order.
    harness.intake().start()
    for signal_id in rest:
        await harness.wait_status(signal_id, "executed")
    assert harness.processor.ids() == [first, *rest]


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_prefetch_bounds_what_the_consumer_takes(harness: Harness) -> None:
    intake = harness.intake(prefetch=5, lane_capacity=2)
    intake.start()
    held, body = signal_body("BTCUSDT")
    harness.processor.hold(held)
    await harness.publish(body)
    for _ in range(19):
        await harness.send("BTCUSDT")
    # Lane full (2) + the dispatcher blocked on a third; the rest stays ready in the broker
    # (at most `prefetch` delivered but unacked).
    await eventually(lambda: intake.lanes.blocked_submitters == 1, what="dispatcher blocked")
    assert intake.lanes.pending() == 2
    await until(lambda: _equals(harness.queue_depth(SIGNALS_QUEUE), 15), what="15 ready")
    harness.processor.gates[held].set()
    await eventually(lambda: len(harness.processor.calls) == 20, timeout=15, what="all done")


async def test_uuid_less_malformed_message_is_not_recorded(harness: Harness) -> None:
    intake = harness.intake()
    intake.start()
    body = json.dumps({"signal_id": "abc", "asset": "BTCUSDT"}).encode()
    await harness.publish(body)
    (letter,) = await harness.dead_letters(1)
    assert letter.body == body
    # settled (dead letter confirmed, recording step done) before we look for a row
    await eventually(lambda: intake.stats.dead_lettered == 1, what="malformed message settled")
    async with harness.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM signals") == 0


@pytest.mark.parametrize("text", ["100", "100.5", "1e2"])
async def test_amount_as_string_or_number_is_exact(harness: Harness, text: str) -> None:
    harness.intake().start()
    signal_id = str(uuid.uuid4())
    raw = build_signal(asset="BTCUSDT", side="buy", amount=Decimal(1), signal_id=signal_id)
    body = encode_signal(raw).replace(b'"amount":1', b'"amount":"' + text.encode() + b'"')
    await harness.publish(body)
    await harness.wait_status(signal_id, "executed")
    row = await harness.signal_row(signal_id)
    assert row is not None and row["amount"] == Decimal(text)
    _ = DLQ


async def test_losing_the_source_for_good_is_loud(harness: Harness) -> None:
    from order_manager.adapters.rabbitmq.connection import connect

    connection = await connect(harness.amqp_url, name="closing-for-good")
    intake = harness.intake(connection=connection)
    run = intake.start()
    first = await harness.send("BTCUSDT")
    await harness.wait_status(first, "executed")
    await connection.close()  # closed by us, not dropped: no reconnect will follow
    await asyncio.wait_for(run, timeout=10)
    assert intake.fatal is not None and "ended" in intake.fatal


@pytest.mark.parametrize("use_store", [False])
async def test_unit_of_work_path_keeps_the_same_state_machine(
    harness: Harness, use_store: bool
) -> None:
    """Without the autocommit store every signals-table write goes through a unit of work."""
    harness.intake(use_store=use_store, max_age=timedelta(seconds=60)).start()
    failed_once, body = signal_body("BTCUSDT")
    harness.processor.script(failed_once, SignalFailed("exchange_unavailable", "503"))
    await harness.publish(body)
    await harness.wait_status(failed_once, "failed")
    await harness.publish(body)
    await harness.wait_status(failed_once, "executed")
    stale = await harness.send("BTCUSDT", timestamp=aged(120))
    await harness.wait_status(stale, "rejected")
    await harness.publish(body)  # duplicate after success
    marker = await harness.send("BTCUSDT")
    await harness.wait_status(marker, "executed")
    assert harness.processor.ids() == [failed_once, failed_once, marker]
    row = await harness.signal_row(failed_once)
    assert row is not None and row["attempts"] == 2
    (event,) = await harness.outbox("signal_rejected")
    assert event["aggregate_id"] == stale


async def test_a_signal_without_a_category_takes_the_configured_default(
    harness: Harness,
) -> None:
    """ORDERMANAGER_CATEGORY: a signal naming no category is looked up (and laned) under the
    configured default. Only linear instruments are known here, so with spot as the default
    the same signal is an unknown asset, while one naming linear still executes."""
    from order_manager.domain.enums import Category

    harness.intake(default_category=Category.SPOT).start()
    defaulted = await harness.send("BTCUSDT")
    named = await harness.send("BTCUSDT", metadata={"category": "linear"})
    await harness.wait_status(named, "executed")
    [letter] = await harness.dead_letters(1)
    assert letter.headers["x-om-reason"] == "unknown_asset"
    # the row is recorded after the dead letter is confirmed (by design): wait for it
    await harness.wait_status(defaulted, "rejected")
    assert harness.processor.ids() == [named]


async def test_a_bad_advisory_snapshot_does_not_stop_a_valid_signal(harness: Harness) -> None:
    """market_data_snapshot is advisory: an invalid one is set aside (logged) and the signal
    executes — it is not dead-lettered."""
    harness.intake().start()
    signal_id = await harness.send("BTCUSDT", market_data_snapshot={"price": -1})
    await harness.wait_status(signal_id, "executed")
    assert harness.processor.ids() == [signal_id]
    assert await harness.queue_depth(DLQ) == 0
