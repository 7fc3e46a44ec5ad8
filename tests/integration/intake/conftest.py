"""Intake tests on real RabbitMQ (a fresh vhost) and real PostgreSQL (a fresh database).

`RecordingProcessor` is a real implementation of the `SignalProcessor` port (the intake's own
port, not a stand-in for the broker or the database): it records the order in which signals
reach it and answers with scripted outcomes, optionally waiting on a gate so a test can hold a
signal "in flight".
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.signals_repo import PgSignalStore
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.connection import connect
from order_manager.adapters.rabbitmq.dead_letters import RabbitDeadLetterPublisher
from order_manager.adapters.rabbitmq.signal_consumer import RabbitSignalSource
from order_manager.adapters.rabbitmq.signal_publisher import (
    RabbitSignalPublisher,
    build_signal,
    encode_signal,
)
from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument
from order_manager.domain.signals import TradingSignal
from order_manager.services.intake import IntakeConfig, SignalIntake
from order_manager.services.ports.processing import (
    SignalExecuted,
    SignalOutcome,
)
from tests.helpers import until as until_

SIGNALS_QUEUE = "model-service.trading_signals"
DLQ = "order-manager.signals.dlq"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")


def instrument(symbol: str) -> Instrument:
    return Instrument(
        category=Category.LINEAR,
        symbol=symbol,
        base_coin=symbol.removesuffix("USDT"),
        quote_coin="USDT",
        tick_size=Decimal("0.01"),
        qty_step=Decimal("0.001"),
        min_order_qty=Decimal("0.001"),
        max_order_qty=Decimal("1000"),
        max_market_qty=Decimal("500"),
        min_notional=Decimal("5"),
    )


INSTRUMENTS = {(Category.LINEAR, s): instrument(s) for s in SYMBOLS}


def lookup(category: Category, symbol: str) -> Instrument | None:
    return INSTRUMENTS.get((category, symbol))


@dataclass
class RecordingProcessor:
    """SignalProcessor that records calls; outcomes scripted per signal_id (FIFO per id)."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)  # (asset, signal_id, trace)
    scripted: dict[str, deque[SignalOutcome | Exception]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: dict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    #: the ``is_new`` flag of each call, per signal
    is_new: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    yields: int = 0
    is_dry_run: bool = False

    def script(self, signal_id: str, *outcomes: SignalOutcome | Exception) -> None:
        self.scripted[signal_id].extend(outcomes)

    def hold(self, signal_id: str) -> asyncio.Event:
        gate = self.gates[signal_id] = asyncio.Event()
        return gate

    def ids(self, asset: str | None = None) -> list[str]:
        return [sid for a, sid, _ in self.calls if asset is None or a == asset]

    async def process(
        self, signal: TradingSignal, trace_id: str, *, is_new: bool = False
    ) -> SignalOutcome:
        self.calls.append((signal.asset, signal.signal_id, trace_id))
        self.is_new[signal.signal_id].append(is_new)
        self.entered[signal.signal_id].set()
        for _ in range(self.yields):
            await asyncio.sleep(0)  # let other lanes interleave
        gate = self.gates.get(signal.signal_id)
        if gate is not None:
            await gate.wait()
        queue = self.scripted.get(signal.signal_id)
        if queue:
            outcome = queue.popleft()
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        return SignalExecuted(
            order_link_ids=(f"om-{signal.signal_id[:8]}-0",), is_dry_run=self.is_dry_run
        )


def signal_body(asset: str = "BTCUSDT", **overrides: Any) -> tuple[str, bytes]:
    fields: dict[str, Any] = {"asset": asset, "side": "buy", "amount": Decimal("100")}
    fields.update(overrides)
    signal = build_signal(**fields)
    return signal["signal_id"], encode_signal(signal)


@dataclass
class Harness:
    amqp_url: str
    pool: asyncpg.Pool
    connection: AbstractRobustConnection
    publisher: RabbitSignalPublisher
    processor: RecordingProcessor
    intakes: list[SignalIntake] = field(default_factory=list)

    def intake(
        self,
        *,
        prefetch: int = 50,
        processor: Any = None,
        dry_run_processor: Any = None,
        connection: AbstractRobustConnection | None = None,
        clock: Callable[[], datetime] | None = None,
        use_store: bool = True,
        **config: Any,
    ) -> SignalIntake:
        """An intake on the real broker/database; `use_store=False` runs every signals-table
        write through a unit of work instead of the autocommit `PgSignalStore`."""
        conn = connection or self.connection
        intake = SignalIntake(
            source=RabbitSignalSource(conn, SIGNALS_QUEUE, prefetch=prefetch),
            dead_letters=RabbitDeadLetterPublisher(conn, DLQ),
            uow_factory=PostgresUnitOfWorkFactory(self.pool),
            processor=processor or self.processor,
            dry_run_processor=dry_run_processor,
            signal_store=PgSignalStore(self.pool) if use_store else None,
            instruments=lookup,
            config=IntakeConfig(**config),
            clock=clock or (lambda: datetime.now(UTC)),
        )
        self.intakes.append(intake)
        return intake

    async def publish(self, body: bytes) -> None:
        await self.publisher.publish(body)

    async def send(self, asset: str = "BTCUSDT", **overrides: Any) -> str:
        signal_id, body = signal_body(asset, **overrides)
        await self.publish(body)
        return signal_id

    async def signal_row(self, signal_id: str) -> Mapping[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM signals WHERE signal_id = $1", signal_id)
        return None if row is None else dict(row)

    async def status(self, signal_id: str) -> str | None:
        row = await self.signal_row(signal_id)
        return None if row is None else str(row["status"])

    async def wait_status(self, signal_id: str, status: str, within: float = 10.0) -> None:
        async def probe() -> bool:
            return await self.status(signal_id) == status

        await until(probe, within=within, what=f"signal {signal_id} {status}")

    async def outbox(self, event_type: str) -> list[Mapping[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM outbox WHERE event_type = $1 ORDER BY id", event_type
            )
        return [dict(r) for r in rows]

    async def queue_depth(self, name: str) -> int:
        """Messages ready (not delivered/unacked) in `name`."""
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
            count = queue.declaration_result.message_count
            return int(count or 0)
        finally:
            await channel.close()

    async def dead_letters(self, expected: int, within: float = 10.0) -> list[Any]:
        """Read `expected` messages from the DLQ (acked), failing after `within` seconds."""
        channel = await self.connection.channel()
        got: list[Any] = []
        try:
            queue = await channel.declare_queue(DLQ, passive=True)

            async def probe() -> bool:
                message = await queue.get(fail=False, no_ack=True)
                if message is not None:
                    got.append(message)
                return len(got) >= expected

            await until(probe, within=within, what=f"{expected} DLQ messages")
        finally:
            await channel.close()
        return got


def decoded(body: bytes) -> Any:
    return json.loads(body)


async def until(probe: Callable[[], Awaitable[object]], *, what: str, within: float = 10.0) -> None:
    """Intake tests poll every 10 ms (see `tests.helpers.until`)."""
    await until_(probe, what=what, within=within, interval=0.01)


@pytest.fixture
async def harness(amqp_url: str, db_url: str) -> AsyncIterator[Harness]:
    pool = await create_pool(db_url, min_size=1, max_size=8)
    connection = await connect(amqp_url, name="intake-test")
    publisher = RabbitSignalPublisher(connection, SIGNALS_QUEUE)
    await publisher.start()
    # The DLQ exists from the start so tests can inspect it even when it stays empty.
    channel = await connection.channel()
    await channel.declare_queue(DLQ, durable=True)
    await channel.close()
    h = Harness(amqp_url, pool, connection, publisher, RecordingProcessor())
    try:
        yield h
    finally:
        for gate in h.processor.gates.values():
            gate.set()  # let anything still held finish
        for intake in h.intakes:
            await asyncio.wait_for(intake.stop(), timeout=10)
        await publisher.close()
        await connection.close()
        await pool.close()


def aged(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


Probe = Callable[[], Awaitable[bool]]


async def run_cli(*args: str, amqp_url: str) -> tuple[int, str, str]:
    """``order-manager *args`` as a process, against ``amqp_url``: (exit code, stdout, stderr)."""
    env = {**os.environ, "ORDERMANAGER_RABBITMQ_URL": amqp_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from order_manager.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
