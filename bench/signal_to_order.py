"""Benchmark: signal published on RabbitMQ → order acknowledged by the exchange.

The full shell runs in this process: the intake (aio-pika consumer, manual ack, per-symbol
lanes, signals table dedupe) → the processor (account state, planner, risk) → the executor
(write-ahead intent committed, REST create, answer + outbox event committed) on a fresh
PostgreSQL database and a fresh RabbitMQ vhost of the dev infrastructure. The exchange is either

* ``sim``: a ``bybit-sim`` SUBPROCESS (as users start it; per-UID rate limits off, frozen
  prices), prices from its public WebSocket (no REST call for market data), or
* ``dry-run``: the in-process paper exchange, priced from the same simulator's stream.

A publisher in its own process (``bench/load_publisher.py``, the model service) sends ``N``
signals round-robin over the symbols at ``--rate`` signals/s (0 = as fast as the broker
confirms), persistent with confirms. Latency of one signal = time its order's create call
returned ``ok`` (the exchange's acknowledgement) minus the time its publish started, both on the
machine's monotonic clock. Throughput = acknowledged signals / (last ack - first publish). (Until
the fifth session the publisher ran in this process: it took ~0.3 ms of the service's CPU per
signal and, on a busy event loop, woke late and stamped late, hiding part of the latency.)
Sides alternate per symbol so positions stay small (no risk limit kicks in); the
orders-per-minute limit and the client-side rate limiter are disabled (Bybit's own per-UID limit
of 10 creates/s would otherwise be the bottleneck — it is the exchange's, not ours).

The tracker and the outbox relay (which publishes the events to RabbitMQ) run in this process
as in the service; ``--no-tracker`` / ``--no-relay`` leave them out. Figures recorded before
the fourth session were taken without the relay (their result keys have no ``-relay``).

Usage::

    uv run python bench/signal_to_order.py --mode sim --rate 200 --count 2000
    uv run python bench/signal_to_order.py --mode dry-run --rate 0 --count 5000

Writes ``bench/results/signal_to_order-<YYYYMMDD>.json`` (all runs of the invocation; runs of
an earlier invocation the same day are kept under their own mode/rate key).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, cpu_seconds_by_command, percentile, write_result
from order_manager.adapters.bybit.config import BybitClientConfig, RateLimitConfig, RetryConfig
from order_manager.adapters.bybit.event_source import PrivateStreamSource
from order_manager.adapters.bybit.gateway import BybitGateway, GatewayReport
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.market_data import MarketData
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.bybit.rest import BybitRestClient
from order_manager.adapters.paper.exchange import PaperExchange
from order_manager.adapters.paper.feed import PaperFeedSource
from order_manager.adapters.postgres.migrate import upgrade
from order_manager.adapters.postgres.outbox_listener import PgOutboxNotifications
from order_manager.adapters.postgres.pool import create_pool
from order_manager.adapters.postgres.signals_repo import PgSignalStore
from order_manager.adapters.postgres.uow import PostgresUnitOfWorkFactory
from order_manager.adapters.rabbitmq.connection import connect
from order_manager.adapters.rabbitmq.dead_letters import RabbitDeadLetterPublisher
from order_manager.adapters.rabbitmq.publisher import RabbitEventPublisher
from order_manager.adapters.rabbitmq.signal_consumer import RabbitSignalSource
from order_manager.adapters.rabbitmq.signal_publisher import (
    RabbitSignalPublisher,
    build_signal,
    encode_signal,
)
from order_manager.config import Settings
from order_manager.domain.enums import Category
from order_manager.domain.instruments import Instrument
from order_manager.domain.planner import PlannerConfig
from order_manager.domain.plans import Place, order_link_id
from order_manager.domain.risk import RiskLimits
from order_manager.logs import configure_logging
from order_manager.services.intake import IntakeConfig, SignalIntake
from order_manager.services.outbox_relay import OutboxRelay
from order_manager.services.ports.outbox import ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC
from order_manager.services.ports.processing import SignalRejected
from order_manager.services.processor import AccountSource, Processor, ProcessorConfig
from order_manager.services.store_freshness import StoreFreshness
from order_manager.services.tracker import Tracker, run_tracker
from sim_throughput import bench_config, free_port, wait_ready

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
QUEUE = "model-service.trading_signals"
#: the relay's coalescing window as the service runs it (ORDERMANAGER_OUTBOX_RELAY_COALESCE_MS)
RELAY_COALESCE_MS = float(Settings.model_fields["outbox_relay_coalesce_ms"].default)
#: how long a lane waits for the tracker with `--account-source store`, as the service does
STORE_WAIT_MS = float(Settings.model_fields["account_store_wait_ms"].default)
DLQ = "order-manager.signals.dlq"
TARGET_P99_MS = 50.0
#: peer processes whose CPU is accounted per signal (PostgreSQL backends, the simulator,
#: RabbitMQ's Erlang VM): on 2 shared cores, CPU per signal is the figure that explains the rest
PEERS = ("postgres", "bybit-sim", "beam.smp")
TARGET_DRY_RUN_RATE = 1000.0


LOAD_PUBLISHER = str(Path(__file__).resolve().parent / "load_publisher.py")
TRACKING_PROCESS = str(Path(__file__).resolve().parent / "tracking_process.py")


class LineChild:
    """A bench script in a process of its own that talks in lines: commands on its stdin, one
    JSON object per line on its stdout, ``{"ready": true}`` first."""

    def __init__(self, process: asyncio.subprocess.Process, name: str, patience: float) -> None:
        self._process = process
        self._name = name
        #: seconds a reply may take (a publisher's report comes after the whole run)
        self._patience = patience

    @classmethod
    async def spawn(cls, name: str, patience: float, script: str, *args: str) -> LineChild:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            script,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # a publisher's report is one line of ~60 bytes per signal
        )
        child = cls(process, name, patience)
        if await child.read() != {"ready": True}:
            raise RuntimeError(f"the {name} did not get ready")
        return child

    async def read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), self._patience)
        if not line:
            raise RuntimeError(f"the {self._name} exited ({await self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def send(self, command: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(command.encode() + b"\n")
        await self._process.stdin.drain()

    async def wait(self) -> None:
        await asyncio.wait_for(self._process.wait(), 30)


class LoadPublisher:
    """``bench/load_publisher.py`` in its own process: the model service publishing signals
    (its clock, ``time.monotonic``, is the machine's CLOCK_MONOTONIC, as ours)."""

    def __init__(self, child: LineChild, folder: Any) -> None:
        self._child = child
        self._folder = folder

    @classmethod
    async def start(cls, url: str, rate: float, batch: list[dict[str, Any]]) -> LoadPublisher:
        folder = tempfile.TemporaryDirectory(prefix="bench-load-")
        bodies = Path(folder.name) / "bodies.jsonl"
        bodies.write_text(
            "".join(
                json.dumps({"id": s["signal_id"], "body": encode_signal(s).decode()}) + "\n"
                for s in batch
            )
        )
        child = await LineChild.spawn(
            "load publisher", 600, LOAD_PUBLISHER, url, QUEUE, str(rate), str(bodies)
        )
        return cls(child, folder)

    async def run(self) -> dict[str, Any]:
        """Start publishing; return its report once every signal is confirmed."""
        await self._child.send("go")
        try:
            return await self._child.read()
        finally:
            await self._child.wait()
            self._folder.cleanup()


class TrackingProcess:
    """``bench/tracking_process.py``: the tracker and the relay in a process of their own."""

    def __init__(self, child: LineChild) -> None:
        self._child = child

    @classmethod
    async def start(
        cls, db_url: str, amqp_url: str, sim_url: str, coalesce_ms: float
    ) -> TrackingProcess:
        child = await LineChild.spawn(
            "tracking process", 60, TRACKING_PROCESS, db_url, amqp_url, sim_url, str(coalesce_ms)
        )
        return cls(child)

    async def cpu(self) -> float:
        await self._child.send("cpu")
        return float((await self._child.read())["cpu_s"])

    async def stop(self) -> None:
        await self._child.send("stop")
        await self._child.wait()


class Acks:
    """orderLinkId → ``time.monotonic()`` of the exchange's acknowledgement."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.done = asyncio.Event()
        self.expected = 0
        self.errors: dict[str, int] = {}

    def record(self, link: str, ok: bool, kind: str | None) -> None:
        if ok:
            self.at.setdefault(link, time.monotonic())
        else:
            self.errors[kind or "?"] = self.errors.get(kind or "?", 0) + 1
        if len(self.at) + sum(self.errors.values()) >= self.expected:
            self.done.set()


class TimedProcessor:
    """Delegates to the processor; records how long each ``process`` call took (ms)."""

    def __init__(self, inner: Processor, acks: Acks) -> None:
        self._inner = inner
        self._acks = acks
        self.durations: list[float] = []

    async def process(self, signal: Any, trace_id: str, *, is_new: bool = False) -> Any:
        started = time.perf_counter()
        try:
            outcome = await self._inner.process(signal, trace_id, is_new=is_new)
        finally:
            self.durations.append((time.perf_counter() - started) * 1000)
        if isinstance(outcome, SignalRejected):  # refused before any exchange call
            self._acks.record(signal.signal_id, False, f"rejected:{outcome.code.value}")
        return outcome


class TimedGateway:
    """Delegates to the real gateway; stamps each create's answer."""

    def __init__(self, inner: Any, acks: Acks) -> None:
        self._inner = inner
        self._acks = acks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def place(self, action: Place, *, trace_id: str) -> GatewayReport:
        report = await self._inner.place(action, trace_id=trace_id)
        self._acks.record(action.order_link_id, report.ok, report.error_kind)
        return report  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def fresh_database(base_url: str) -> AsyncIterator[str]:
    name = f"om_bench_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base_url)
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def statements_run(db_base: str, db_url: str) -> int | None:
    """SQL statements executed so far in the bench's database (``pg_stat_statements``, when
    the server has it — the dev PostgreSQL of ``scripts/infra`` does; None otherwise). Unlike
    CPU time, the count does not move with the machine's load: it tracks round trips."""
    name = urlsplit(db_url).path.lstrip("/")
    conn = await asyncpg.connect(db_base)
    try:
        return int(
            await conn.fetchval(
                "SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements"
                " WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
                name,
            )
        )
    except (asyncpg.UndefinedTableError, asyncpg.ObjectNotInPrerequisiteStateError):
        return None
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_vhost(amqp_url: str, api_url: str) -> AsyncIterator[str]:
    vhost = f"bench-{uuid.uuid4().hex[:10]}"
    api = urlsplit(api_url)
    auth = (api.username or "guest", api.password or "guest")
    base = urlunsplit((api.scheme, f"{api.hostname}:{api.port}", api.path, "", ""))
    async with httpx.AsyncClient(auth=auth, timeout=10) as http:
        (await http.put(f"{base}/vhosts/{vhost}")).raise_for_status()
        (
            await http.put(
                f"{base}/permissions/{vhost}/{auth[0]}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            )
        ).raise_for_status()
        parts = urlsplit(amqp_url)
        try:
            yield urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), "", ""))
        finally:
            await http.delete(f"{base}/vhosts/{vhost}")


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[str]:
    port = free_port()
    config = bench_config(port)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "bench-sim.json"
        cfg_path.write_text(config.model_dump_json(), encoding="utf-8")
        with (Path(tmp) / "sim.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                "uv", "run", "bybit-sim", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--seed", "1", "--config", str(cfg_path),
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                await wait_ready(base, proc)
                yield base
            finally:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def feed_tracker(tracker: Tracker, stream: PrivateStream, inner: Any, mode: str) -> None:
    """Feed the tracker exactly as the service does (``bootstrap.tracking``): from the paper
    exchange's update feed in dry-run, from the private WebSocket otherwise — both coalesce the
    messages already waiting into one batch (one transaction)."""
    if mode == "dry-run":
        await run_tracker(tracker, PaperFeedSource(inner.updates))
    else:
        await run_tracker(tracker, PrivateStreamSource(stream))


def signals(count: int, amount: Decimal) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        side = "buy" if (i // len(SYMBOLS)) % 2 == 0 else "sell"
        out.append(
            build_signal(
                asset=symbol,
                side=side,
                amount=amount,
                confidence=Decimal("0.9"),
                strategy_id="bench",
            )
        )
    return out


async def one_run(
    mode: str,
    rate: float,
    count: int,
    amount: Decimal,
    db_base: str,
    amqp: str,
    api: str,
    with_tracker: bool = True,
    account_source: str = "exchange",
    with_relay: bool = True,
    relay_coalesce_ms: float = RELAY_COALESCE_MS,
    store_wait_ms: float = STORE_WAIT_MS,
    tracking_process: bool = False,
) -> dict[str, Any]:
    if tracking_process and (mode != "sim" or account_source != "exchange"):
        raise ValueError("--tracking-process: live mode with --account-source exchange only")
    in_process = not tracking_process
    async with (
        simulator() as sim_url,
        fresh_database(db_base) as db_url,
        fresh_vhost(amqp, api) as vhost_url,
    ):
        client_config = BybitClientConfig.for_simulator(
            sim_url,
            retry=RetryConfig(max_attempts=3, base_delay=0.05, max_delay=0.5),
            rate_limit=RateLimitConfig(enabled=False),
            categories=("linear",),
        )
        pool = await create_pool(db_url, min_size=4, max_size=20)
        connection = await connect(vhost_url, name="bench")
        # closed on the way out even when the run fails (else it reconnects to the deleted
        # vhost for ever and the bench never exits)
        async with connection, BybitRestClient(client_config) as rest:
            cache = InstrumentCache(rest, ["linear"])
            await cache.refresh()
            market = MarketData(client_config, rest)
            for symbol in SYMBOLS:
                await market.track("linear", symbol)
            live = BybitGateway(rest, cache, market_data=market)
            for symbol in SYMBOLS:  # wait until the stream has a book for every symbol
                deadline = time.monotonic() + 10
                while live.market_data is not None:
                    try:
                        market.cached("linear", symbol)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.05)
            acks = Acks()
            acks.expected = count
            inner: Any = live if mode == "sim" else PaperExchange(live)
            gateway = TimedGateway(inner, acks)
            uow = PostgresUnitOfWorkFactory(pool)
            config = ProcessorConfig(
                PlannerConfig(max_order_notional=None),
                RiskLimits(
                    max_orders_per_minute_per_symbol=None,
                    max_position_notional=None,
                    max_total_exposure=None,
                    max_order_size_ratio=None,
                ),
                account_source=AccountSource(account_source),
                store_wait=store_wait_ms / 1000,
            )
            # the service's wiring: lanes waiting for our taker's fill (`store`) wake on the
            # tracker's commits; the private stream is up for the whole run (trusted)
            freshness = StoreFreshness()
            processor = TimedProcessor(Processor(uow, gateway, config, freshness=freshness), acks)

            # the tracker keeps our rows current (fills close orders, positions follow), as in
            # the running service: live from the private stream, paper from its update feed
            tracker = Tracker(
                uow,
                link_prefix="om",
                is_dry_run=mode == "dry-run",
                on_commit=freshness.committed,
            )
            stream = PrivateStream(client_config)
            tracking = asyncio.create_task(
                feed_tracker(tracker, stream, inner, mode)
                if with_tracker and in_process
                else asyncio.sleep(0)
            )
            # the outbox relay publishes the events to RabbitMQ, as in the running service
            relay_stop = asyncio.Event()
            events_out = RabbitEventPublisher(
                vhost_url, queues=(ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC)
            )
            relay = OutboxRelay(
                uow,
                events_out,
                PgOutboxNotifications(db_url),
                coalesce=relay_coalesce_ms / 1000,
            )
            relaying = asyncio.create_task(
                relay.run(relay_stop) if with_relay and in_process else asyncio.sleep(0)
            )
            # the experiment: tracker and relay in a process of their own (docs/scaling.md)
            apart = (
                await TrackingProcess.start(db_url, vhost_url, sim_url, relay_coalesce_ms)
                if tracking_process
                else None
            )

            def lookup(category: Category, symbol: str) -> Instrument | None:
                from order_manager.adapters.bybit.gateway import to_instrument

                try:
                    return to_instrument(cache.get(category.value, symbol))
                except Exception:
                    return None

            intake = SignalIntake(
                source=RabbitSignalSource(connection, QUEUE, prefetch=256),
                dead_letters=RabbitDeadLetterPublisher(connection, DLQ),
                uow_factory=uow,
                processor=processor,
                signal_store=PgSignalStore(pool),  # as the service wires it (autocommit)
                instruments=lookup,
                config=IntakeConfig(dry_run=mode == "dry-run", lane_capacity=1024),
            )
            publisher = RabbitSignalPublisher(connection, QUEUE)
            await publisher.start()
            intake.start()

            # warm-up: a few signals, not recorded
            warm = signals(len(SYMBOLS) * 2, amount)
            acks.expected = len(warm)
            for s in warm:
                await publisher.publish_signal(s)
            await asyncio.wait_for(acks.done.wait(), 30)
            acks.at.clear()
            processor.durations.clear()
            acks.errors.clear()
            acks.done.clear()
            acks.expected = count

            batch = signals(count, amount)
            links = {order_link_id("om", s["signal_id"], 1): s["signal_id"] for s in batch}
            load = await LoadPublisher.start(vhost_url, rate, batch)
            statements_start = await statements_run(db_base, db_url)
            cpu_start = time.process_time(), cpu_seconds_by_command(PEERS)
            apart_start = await apart.cpu() if apart is not None else 0.0
            report = await load.run()
            published: dict[str, float] = report["published"]
            start, publish_done = float(report["first"]), float(report["last"])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acks.done.wait(), 120)
            cpu_end = time.process_time(), cpu_seconds_by_command(PEERS)
            apart_cpu = (await apart.cpu() - apart_start) if apart is not None else None
            statements_end = await statements_run(db_base, db_url)
            shared_reads = live.shared_read_counts() if mode == "sim" else {}
            await intake.stop()
            await publisher.close()
            await market.stop()
            if apart is not None:
                await apart.stop()
            tracking.cancel()
            # a batch cancelled inside its commit leaves the transaction unusable: asyncpg then
            # refuses the rollback (the batch is redone from the stream in a real service)
            with contextlib.suppress(asyncio.CancelledError, asyncpg.InterfaceError):
                await tracking
            await stream.stop()
            relay_stop.set()
            await relaying
            await events_out.close()
        await pool.close()

    latencies = sorted(
        (acks.at[link] - published[sid]) * 1000
        for link, sid in links.items()
        if link in acks.at and sid in published
    )
    if not latencies:
        raise RuntimeError(f"no signal was acknowledged (errors: {acks.errors})")
    last_ack = max(acks.at[link] for link in links if link in acks.at)
    durations = sorted(processor.durations)
    settled = len(latencies) + sum(acks.errors.values())
    cpu_ms = {"order-manager (this process)": (cpu_end[0] - cpu_start[0]) * 1000 / settled}
    for name in PEERS:
        cpu_ms[name] = (cpu_end[1][name] - cpu_start[1][name]) * 1000 / settled
    cpu_ms["load publisher"] = float(report["cpu_s"]) * 1000 / settled
    if apart_cpu is not None:
        cpu_ms["tracking process"] = apart_cpu * 1000 / settled
    figures = {
        "mode": mode,
        "rate_requested": rate,
        "signals": count,
        "acknowledged": len(latencies),
        "errors": acks.errors,
        "publish_seconds": round(publish_done - start, 3),
        # planning reads (wallet, position list) sent vs answers handed to signals
        "shared_reads": shared_reads,
        "publish_rate": round(count / (publish_done - start), 1),
        "throughput_signals_per_s": round(len(latencies) / (last_ack - start), 1),
        "tracker": with_tracker,
        "outbox_relay": with_relay,
        "tracking_process": tracking_process,
        # since the fifth session; earlier runs published from the service's own process
        "publisher": "own process (bench/load_publisher.py)",
        "relay_coalesce_ms": relay_coalesce_ms if with_relay else None,
        "account_source": account_source if mode == "sim" else "paper",
        "store_wait_ms": store_wait_ms if account_source == "store" and mode == "sim" else None,
        "cpu_ms_per_signal": {name: round(value, 2) for name, value in cpu_ms.items()},
        # top-level SQL statements per settled signal (BEGIN/COMMIT included; the tracker's
        # still running for the last fills adds a little): None without pg_stat_statements
        "sql_statements_per_signal": (
            round((statements_end - statements_start) / settled, 2)
            if statements_start is not None and statements_end is not None
            else None
        ),
        "process_call_ms": {
            "p50": round(percentile(durations, 50), 2),
            "p99": round(percentile(durations, 99), 2),
        },
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(latencies[-1], 2),
        },
    }
    print(json.dumps(figures, indent=2))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["sim", "dry-run", "both"], default="both")
    parser.add_argument("--rate", type=float, default=200.0, help="signals/s, 0 = unthrottled")
    parser.add_argument("--dry-run-rate", type=float, default=0.0)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--amount", default="100")
    parser.add_argument("--no-tracker", action="store_true", help="run without the tracker")
    parser.add_argument(
        "--relay-coalesce-ms",
        type=float,
        default=RELAY_COALESCE_MS,
        help="the relay's coalescing window (default: the service's default)",
    )
    parser.add_argument(
        "--no-relay",
        action="store_true",
        help="run without the outbox relay (the service runs it: it publishes the events)",
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop (not a project dependency: `uv run --with uvloop ...`)",
    )
    parser.add_argument(
        "--account-source",
        choices=["exchange", "store"],
        default="exchange",
        help="balances/positions per signal from REST or from the tracker's store",
    )
    parser.add_argument(
        "--tracking-process",
        action="store_true",
        help="experiment: the tracker and the relay in a process of their own (sim mode)",
    )
    parser.add_argument(
        "--store-wait-ms",
        type=float,
        default=STORE_WAIT_MS,
        help="store: how long a lane waits for the tracker to apply its taker's fill",
    )
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="console")
    db = os.environ.get("ORDERMANAGER_DATABASE_URL")
    amqp = os.environ.get("ORDERMANAGER_RABBITMQ_URL")
    api = os.environ.get("OM_RABBITMQ_API")
    if not (db and amqp and api):
        sys.exit('run eval "$(scripts/infra env)" first (database/broker settings missing)')
    if args.uvloop:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    runs = []
    modes = ["sim", "dry-run"] if args.mode == "both" else [args.mode]
    for mode in modes:
        rate = args.rate if mode == "sim" else args.dry_run_rate
        runs.append(
            asyncio.run(
                one_run(
                    mode,
                    rate,
                    args.count,
                    Decimal(args.amount),
                    db,
                    amqp,
                    api,
                    with_tracker=not args.no_tracker,
                    account_source=args.account_source,
                    with_relay=not args.no_relay,
                    relay_coalesce_ms=args.relay_coalesce_ms,
                    store_wait_ms=args.store_wait_ms,
                    tracking_process=args.tracking_process and mode == "sim",
                )
            )
        )
    previous: dict[str, Any] = {}
    today = sorted(RESULTS_DIR.glob("signal_to_order-*.json"))
    if today:
        with contextlib.suppress(ValueError, KeyError):
            previous = json.loads(today[-1].read_text())["figures"]["runs"]
    merged = dict(previous) if isinstance(previous, dict) else {}
    for run in runs:
        run["event_loop"] = "uvloop" if args.uvloop else "asyncio"
        coalesce = run["relay_coalesce_ms"]
        tracked = (
            ("" if run["tracker"] else "-no-tracker")
            + ("-relay" if run["outbox_relay"] else "")
            + (
                f"-coalesce{coalesce:g}ms"
                if run["outbox_relay"] and coalesce != RELAY_COALESCE_MS
                else ""
            )
            + ("-uvloop" if args.uvloop else "")
            + ("-tracking-process" if run.get("tracking_process") else "")
        )
        source = f"-{run['account_source']}" if run["mode"] == "sim" else ""
        wait = run.get("store_wait_ms")
        if wait is not None and wait != STORE_WAIT_MS:
            source += f"-wait{wait:g}ms"
        merged[f"{run['mode']}@{run['rate_requested']:g}/s{source}{tracked}"] = run
    notes = [
        "consumer, processor, tracker, relay and DB client share this process; the publisher "
        "(bench/load_publisher.py) and the simulator are subprocesses on the same 2 cores",
        f"targets: p99 <= {TARGET_P99_MS} ms at 200 signals/s (sim), "
        f">= {TARGET_DRY_RUN_RATE:g} signals/s (dry-run)",
    ]
    path = write_result(
        "signal_to_order",
        {"runs": merged},
        {"count": args.count, "amount": args.amount, "symbols": list(SYMBOLS)},
        notes,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
