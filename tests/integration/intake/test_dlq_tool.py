"""`order-manager dlq list|replay|discard` on a real RabbitMQ (a fresh vhost).

The dead-letter queue is filled exactly as the intake fills it (`RabbitDeadLetterPublisher`):
a signal that failed with the exchange unavailable, one that failed long ago (stale), a
malformed message. `list` shows them all and removes none; `replay` delivers exactly the chosen
ones to the signals queue, body byte for byte, and keeps the rest in their order.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aio_pika
import pytest

from order_manager.adapters.rabbitmq.connection import connect, ensure_queue
from order_manager.adapters.rabbitmq.dead_letters import RabbitDeadLetterPublisher
from order_manager.adapters.rabbitmq.signal_publisher import build_signal, encode_signal
from tests.integration.intake.conftest import DLQ, SIGNALS_QUEUE, run_cli


@dataclass(frozen=True)
class Letters:
    fresh: bytes  # failed: exchange_unavailable, a few seconds old
    stale: bytes  # failed: processing_error, ten minutes old
    malformed: bytes  # missing_field
    fresh_id: str
    stale_id: str


async def _cli(*args: str, amqp_url: str) -> tuple[int, str, str]:
    return await run_cli("dlq", *args, amqp_url=amqp_url)


async def _drain(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message of ``queue``, in order (acknowledged: the queue ends empty)."""
    connection = await connect(amqp_url, name="test-drain")
    try:
        channel = await connection.channel()
        source = await channel.declare_queue(queue, passive=True)
        messages = []
        while (message := await source.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages
    finally:
        await connection.close()


@pytest.fixture
async def letters(amqp_url: str) -> AsyncIterator[Letters]:
    now = datetime.now(UTC)
    fresh = build_signal(asset="BTCUSDT", side="buy", amount=Decimal("100"), timestamp=now)
    stale = build_signal(
        asset="ETHUSDT", side="sell", amount=Decimal("50"), timestamp=now - timedelta(minutes=10)
    )
    bodies = (encode_signal(fresh), encode_signal(stale), b'{"signal_type": "buy"}')
    connection = await connect(amqp_url, name="test-dlq")
    try:
        await ensure_queue(connection, SIGNALS_QUEUE)
        dead = RabbitDeadLetterPublisher(connection, DLQ)
        for body, reason in zip(
            bodies, ("exchange_unavailable", "processing_error", "missing_field"), strict=True
        ):
            await dead.dead_letter(
                body, reason=reason, error=f"because {reason}", failed_at=now, trace_id="t-1"
            )
        await dead.close()
    finally:
        await connection.close()
    yield Letters(*bodies, str(fresh["signal_id"]), str(stale["signal_id"]))


async def test_list_shows_every_dead_letter_and_removes_none(
    amqp_url: str, letters: Letters
) -> None:
    code, out, err = await _cli("list", "--json", amqp_url=amqp_url)

    assert code == 0, err
    shown = [json.loads(line) for line in out.splitlines()]
    assert [s["reason"] for s in shown] == [
        "exchange_unavailable",
        "processing_error",
        "missing_field",
    ]
    assert [s["signal_id"] for s in shown] == [letters.fresh_id, letters.stale_id, None]
    assert shown[0]["error"] == "because exchange_unavailable" and shown[0]["trace_id"] == "t-1"
    assert shown[1]["age_seconds"] > 590
    code, out, err = await _cli("list", amqp_url=amqp_url)
    assert code == 0, err
    lines = out.splitlines()
    assert "exchange_unavailable" in lines[0] and "failed signal" in lines[0]
    assert "processing_error" in lines[2] and "(stale)" in lines[2]
    assert "missing_field" in lines[4] and "malformed" in lines[4]
    assert lines[-1].startswith("3 message(s) shown") and "none removed" in lines[-1]
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [
        letters.fresh,
        letters.stale,
        letters.malformed,
    ]


async def test_without_a_dead_letter_queue_there_is_nothing_to_list(amqp_url: str) -> None:
    code, out, err = await _cli("list", amqp_url=amqp_url)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("0 message(s) shown")


async def test_replay_all_delivers_the_fresh_failed_signal_and_keeps_the_rest(
    amqp_url: str, letters: Letters
) -> None:
    code, out, err = await _cli("replay", "--all", amqp_url=amqp_url)

    assert code == 0, err
    assert "1 replayed" in out and "2 kept" in out
    assert "kept, stale" in out and letters.stale_id in out
    delivered = await _drain(amqp_url, SIGNALS_QUEUE)
    assert [m.body for m in delivered] == [letters.fresh]  # byte for byte
    assert delivered[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert delivered[0].headers["x-om-replayed-reason"] == "exchange_unavailable"
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [letters.stale, letters.malformed]


async def test_replay_by_signal_id_with_include_stale_takes_exactly_that_one(
    amqp_url: str, letters: Letters
) -> None:
    code, out, err = await _cli(
        "replay", "--signal-id", letters.stale_id, "--include-stale", amqp_url=amqp_url
    )

    assert code == 0, err
    assert "1 replayed" in out and "2 kept" in out
    assert [m.body for m in await _drain(amqp_url, SIGNALS_QUEUE)] == [letters.stale]
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [letters.fresh, letters.malformed]


async def test_a_dry_run_replays_nothing_and_a_replay_needs_a_choice(
    amqp_url: str, letters: Letters
) -> None:
    code, out, err = await _cli(
        "replay", "--reason", "missing_field", "--dry-run", amqp_url=amqp_url
    )
    assert code == 0, err
    assert "1 would replay" in out and "missing_field" in out
    code, _, err = await _cli("replay", amqp_url=amqp_url)
    assert code == 2 and "--reason CODE, --signal-id ID or --all" in err
    code, _, err = await _cli("replay", "--signal-id", "nope", amqp_url=amqp_url)
    assert code == 2 and "expected a UUID" in err
    assert await _drain(amqp_url, SIGNALS_QUEUE) == []
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [
        letters.fresh,
        letters.stale,
        letters.malformed,
    ]


async def test_discard_all_malformed_saves_each_one_exactly_before_removing_it(
    amqp_url: str, letters: Letters, tmp_path: Path
) -> None:
    saved = tmp_path / "discarded.jsonl"
    code, out, err = await _cli(
        "discard", "--all-malformed", "--save", str(saved), amqp_url=amqp_url
    )

    assert code == 0, err
    assert "1 discarded" in out and "2 kept" in out and str(saved) in out
    (record,) = [json.loads(line) for line in saved.read_text().splitlines()]
    assert base64.b64decode(record["body_base64"]) == letters.malformed  # byte for byte
    assert record["reason"] == "missing_field" and record["trace_id"] == "t-1"
    assert record["queue"] == DLQ and record["discarded_at"]
    # failed signals are never taken by --all-malformed: they may still be replayed
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [letters.fresh, letters.stale]


async def test_discard_a_named_failed_signal_appends_to_the_file(
    amqp_url: str, letters: Letters, tmp_path: Path
) -> None:
    saved = tmp_path / "discarded.jsonl"
    saved.write_text('{"earlier": true}\n')
    code, out, err = await _cli(
        "discard", "--signal-id", letters.stale_id, "--save", str(saved), amqp_url=amqp_url
    )

    assert code == 0, err
    assert "1 discarded" in out and "2 kept" in out
    lines = saved.read_text().splitlines()
    assert lines[0] == '{"earlier": true}'  # appended, never overwritten
    assert [json.loads(line)["signal_id"] for line in lines[1:]] == [letters.stale_id]
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [letters.fresh, letters.malformed]


async def test_discard_refuses_without_a_choice_a_file_or_a_writable_file(
    amqp_url: str, letters: Letters, tmp_path: Path
) -> None:
    code, _, err = await _cli("discard", "--save", str(tmp_path / "x"), amqp_url=amqp_url)
    assert code == 2 and "--reason CODE, --signal-id ID or --all-malformed" in err
    code, _, err = await _cli("discard", "--all-malformed", amqp_url=amqp_url)
    assert code == 2 and "--save FILE is required" in err
    unwritable = tmp_path / "no-such-dir" / "discarded.jsonl"
    code, _, err = await _cli(
        "discard", "--all-malformed", "--save", str(unwritable), amqp_url=amqp_url
    )
    assert code == 1 and "--save" in err and "No such file" in err
    code, out, err = await _cli("discard", "--all-malformed", "--dry-run", amqp_url=amqp_url)
    assert code == 0, err
    assert "1 would discard" in out and "missing_field" in out
    assert [m.body for m in await _drain(amqp_url, DLQ)] == [
        letters.fresh,
        letters.stale,
        letters.malformed,
    ]
