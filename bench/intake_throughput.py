"""Benchmark: the intake alone — queue → parse → dedupe (signals table) → lane → outcome → ack.

The processor is a no-op ``SignalProcessor`` (answers ``executed`` at once), so the figure is the
intake's own ceiling: RabbitMQ consumer with manual acks, two PostgreSQL transactions per signal
(claim, outcome), per-symbol lanes, logging and metrics. Runs on a fresh database and a fresh
RabbitMQ vhost of the dev infrastructure (``eval "$(scripts/infra env)"`` first).

    uv run python bench/intake_throughput.py --count 3000 --symbols 10

``N`` signals are published first (round-robin over the symbols), then the intake is started and
timed until every outcome is committed and acked. Writes
``bench/results/intake_throughput-<YYYYMMDD>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
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
from order_manager.logs import configure_logging
from order_manager.services.intake import IntakeConfig, SignalIntake
from order_manager.services.ports.messaging import ReceivedMessage
from order_manager.services.ports.processing import SignalExecuted, SignalOutcome
from signal_to_order import fresh_database, fresh_vhost

QUEUE = "model-service.trading_signals"
DLQ = "order-manager.signals.dlq"


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
    )


class CountingMessage:
    """A delivery whose ack is counted (the intake's last step for every signal)."""

    def __init__(self, inner: ReceivedMessage, acked: AckCounter) -> None:
        self._inner = inner
        self._acked = acked
        self.body = inner.body
        self.redelivered = inner.redelivered
        self.headers = inner.headers

    async def ack(self) -> None:
        await self._inner.ack()
        self._acked.add()


class AckCounter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = asyncio.Event()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.done.set()


class CountingSource:
    def __init__(self, inner: RabbitSignalSource, acked: AckCounter) -> None:
        self._inner = inner
        self._acked = acked

    async def messages(self) -> AsyncIterator[CountingMessage]:
        async for message in self._inner.messages():
            yield CountingMessage(message, self._acked)

    async def stop(self) -> None:
        await self._inner.stop()

    async def close(self) -> None:
        await self._inner.close()


class NoopProcessor:
    def __init__(self) -> None:
        self.calls = 0

    async def process(
        self, signal: TradingSignal, trace_id: str, *, is_new: bool = False
    ) -> SignalOutcome:
        self.calls += 1
        return SignalExecuted(order_link_ids=(f"om-{signal.signal_id[:8]}",))


async def run(count: int, symbols: int, prefetch: int, unit_of_work_only: bool) -> dict[str, float]:
    names = [f"S{i}USDT" for i in range(symbols)]
    known = {(Category.LINEAR, s): instrument(s) for s in names}
    db_base = os.environ["ORDERMANAGER_DATABASE_URL"]
    amqp = os.environ["ORDERMANAGER_RABBITMQ_URL"]
    api = os.environ["OM_RABBITMQ_API"]
    async with fresh_database(db_base) as db_url, fresh_vhost(amqp, api) as vhost_url:
        pool = await create_pool(db_url, min_size=4, max_size=10)
        connection = await connect(vhost_url, name="bench-intake")
        publisher = RabbitSignalPublisher(connection, QUEUE)
        await publisher.start()
        bodies = [
            encode_signal(build_signal(asset=names[i % symbols], side="buy", amount=Decimal(100)))
            for i in range(count)
        ]
        for start in range(0, count, 256):
            await asyncio.gather(*(publisher.publish(b) for b in bodies[start : start + 256]))
        processor = NoopProcessor()
        acked = AckCounter(count)
        intake = SignalIntake(
            source=CountingSource(RabbitSignalSource(connection, QUEUE, prefetch=prefetch), acked),
            dead_letters=RabbitDeadLetterPublisher(connection, DLQ),
            uow_factory=PostgresUnitOfWorkFactory(pool),
            signal_store=None if unit_of_work_only else PgSignalStore(pool),
            processor=processor,
            instruments=lambda category, symbol: known.get((category, symbol)),
            config=IntakeConfig(),
        )
        began = time.perf_counter()
        intake.start()
        await asyncio.wait_for(acked.done.wait(), timeout=600)
        elapsed = time.perf_counter() - began
        await intake.stop()
        await publisher.close()
        await connection.close()
        await pool.close()
    return {
        "signals": count,
        "seconds": round(elapsed, 3),
        "signals_per_s": round(count / elapsed, 1),
        "per_signal_ms": round(elapsed / count * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument(
        "--unit-of-work-only",
        action="store_true",
        help="every signals-table write in a unit of work (no autocommit SignalStore)",
    )
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    figures = asyncio.run(run(args.count, args.symbols, args.prefetch, args.unit_of_work_only))
    path = write_result(
        "intake_throughput",
        figures,
        {
            "count": args.count,
            "symbols": args.symbols,
            "prefetch": args.prefetch,
            "unit_of_work_only": args.unit_of_work_only,
        },
        [
            "no-op processor: the intake's own ceiling (claim + outcome transactions, ack)",
            "PostgreSQL, RabbitMQ and this process share the machine's 2 cores",
        ],
    )
    print(figures)
    print(f"written {path}")


if __name__ == "__main__":
    main()
