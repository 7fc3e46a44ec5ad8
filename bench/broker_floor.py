"""Benchmark: what RabbitMQ itself costs per message, as the service uses it — the floor under
any signal-to-order figure on a machine where the broker shares the cores.

Every signal is one persistent message consumed and acked (the intake) and, on average, ~2.4
persistent events published with publisher confirms (the outbox relay: ``created``, ``filled``,
``position_updated``...; messages.md fixes one event per message). This bench measures the
CPU both ends spend per message, on a fresh vhost of the dev broker
(``eval "$(scripts/infra env)"`` first):

* ``publish@N``: the project's ``RabbitEventPublisher`` (aio-pika, persistent, ``mandatory``,
  confirmed) with N publishes awaiting their confirms at once (``--in-flight``, several values),
  into a durable queue nobody consumes. N = 1 is a relay that waits for each confirm before
  the next message; the broker then syncs its message store for every message;
* ``publish-transient``: the same with non-persistent messages, to show what persistence adds;
* ``consume-ack``: the intake's side — consume those persistent messages with manual acks, one
  ack per message, ``--prefetch`` unacked.

    uv run python bench/broker_floor.py --count 20000 --in-flight 1 2 8 32

Prints a table (CPU ms per message of this process and of ``beam.smp``) and the floor it implies
for 1 000 dry-run signals/s, and writes ``bench/results/broker_floor-<YYYYMMDD>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aio_pika

from _common import cpu_seconds_by_command, write_result
from order_manager.adapters.rabbitmq.publisher import RabbitEventPublisher
from signal_to_order import fresh_vhost

QUEUE = "order-manager.order_events"
#: a typical ``filled`` order event of the service (size and shape; values do not matter)
EVENT: dict[str, Any] = {
    "event_type": "filled",
    "order": {
        "id": "0b1e5a1c-8a9b-4f41-9d0e-3c7a0c2f4b11",
        "order_link_id": "om-5f0c7c1e2d3b4a59-1",
        "order_id": "1f2e3d4c-5b6a-4798-8a9b-0c1d2e3f4a5b",
        "category": "linear",
        "symbol": "ETHUSDT",
        "side": "Buy",
        "order_type": "Market",
        "qty": "0.14",
        "price": None,
        "status": "filled",
        "cum_exec_qty": "0.14",
        "cum_exec_value": "490.56",
        "cum_exec_fee": "0.269808",
        "avg_price": "3504.00",
        "leaves_qty": "0",
        "is_dry_run": True,
    },
    "signal": {
        "signal_id": "5f0c7c1e-2d3b-4a59-8e2f-6a7b8c9d0e1f",
        "strategy_id": "bench",
        "asset": "ETHUSDT",
        "side": "buy",
        "amount": "500",
        "confidence": "0.85",
    },
    "trace_id": "5f0c7c1e2d3b4a598e2f6a7b8c9d0e1f",
}
COMMANDS = ("beam.smp",)


def sample() -> tuple[float, float]:
    """(this process's CPU seconds, the broker's)."""
    times = os.times()
    return times.user + times.system, cpu_seconds_by_command(COMMANDS)["beam.smp"]


async def measured(
    name: str, count: int, body: Callable[[], Awaitable[None]]
) -> dict[str, float | str]:
    own0, broker0 = sample()
    start = time.perf_counter()
    await body()
    elapsed = time.perf_counter() - start
    own1, broker1 = sample()
    return {
        "case": name,
        "messages": count,
        "messages_per_s": round(count / elapsed, 1),
        "client_cpu_ms_per_message": round((own1 - own0) * 1000 / count, 3),
        "broker_cpu_ms_per_message": round((broker1 - broker0) * 1000 / count, 3),
    }


async def publish_all(publisher: RabbitEventPublisher, count: int, in_flight: int) -> None:
    numbers = iter(range(count))
    now = datetime.now(UTC)

    async def chain() -> None:
        for n in numbers:
            await publisher.publish(
                routing_key=QUEUE,
                body=EVENT,
                message_id=f"bench-{n}",
                event_type="filled",
                timestamp=now,
                trace_id=EVENT["trace_id"],
                headers={"x-om-event-type": "filled", "x-om-sequence": n},
            )

    await asyncio.gather(*(chain() for _ in range(in_flight)))


async def publish_transient(url: str, count: int, in_flight: int) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(QUEUE + ".transient", durable=True)
        payload = json.dumps(EVENT, separators=(",", ":")).encode()
        numbers = iter(range(count))

        async def chain() -> None:
            for n in numbers:
                await channel.default_exchange.publish(
                    aio_pika.Message(payload, message_id=f"bench-{n}", type="filled"),
                    routing_key=QUEUE + ".transient",
                )

        await asyncio.gather(*(chain() for _ in range(in_flight)))
    finally:
        await connection.close()


async def consume_all(url: str, count: int, prefetch: int) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(QUEUE, durable=True)
        seen = 0
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                seen += 1
                if seen == count:
                    break
    finally:
        await connection.close()


async def run(count: int, in_flight: list[int], prefetch: int) -> list[dict[str, float | str]]:
    amqp = os.environ["ORDERMANAGER_RABBITMQ_URL"]
    api = os.environ["OM_RABBITMQ_API"]
    async with fresh_vhost(amqp, api) as url:
        publisher = RabbitEventPublisher(url, queues=[QUEUE])
        await publisher.connect()
        try:
            await publish_all(publisher, 200, 8)  # warm up: connection, code paths
            await consume_all(url, 200, prefetch)
            rows = [
                await measured(f"publish@{n}", count, partial(publish_all, publisher, count, n))
                for n in in_flight
            ]
        finally:
            await publisher.close()
        widest = max(in_flight)
        rows.append(
            await measured(
                f"publish-transient@{widest}",
                count,
                lambda: publish_transient(url, count, widest),
            )
        )
        # the queue now holds count × len(in_flight) persistent messages; consume count of them
        rows.append(await measured("consume-ack", count, lambda: consume_all(url, count, prefetch)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument(
        "--in-flight",
        type=int,
        nargs="+",
        default=[1, 2, 8, 32],
        help="publishes awaiting a confirm at once (one publish case per value)",
    )
    parser.add_argument("--prefetch", type=int, default=64)
    parser.add_argument(
        "--events-per-signal", type=float, default=2.4, help="the service's average (bench)"
    )
    args = parser.parse_args()
    rows = asyncio.run(run(args.count, args.in_flight, args.prefetch))
    by_case = {str(row["case"]): row for row in rows}
    # the floor: the cheapest way to publish measured (the widest pipelining)
    publish = by_case[f"publish@{max(args.in_flight)}"]
    per_signal = {
        side: float(by_case["consume-ack"][f"{side}_cpu_ms_per_message"])
        + args.events_per_signal * float(publish[f"{side}_cpu_ms_per_message"])
        for side in ("client", "broker")
    }
    print(f"{'case':<22}{'msgs/s':>10}{'client ms/msg':>15}{'broker ms/msg':>15}")
    for row in rows:
        print(
            f"{row['case']!s:<22}{row['messages_per_s']!s:>10}"
            f"{row['client_cpu_ms_per_message']!s:>15}{row['broker_cpu_ms_per_message']!s:>15}"
        )
    print(
        f"per signal (1 consume+ack + {args.events_per_signal} publishes"
        f" @{max(args.in_flight)}): client"
        f" {per_signal['client']:.2f} ms, broker {per_signal['broker']:.2f} ms of CPU;"
        f" at 1 000 signals/s that is {per_signal['client'] + per_signal['broker']:.2f} cores"
        " before any planning, database or exchange work"
    )
    figures = {
        "cases": rows,
        "per_signal_cpu_ms": {k: round(v, 3) for k, v in per_signal.items()},
        "cores_at_1000_signals_per_s": round(sum(per_signal.values()), 2),
    }
    path = write_result(
        "broker_floor",
        figures,
        {
            "count": args.count,
            "in_flight": args.in_flight,
            "prefetch": args.prefetch,
            "events_per_signal": args.events_per_signal,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
