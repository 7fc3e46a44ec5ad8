"""The whole service (`order-manager run` as a real process) on real RabbitMQ, PostgreSQL and
bybit_sim: a signal on the queue becomes one exchange order, and a SIGKILL between the intent
commit and the exchange's answer still ends with exactly one exchange order after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from order_manager.adapters.rabbitmq.connection import connect
from order_manager.adapters.rabbitmq.signal_publisher import (
    RabbitSignalPublisher,
    build_signal,
    encode_signal,
)
from tests.helpers import free_port
from tests.helpers import until as until_

pytestmark = pytest.mark.e2e

SIGNALS_QUEUE = "model-service.trading_signals"


async def until(probe: Callable[[], Awaitable[object]], *, what: str, within: float = 30) -> None:
    """Whole-service steps get 30 s by default (process start-up included)."""
    await until_(probe, what=what, within=within)


@dataclass
class Service:
    """One `order-manager run` process."""

    env: dict[str, str]
    log_path: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    async def spawn(self) -> int:
        """Start the process without waiting for it; returns where its log lines begin."""
        script = Path(sys.executable).parent / "order-manager"
        log_file = self.log_path.open("a")
        offset = log_file.tell()
        self.process = await asyncio.create_subprocess_exec(
            str(script), "run", env=self.env, stdout=log_file, stderr=log_file
        )
        log_file.close()
        return offset

    def log_since(self, offset: int) -> str:
        with self.log_path.open() as log:
            log.seek(offset)
            return log.read()

    async def start(self) -> None:
        await self.spawn()

        async def ready() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"service exited: {self.log_path.read_text()[-3000:]}")
            try:
                async with httpx.AsyncClient(timeout=1) as http:
                    r = await http.get(f"http://127.0.0.1:{self.port}/ready")
                    return r.status_code == 200
            except httpx.TransportError:
                return False

        await until(ready, what="service ready", within=60)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), timeout=30)
        assert self.process.returncode is not None
        return self.process.returncode


@dataclass
class World:
    service: Service
    sim: Any
    admin: httpx.AsyncClient
    pool: asyncpg.Pool
    publisher: RabbitSignalPublisher
    publisher_connection: Any

    async def sim_orders(self) -> list[dict[str, Any]]:
        r = await self.admin.get("/sim/state")
        r.raise_for_status()
        return list(r.json()["orders"])

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return list(await conn.fetch(query, *args))

    async def add_fault(self, rule: dict[str, Any]) -> None:
        """A fault rule on the simulator (docs/bybit_sim.md)."""
        fault = await self.admin.post("/sim/faults", json=rule)
        assert fault.status_code == 200, fault.text

    async def execute_and_hold_the_answer(self, endpoint: str) -> None:
        """The simulator's next call of ``endpoint`` executes and its answer is held (60 s)."""
        await self.add_fault(
            {
                "target": "rest",
                "endpoint": endpoint,
                "kind": "timeout_after_execute",
                "count": 1,
                "params": {"mode": "hold", "hold_ms": 60000},
            }
        )

    async def signal_status(self, signal_id: str) -> str | None:
        rows = await self.fetch("SELECT status FROM signals WHERE signal_id = $1", signal_id)
        return str(rows[0]["status"]) if rows else None


@pytest.fixture
async def world(db_url: str, amqp_url: str, sim: Any, tmp_path: Path) -> AsyncIterator[World]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERMANAGER_")}
    env |= {
        "ORDERMANAGER_DATABASE_URL": db_url,
        "ORDERMANAGER_RABBITMQ_URL": amqp_url,
        "ORDERMANAGER_BYBIT_REST_URL": sim.url,
        "ORDERMANAGER_PORT": str(port),
        "ORDERMANAGER_LOG_FORMAT": "json",
        "ORDERMANAGER_BYBIT_REQUEST_TIMEOUT_SECONDS": "30",
        "ORDERMANAGER_MAX_ORDERS_PER_MINUTE_PER_SYMBOL": "1000",
    }
    service = Service(env, tmp_path / "service.log", port)
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    connection = await connect(amqp_url, name="e2e-publisher")
    publisher = RabbitSignalPublisher(connection, SIGNALS_QUEUE)
    await publisher.start()
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as admin:
        world = World(service, sim, admin, pool, publisher, connection)
        try:
            yield world
        finally:
            if service.process is not None and service.process.returncode is None:
                await service.terminate()
            await admin.delete("/sim/faults")
    await publisher.close()
    await connection.close()
    await pool.close()


async def test_a_buy_signal_becomes_one_exchange_order(world: World) -> None:
    await world.service.start()
    signal_ = build_signal(
        asset="BTCUSDT", side="buy", amount=Decimal("1000"), confidence=Decimal("0.9")
    )
    await world.publisher.publish_signal(signal_)
    signal_id = signal_["signal_id"]
    await until(lambda: _is(world.signal_status(signal_id), "executed"), what="signal executed")
    orders = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert len(orders) == 1
    assert orders[0]["side"] == "Buy" and orders[0]["symbol"] == "BTCUSDT"
    notional = Decimal(orders[0]["qty"]) * Decimal(orders[0].get("avgPrice") or orders[0]["price"])
    assert Decimal("900") < notional <= Decimal("1000")
    # A duplicate delivery places nothing.
    await world.publisher.publish_signal(signal_)
    marker = build_signal(asset="BTCUSDT", side="buy", amount=Decimal("100"))
    await world.publisher.publish_signal(marker)
    await until(
        lambda: _is(world.signal_status(marker["signal_id"]), "executed"), what="marker done"
    )
    ours = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert len(ours) == 2  # the signal's order and the marker's: the duplicate added none
    assert await world.service.terminate() in (0, -signal.SIGTERM)


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _executed(world: World, signal_id: str) -> None:
    async def probe() -> bool:
        return await world.signal_status(signal_id) == "executed"

    await until(probe, what=f"signal {signal_id} executed")


async def test_sigkill_between_intent_and_answer_leaves_exactly_one_order(world: World) -> None:
    await world.service.start()
    await world.execute_and_hold_the_answer("/v5/order/create")
    signal_ = build_signal(
        asset="BTCUSDT", side="buy", amount=Decimal("1000"), confidence=Decimal("0.9")
    )
    signal_id = signal_["signal_id"]
    await world.publisher.publish_signal(signal_)

    async def intent_committed_and_order_on_exchange() -> bool:
        # The intent row exists (committed before the call), the exchange has the order, and the
        # signal is still in flight: the create's answer has not been processed. (The row's own
        # status may already have moved on: the tracker applies the order's stream events, which
        # the simulator sends while it holds the HTTP answer — as Bybit may.)
        rows = await world.fetch("SELECT order_link_id FROM orders WHERE signal_id = $1", signal_id)
        on_exchange = await world.sim_orders()
        return (
            len(rows) == 1
            and any(o["orderLinkId"] == rows[0]["order_link_id"] for o in on_exchange)
            and await world.signal_status(signal_id) == "processing"
        )

    await until(intent_committed_and_order_on_exchange, what="order executed, answer held")
    await world.service.kill()  # SIGKILL while the create's answer is still held
    assert await world.signal_status(signal_id) == "processing"
    await world.admin.delete("/sim/faults")

    await world.service.start()  # recovery + redelivery of the unacked signal
    await until(lambda: _is(world.signal_status(signal_id), "executed"), what="signal executed")
    rows = await world.fetch(
        "SELECT status, order_link_id, order_id FROM orders WHERE signal_id = $1", signal_id
    )
    assert len(rows) == 1
    assert rows[0]["status"] != "submitting" and rows[0]["order_id"]
    exchange_orders = [
        o for o in await world.sim_orders() if o["orderLinkId"] == rows[0]["order_link_id"]
    ]
    assert len(exchange_orders) == 1
    all_ours = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert len(all_ours) == 1  # exactly one exchange order in total


async def test_sigkill_while_an_amend_is_unanswered_records_it_once_after_restart(
    world: World,
) -> None:
    """A second limit buy amends the resting first one (many-to-one). The exchange executes the
    amend and holds its answer; the service is SIGKILLed. After the restart the redelivered
    signal settles the amend from the exchange's order — it landed: recorded, not sent again,
    and no order of its own placed for the quantity."""
    await world.service.start()
    limit = {"order_type": "limit"}
    first = build_signal(
        asset="BTCUSDT",
        side="buy",
        amount=Decimal("1000"),
        confidence=Decimal("0.9"),
        metadata=limit,
    )
    await world.publisher.publish_signal(first)
    await _executed(world, first["signal_id"])
    await world.execute_and_hold_the_answer("/v5/order/amend")
    second = build_signal(
        asset="BTCUSDT",
        side="buy",
        amount=Decimal("1000"),
        confidence=Decimal("0.9"),
        metadata=limit,
    )
    second_id = second["signal_id"]
    await world.publisher.publish_signal(second)

    async def amended_on_the_exchange_answer_held() -> bool:
        orders = await world.sim_orders()
        return (
            len(orders) == 1
            and Decimal(orders[0]["qty"]) == Decimal("0.030")
            and await world.signal_status(second_id) == "processing"
        )

    await until(amended_on_the_exchange_answer_held, what="amend executed, answer held")
    await world.service.kill()
    await world.admin.delete("/sim/faults")

    await world.service.start()
    await until(lambda: _is(world.signal_status(second_id), "executed"), what="signal executed")
    orders = await world.sim_orders()
    assert len(orders) == 1 and Decimal(orders[0]["qty"]) == Decimal("0.030")
    links = await world.fetch(
        "SELECT relation, amend_qty, amended_at IS NOT NULL AS landed FROM signal_order_links "
        "WHERE signal_id = $1",
        second_id,
    )
    assert [(r["relation"], r["amend_qty"], r["landed"]) for r in links] == [
        ("amend", Decimal("0.030"), True)
    ]
    calls = await world.fetch(
        "SELECT action FROM audit_log WHERE signal_id = $1 ORDER BY id", second_id
    )
    # the killed run's amend was never answered, so never audited; the resumed run only looked
    assert [c["action"] for c in calls] == ["order.get"]
    rows = await world.fetch("SELECT qty FROM orders")
    assert [r["qty"] for r in rows] == [Decimal("0.030")]


async def test_malformed_signals_are_dead_lettered_and_the_next_one_executes(
    world: World,
) -> None:
    await world.service.start()
    good = build_signal(asset="ETHUSDT", side="buy", amount=Decimal("200"))
    bad_amount = build_signal(asset="ETHUSDT", side="buy", amount=Decimal("-1"))
    unknown = build_signal(asset="NOPEUSDT", side="buy", amount=Decimal("200"))
    for body in (b"{broken", encode_signal(bad_amount), encode_signal(unknown)):
        await world.publisher.publish(body)
    await world.publisher.publish_signal(good)
    await until(lambda: _is(world.signal_status(good["signal_id"]), "executed"), what="good signal")
    ours = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert [o["symbol"] for o in ours] == ["ETHUSDT"]
    channel = await world.publisher_connection.channel()
    dlq = await channel.declare_queue("order-manager.signals.dlq", passive=True)
    reasons = []
    for _ in range(3):
        message = await dlq.get(timeout=5)
        assert message is not None
        reasons.append(message.headers["x-om-reason"])
    await channel.close()
    # Lanes run in parallel (malformed ones share a lane, unknown_asset has its own symbol's).
    assert sorted(reasons) == ["amount_not_positive", "invalid_json", "unknown_asset"]
    # The dead letter is published before the row is recorded (a crash in between costs a
    # second dead letter, never a recorded refusal without one): wait for the rows.
    for rejected in (bad_amount, unknown):
        await until(
            lambda sid=rejected["signal_id"]: _is(world.signal_status(sid), "rejected"),
            what=f"signal {rejected['signal_id']} recorded rejected",
        )


E2E_SYMBOLS = (
    ("linear", "BTCUSDT"),
    ("linear", "ETHUSDT"),
    ("linear", "SOLUSDT"),
    ("linear", "XRPUSDT"),
    ("spot", "ETHUSDT"),
)


async def test_200_interleaved_signals_keep_per_symbol_order(world: World) -> None:
    await world.service.start()
    sent: dict[tuple[str, str], list[str]] = {key: [] for key in E2E_SYMBOLS}
    for i in range(200):
        category, symbol = E2E_SYMBOLS[(i * 3 + i // 7) % len(E2E_SYMBOLS)]
        signal_ = build_signal(
            asset=symbol,
            side="buy",
            amount=Decimal("100"),
            confidence=Decimal("0.9"),
            metadata={"category": category, "order_type": "market"},
        )
        sent[(category, symbol)].append(signal_["signal_id"])
        await world.publisher.publish_signal(signal_)

    async def all_done() -> bool:
        rows = await world.fetch(
            "SELECT count(*) AS n FROM signals WHERE status IN ('executed', 'rejected', 'failed')"
        )
        return int(rows[0]["n"]) == 200

    await until(all_done, what="200 signals settled", within=120)
    statuses = await world.fetch("SELECT status, count(*) AS n FROM signals GROUP BY status")
    assert {r["status"]: r["n"] for r in statuses} == {"executed": 200}
    rows = await world.fetch(
        "SELECT category, symbol, signal_id::text AS signal_id FROM orders ORDER BY created_at"
    )
    placed: dict[tuple[str, str], list[str]] = {key: [] for key in E2E_SYMBOLS}
    for row in rows:
        placed[(row["category"], row["symbol"])].append(row["signal_id"])
    for key in E2E_SYMBOLS:
        assert placed[key] == sent[key], key
        assert len(sent[key]) >= 30
    exchange = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert len(exchange) == 200


async def _queue_depth(world: World) -> int:
    channel = await world.publisher_connection.channel()
    try:
        queue = await channel.declare_queue(SIGNALS_QUEUE, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def test_sigterm_finishes_the_signal_in_flight_and_leaves_the_rest(world: World) -> None:
    await world.service.start()
    fault = await world.admin.post(
        "/sim/faults",
        json={
            "target": "rest",
            "endpoint": "/v5/order/create",
            "kind": "delay",
            "count": 1,
            "params": {"ms": 1500},
        },
    )
    assert fault.status_code == 200, fault.text
    signals = [
        build_signal(asset="BTCUSDT", side="buy", amount=Decimal("100"), confidence=Decimal("0.9"))
        for _ in range(3)
    ]
    for s in signals:
        await world.publisher.publish_signal(s)
    first, rest = signals[0]["signal_id"], [s["signal_id"] for s in signals[1:]]

    async def first_in_flight() -> bool:
        rows = await world.fetch("SELECT status FROM orders WHERE signal_id = $1", first)
        return len(rows) == 1 and rows[0]["status"] == "submitting"

    await until(first_in_flight, what="first signal's create in flight")
    code = await world.service.terminate()
    assert code in (0, -signal.SIGTERM), world.service.log_path.read_text()[-3000:]
    assert await world.signal_status(first) == "executed"
    assert [await world.signal_status(s) for s in rest] == [None, None]
    assert await _queue_depth(world) == 2  # left unacked → back in the queue
    log = world.service.log_path.read_text()
    assert '"event": "signal intake stopped"' in log
    # The next start takes them, in order.
    await world.service.start()
    for signal_id in rest:
        await _executed(world, signal_id)
    ours = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert len(ours) == 3


async def test_dry_run_service_trades_on_paper_only(world: World) -> None:
    world.service.env["ORDERMANAGER_DRY_RUN"] = "true"
    await world.service.start()
    signal_ = build_signal(
        asset="BTCUSDT", side="buy", amount=Decimal("500"), confidence=Decimal("0.9")
    )
    await world.publisher.publish_signal(signal_)
    await _executed(world, signal_["signal_id"])
    signal_row = await world.fetch(
        "SELECT is_dry_run FROM signals WHERE signal_id = $1", signal_["signal_id"]
    )
    assert signal_row[0]["is_dry_run"] is True
    orders = await world.fetch(
        "SELECT is_dry_run, status FROM orders WHERE signal_id = $1", signal_["signal_id"]
    )
    assert len(orders) == 1 and orders[0]["is_dry_run"] is True
    assert orders[0]["status"] == "filled"
    assert [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")] == []


async def test_a_dry_run_service_killed_and_restarted_keeps_its_paper_account(
    world: World,
) -> None:
    """SIGKILL a dry-run service holding a paper long and a resting paper limit; after the
    restart a market sell closes exactly that long (reduce-only, planned from the restored
    paper account) and cancels the resting limit (the restored paper exchange knows it)."""
    world.service.env["ORDERMANAGER_DRY_RUN"] = "true"
    await world.service.start()
    buy = build_signal(
        asset="BTCUSDT", side="buy", amount=Decimal("500"), confidence=Decimal("0.9")
    )
    resting = build_signal(
        asset="BTCUSDT",
        side="buy",
        amount=Decimal("300"),
        confidence=Decimal("0.5"),
        metadata={"order_type": "limit"},
    )
    for signal_ in (buy, resting):
        await world.publisher.publish_signal(signal_)
        await _executed(world, signal_["signal_id"])
    await world.service.kill()
    await world.service.start()

    sell = build_signal(
        asset="BTCUSDT", side="sell", amount=Decimal("5000"), confidence=Decimal("0.9")
    )
    await world.publisher.publish_signal(sell)
    await _executed(world, sell["signal_id"])
    bought = await world.fetch(
        "SELECT cum_exec_qty FROM orders WHERE signal_id = $1", buy["signal_id"]
    )
    (sold,) = await world.fetch(
        "SELECT reduce_only, qty, status FROM orders WHERE signal_id = $1", sell["signal_id"]
    )
    assert sold["reduce_only"] and sold["status"] == "filled"
    assert sold["qty"] == bought[0]["cum_exec_qty"] > 0

    async def limit_cancelled() -> bool:
        rows = await world.fetch(
            "SELECT status FROM orders WHERE signal_id = $1", resting["signal_id"]
        )
        return [r["status"] for r in rows] == ["cancelled"]

    await until(limit_cancelled, what="the restored paper limit cancelled by the sell")
    assert [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")] == []


async def test_warmup_dry_run_sends_only_live_signals_to_the_exchange(world: World) -> None:
    world.service.env["ORDERMANAGER_WARMUP_SIGNALS"] = "dry_run"
    await world.service.start()
    warm = build_signal(
        asset="ETHUSDT",
        side="buy",
        amount=Decimal("300"),
        confidence=Decimal("0.9"),
        is_warmup=True,
    )
    live = build_signal(
        asset="ETHUSDT", side="buy", amount=Decimal("300"), confidence=Decimal("0.9")
    )
    await world.publisher.publish_signal(warm)
    await world.publisher.publish_signal(live)
    await _executed(world, live["signal_id"])
    await _executed(world, warm["signal_id"])
    flags = {
        str(r["signal_id"]): r["is_dry_run"]
        for r in await world.fetch("SELECT signal_id, is_dry_run FROM orders")
    }
    assert flags == {warm["signal_id"]: True, live["signal_id"]: False}
    ours = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert len(ours) == 1


async def test_an_intent_an_exchange_outage_left_submitting_is_settled_without_a_restart(
    world: World,
) -> None:
    """An outage fails the create and every lookup after it: the signal ends `failed`, its
    intent `submitting` (outcome unknown). Once the exchange answers again, the running service
    finds the intent was never placed and fails it — before, only the next start did. Then the
    operator replays the dead-lettered signal (`order-manager dlq replay --all`): it executes,
    reusing its orderLinkId, one exchange order in all."""
    world.service.env["ORDERMANAGER_INTENT_SETTLE_INTERVAL_SECONDS"] = "1"
    await world.service.start()
    for endpoint in ("/v5/order/create", "/v5/order/realtime", "/v5/order/history"):
        await world.add_fault(
            {
                "target": "rest",
                "endpoint": endpoint,
                "kind": "http_status",
                "probability": 1.0,
                "params": {"status": 503},
            }
        )
    signal_ = build_signal(
        asset="BTCUSDT", side="buy", amount=Decimal("1000"), confidence=Decimal("0.9")
    )
    signal_id = signal_["signal_id"]
    await world.publisher.publish_signal(signal_)
    await until(lambda: _is(world.signal_status(signal_id), "failed"), what="signal failed")
    rows = await world.fetch("SELECT status FROM orders WHERE signal_id = $1", signal_id)
    assert [r["status"] for r in rows] == ["submitting"]

    await world.admin.delete("/sim/faults")  # the exchange is back

    async def intent_failed() -> bool:
        rows = await world.fetch("SELECT status FROM orders WHERE signal_id = $1", signal_id)
        return [r["status"] for r in rows] == ["failed"]

    await until(intent_failed, what="the orphaned intent settled while the service runs")
    assert [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")] == []
    assert await world.signal_status(signal_id) == "failed"  # a replay may still retry it

    # the operator delivers the dead-lettered signal again: executed on the same orderLinkId
    script = Path(sys.executable).parent / "order-manager"
    replay = await asyncio.create_subprocess_exec(
        str(script),
        "dlq",
        "replay",
        "--all",
        env=world.service.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(replay.communicate(), timeout=60)
    assert replay.returncode == 0, err.decode()
    assert "1 replayed" in out.decode() and signal_id in out.decode()
    await until(lambda: _is(world.signal_status(signal_id), "executed"), what="replay executed")
    rows = await world.fetch("SELECT order_link_id FROM orders WHERE signal_id = $1", signal_id)
    ours = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    assert [o["orderLinkId"] for o in ours] == [rows[0]["order_link_id"]]  # one order, the link
