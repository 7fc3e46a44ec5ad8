"""The signals table as the FR-019 state machine (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.signal_publisher import build_signal, encode_signal
from order_manager.domain.signals import TradingSignal, parse_signal


@pytest.fixture
async def uow(db_url: str) -> AsyncIterator[PostgresUnitOfWorkFactory]:
    pool = await create_pool(db_url, min_size=1, max_size=4)
    yield PostgresUnitOfWorkFactory(pool)
    await pool.close()


def a_signal() -> tuple[TradingSignal, str]:
    body = encode_signal(build_signal(asset="BTCUSDT", side="buy", amount=Decimal("12.345")))
    return _parsed(body.decode())


def _parsed(body: str) -> tuple[TradingSignal, str]:
    parsed = parse_signal(body)
    assert isinstance(parsed, TradingSignal)
    return parsed, body


Claim = tuple[str | None, str, int, bool]


async def claim(uow: PostgresUnitOfWorkFactory, signal: TradingSignal, body: str) -> Claim:
    async with uow() as u:
        c = await u.signals.claim(signal, raw_body=body, trace_id="t1", is_dry_run=False)
        await u.commit()
    return c.previous_status, c.status, c.attempts, c.is_duplicate


async def row(uow: PostgresUnitOfWorkFactory, signal_id: str) -> asyncpg.Record:
    async with uow() as u:
        r = await u.connection.fetchrow("SELECT * FROM signals WHERE signal_id = $1", signal_id)
    assert r is not None
    return r


async def test_new_signal_is_claimed_with_its_fields_and_raw_text(
    uow: PostgresUnitOfWorkFactory,
) -> None:
    signal, body = a_signal()
    assert await claim(uow, signal, body) == (None, "processing", 1, False)
    r = await row(uow, signal.signal_id)
    assert r["symbol"] == "BTCUSDT" and r["signal_type"] == "buy"
    assert r["amount"] == Decimal("12.345") and r["trace_id"] == "t1"
    assert Decimal(str(r["raw"]["amount"])) == Decimal("12.345")
    assert json.loads(body)["signal_id"] == r["raw"]["signal_id"]


async def test_the_state_machine_of_redeliveries(uow: PostgresUnitOfWorkFactory) -> None:
    signal, body = a_signal()
    sid = signal.signal_id
    await claim(uow, signal, body)
    # crash while processing → the redelivery resumes
    assert await claim(uow, signal, body) == ("processing", "processing", 2, False)
    async with uow() as u:
        await u.signals.finish(sid, status="failed", reason_code="x", reason_message="boom")
        await u.commit()
    # failed → retried
    assert await claim(uow, signal, body) == ("failed", "processing", 3, False)
    async with uow() as u:
        await u.signals.finish(sid, status="executed", is_dry_run=True)
        await u.commit()
    r = await row(uow, sid)
    assert r["status"] == "executed" and r["is_dry_run"] is True and r["completed_at"]
    # executed → duplicate, nothing changes
    version = r["row_version"]
    assert await claim(uow, signal, body) == ("executed", "executed", 3, True)
    assert (await row(uow, sid))["row_version"] == version


async def test_rejected_is_final_too(uow: PostgresUnitOfWorkFactory) -> None:
    signal, body = a_signal()
    await claim(uow, signal, body)
    async with uow() as u:
        await u.signals.finish(signal.signal_id, status="rejected", reason_code="stale_signal")
        await u.commit()
    assert await claim(uow, signal, body) == ("rejected", "rejected", 1, True)


async def test_concurrent_claims_of_a_new_signal_insert_once(
    uow: PostgresUnitOfWorkFactory,
) -> None:
    signal, body = a_signal()
    results = await asyncio.gather(*(claim(uow, signal, body) for _ in range(4)))
    assert sorted(r[2] for r in results) == [1, 2, 3, 4]
    assert [r[0] for r in results].count(None) == 1


async def test_malformed_record_never_overwrites_an_outcome(
    uow: PostgresUnitOfWorkFactory,
) -> None:
    signal, body = a_signal()
    await claim(uow, signal, body)
    async with uow() as u:
        await u.signals.finish(signal.signal_id, status="executed")
        created = await u.signals.record_malformed(
            signal.signal_id,
            raw_body='{"signal_id": "x"}',
            reason_code="missing_field",
            reason_message="m",
            trace_id="t",
        )
        fresh = str(uuid.uuid4())
        recorded = await u.signals.record_malformed(
            fresh, raw_body="{}", reason_code="bad_type", reason_message="m", trace_id="t"
        )
        await u.commit()
    assert created is False and recorded is True
    assert (await row(uow, signal.signal_id))["status"] == "executed"
    fresh_row = await row(uow, fresh)
    assert fresh_row["status"] == "rejected" and fresh_row["reason_code"] == "bad_type"


async def test_nul_characters_are_stored_as_text(uow: PostgresUnitOfWorkFactory) -> None:
    fresh = str(uuid.uuid4())
    async with uow() as u:
        await u.signals.record_malformed(
            fresh,
            raw_body='{"signal_id": "a\\u0000b"}',
            reason_code="invalid_value",
            reason_message="m",
            trace_id="t",
        )
        await u.commit()
    assert "unstorable_body" in (await row(uow, fresh))["raw"]


async def test_finish_of_an_unknown_signal_is_an_error(uow: PostgresUnitOfWorkFactory) -> None:
    async with uow() as u:
        with pytest.raises(LookupError):
            await u.signals.finish(str(uuid.uuid4()), status="executed")
        assert await u.signals.status_of(str(uuid.uuid4())) is None
