"""The bench's model service: publishes prepared signals at a fixed rate from its OWN process.

``bench/signal_to_order.py`` starts it as a subprocess so that publishing neither takes the
service's CPU nor waits on the service's event loop (a publisher on a busy loop wakes late and
stamps late, which hides latency). Protocol, all JSON lines:

* argv: ``AMQP_URL QUEUE RATE BODIES_FILE`` — the file holds one ``{"id", "body"}`` per line
  (``body`` is the exact message text);
* it connects, declares nothing (the consumer declared the queue) and prints ``{"ready": true}``;
* on a ``go`` line on stdin it publishes message ``i`` at ``start + i / RATE`` (RATE 0: as
  fast as confirms allow, 256 in flight), persistent with publisher confirms, and stamps each
  with ``time.monotonic()`` just before its publish starts (CLOCK_MONOTONIC: the same clock
  in every process of the machine);
* it prints ``{"published": {id: t}, "first": t0, "last": t1, "cpu_s": ...}`` and exits.

    uv run python bench/load_publisher.py amqp://... model-service.trading_signals 100 bodies.jsonl
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aio_pika


async def publish(
    url: str, queue: str, rate: float, bodies: list[dict[str, str]]
) -> dict[str, object]:
    connection = await aio_pika.connect(url, client_properties={"connection_name": "bench-load"})
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        messages = [
            (
                item["id"],
                aio_pika.Message(
                    item["body"].encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=item["id"],
                ),
            )
            for item in bodies
        ]
        print(json.dumps({"ready": True}), flush=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"expected 'go', got {line!r}")
        cpu0 = time.process_time()
        published: dict[str, float] = {}
        confirms: list[asyncio.Task[object]] = []
        interval = 1.0 / rate if rate > 0 else 0.0
        start = time.monotonic()
        for i, (sid, message) in enumerate(messages):
            if interval:
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            published[sid] = time.monotonic()
            confirms.append(
                asyncio.create_task(exchange.publish(message, routing_key=queue, mandatory=True))
            )
            if len(confirms) >= 256:
                await asyncio.gather(*confirms)
                confirms.clear()
        await asyncio.gather(*confirms)
        return {
            "published": published,
            "first": start,
            "last": time.monotonic(),
            "cpu_s": time.process_time() - cpu0,
        }
    finally:
        await connection.close()


def main() -> None:
    url, queue, rate, bodies_file = sys.argv[1:5]
    lines = Path(bodies_file).read_text().splitlines()
    result = asyncio.run(publish(url, queue, float(rate), [json.loads(x) for x in lines if x]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
