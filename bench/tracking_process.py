"""The tracker and the outbox relay in a process of their own — an EXPERIMENT for issue 6's
decision (docs/scaling.md), not how the service runs today.

The service runs the tracker and the relay on the same event loop as the signal path; at the
live bench's saturation the service process is one busy core while the machine still has some
left. ``bench/signal_to_order.py --tracking-process`` starts this script instead of its
in-process tracker and relay, to measure what moving them out would buy. Protocol (lines):

* argv: ``DATABASE_URL AMQP_URL SIM_URL RELAY_COALESCE_MS``;
* prints ``{"ready": true}`` once the private stream is subscribed;
* on ``cpu`` prints ``{"cpu_s": <this process's CPU seconds so far>}``;
* on ``stop`` (or end of input) stops the relay and the tracker and exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from order_manager.adapters.bybit.config import BybitClientConfig, RateLimitConfig
from order_manager.adapters.bybit.event_source import PrivateStreamSource
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.postgres.outbox_listener import PgOutboxNotifications
from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.publisher import RabbitEventPublisher
from order_manager.logs import configure_logging
from order_manager.services.outbox_relay import OutboxRelay
from order_manager.services.ports.outbox import ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC
from order_manager.services.tracker import Tracker, run_tracker


async def serve(db_url: str, amqp_url: str, sim_url: str, coalesce_ms: float) -> None:
    pool = await create_pool(db_url, min_size=2, max_size=8)
    uow = PostgresUnitOfWorkFactory(pool)
    config = BybitClientConfig.for_simulator(
        sim_url, rate_limit=RateLimitConfig(enabled=False), categories=("linear",)
    )
    stream = PrivateStream(config)
    source = PrivateStreamSource(stream)
    await source.connect()
    tracking = asyncio.create_task(run_tracker(Tracker(uow, link_prefix="om"), source))
    publisher = RabbitEventPublisher(amqp_url, queues=(ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC))
    relay = OutboxRelay(uow, publisher, PgOutboxNotifications(db_url), coalesce=coalesce_ms / 1000)
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if line == "cpu":
                print(json.dumps({"cpu_s": time.process_time()}), flush=True)
            elif line in ("stop", ""):
                break
    finally:
        stop.set()
        await relaying
        tracking.cancel()
        await asyncio.gather(tracking, return_exceptions=True)
        await stream.stop()
        await publisher.close()
        await pool.close()


def main() -> None:
    db_url, amqp_url, sim_url, coalesce_ms = sys.argv[1:5]
    configure_logging(level="WARNING", fmt="console")
    asyncio.run(serve(db_url, amqp_url, sim_url, float(coalesce_ms)))


if __name__ == "__main__":
    main()
