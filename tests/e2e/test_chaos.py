"""The whole service under exchange faults, duplicated and reordered stream messages, a SIGKILL
and a restart: afterwards every signal is settled, no order exists twice, and our database, our
positions and our events agree with the exchange.

One run with a fixed signal mix (the simulator's fault dice are seeded; which calls they hit
depends on the lanes' interleaving): creates answered 503 (not executed) or executed with the
connection cut before the answer, amends and cancels refused with 5xx, order lookups failing,
private-stream messages duplicated and reordered; limit orders filled by hand in between; the
service SIGKILLed while the second half of the signals is in flight (observed: three signals
`processing`, one to three intents `submitting`) and started again with the faults still on.
Then the faults stop, failed signals are replayed as the DLQ would replay them, the service is
restarted (start-up recovery, reconciliation) and a full sync runs. What must hold:

* no signal is left ``processing``; no intent is left ``submitting``;
* every order of ours on the exchange is a row of ours with the same order id, and no leg of a
  signal exists twice on the exchange (the orderLinkId is per signal and leg);
* every row with an exchange id has the exchange's status, filled quantity and average price;
  our position per symbol is the exchange's;
* every published event stream is gapless: each aggregate's sequences are 1..n, all published.

A second test kills the service three times under the same faults while signals keep
arriving — once while the restarted process is still starting (observed: inside the start-up
recovery, with intents the first kill left `submitting`) — and asks the same.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from order_manager.adapters.rabbitmq.signal_publisher import build_signal
from order_manager.config import DEV_API_KEY
from order_manager.domain.plans import parse_order_link_id
from order_manager.services.tracker import signal_id_from_token
from tests.e2e.test_intake_service import World, until, world
from tests.helpers import database_fails
from tests.integration.reconcile.conftest import SIM_STATUS, assert_db_matches_sim

__all__ = ["world"]

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SIGNALS = 48
FINAL = ("executed", "rejected", "failed")
FAULTS: list[dict[str, Any]] = [
    {
        "target": "rest",
        "endpoint": "/v5/order/create",
        "kind": "http_status",
        "params": {"status": 503},
        "probability": 0.15,
    },
    {
        "target": "rest",
        "endpoint": "/v5/order/create",
        "kind": "timeout_after_execute",
        "params": {"mode": "close"},
        "probability": 0.1,
    },
    {
        "target": "rest",
        "endpoint": "/v5/order/amend",
        "kind": "http_status",
        "params": {"status": 502},
        "probability": 0.25,
    },
    {
        "target": "rest",
        "endpoint": "/v5/order/cancel",
        "kind": "http_status",
        "params": {"status": 503},
        "probability": 0.25,
    },
    {
        "target": "rest",
        "endpoint": "/v5/order/realtime",
        "kind": "http_status",
        "params": {"status": 503},
        "probability": 0.2,
    },
    {"target": "ws_private", "topic": "*", "kind": "duplicate", "probability": 0.2},
    {
        "target": "ws_private",
        "topic": "*",
        "kind": "reorder",
        "params": {"hold_ms": 150, "scope": "messages"},
        "probability": 0.2,
    },
    {  # one private-stream drop: reconnect, gap reconciliation, the store distrusted meanwhile
        "target": "ws_private",
        "topic": "*",
        "kind": "drop",
        "params": {"after_messages": 60, "mode": "close"},
        "count": 1,
    },
]


def signal_mix(rng: random.Random, count: int = SIGNALS) -> list[dict[str, Any]]:
    """Buys and sells, market and limit (limits amend or cancel each other), 100–600 USDT."""
    signals = []
    for _ in range(count):
        limit = rng.random() < 0.5
        signals.append(
            build_signal(
                asset=rng.choice(SYMBOLS),
                side=rng.choice(("buy", "buy", "sell")),
                amount=Decimal(rng.randrange(100, 600, 25)),
                confidence=Decimal("0.9"),
                metadata={"order_type": "limit" if limit else "market"},
            )
        )
    return signals


async def statuses(world: World) -> dict[str, str]:
    rows = await world.fetch("SELECT signal_id::text AS id, status FROM signals")
    return {r["id"]: r["status"] for r in rows}


async def all_settled(world: World, ids: set[str]) -> bool:
    now = await statuses(world)
    return all(now.get(i) in FINAL for i in ids)


async def fill_some_resting(world: World, rng: random.Random) -> None:
    resting = [o for o in await world.sim_orders() if o["orderStatus"] == "New"]
    for order in rng.sample(resting, k=len(resting) // 2):
        r = await world.admin.post("/sim/fill", json={"orderId": order["orderId"]})
        assert r.status_code == 200 or r.json().get("retCode") == 110001, r.text  # gone


@pytest.mark.parametrize("account_source", ["exchange", "store"])
async def test_faults_duplicates_reordering_and_a_restart_leave_everything_consistent(
    world: World, account_source: str
) -> None:
    """``store``: the lanes plan from the tracker's store while it is trusted — under the
    same faults, which make it lag, drop and resynchronise."""
    rng = random.Random(20261129)
    world.service.env["ORDERMANAGER_ACCOUNT_SOURCE"] = account_source
    await world.service.start()
    for fault in FAULTS:
        r = await world.admin.post("/sim/faults", json=fault)
        assert r.status_code == 200, r.text

    sent = signal_mix(rng)
    ids = {s["signal_id"] for s in sent}
    first, second = sent[: SIGNALS // 2], sent[SIGNALS // 2 :]
    for s in first:
        await world.publisher.publish_signal(s)
    await until(lambda: all_settled(world, {s["signal_id"] for s in first}), what="first half")
    await fill_some_resting(world, rng)
    for s in second:
        await world.publisher.publish_signal(s)

    async def some_settled() -> bool:
        now = await statuses(world)
        return sum(now.get(s["signal_id"]) in FINAL for s in second) >= len(second) // 4

    await until(some_settled, what="a quarter of the second half settled")
    await world.service.kill()  # SIGKILL with signals in flight, the faults still on
    await world.service.start()
    await until(lambda: all_settled(world, ids), what="every signal settled", within=120)
    await fill_some_resting(world, rng)

    rules = (await world.admin.get("/sim/faults")).json()["rules"]
    assert sum(rule["applied"] for rule in rules) >= 20, rules  # the chaos did happen
    await calm_replay_restart_sync(world, sent)
    await assert_consistent(world, ids)


@pytest.mark.parametrize("seed", [20261130])
async def test_repeated_kills_one_during_start_up_leave_everything_consistent(
    world: World, seed: int
) -> None:
    """Three SIGKILLs while signals keep arriving under exchange faults: one mid-load, one
    while the restarted process is still starting (recovering intents the first kill left
    `submitting`, opening tracking, reconciling — before it is ready), one mid-load again.
    Then the same end state as above must hold."""
    rng = random.Random(seed)
    for fault in FAULTS[:-1]:  # every fault but the stream drop (the kills cut it anyway)
        await world.add_fault(fault)
    await world.service.start()
    sent = signal_mix(rng, 96)
    ids = {s["signal_id"] for s in sent}

    async def settled(n: int) -> bool:
        now = await statuses(world)
        return sum(now.get(i) in FINAL for i in ids) >= n

    for s in sent[:32]:
        await world.publisher.publish_signal(s)
    await until(lambda: settled(12), what="12 signals settled")
    await world.service.kill()  # 1: mid-load
    for s in sent[32:64]:
        await world.publisher.publish_signal(s)
    offset = await world.service.spawn()

    async def starting() -> bool:
        return "start-up task running" in world.service.log_since(offset)

    await until(starting, what="the restarted service starting up")
    await world.service.kill()  # 2: during start-up, before it is ready
    assert "start-up complete" not in world.service.log_since(offset)
    await world.service.start()
    await until(lambda: settled(40), what="40 signals settled")
    await fill_some_resting(world, rng)
    for s in sent[64:]:
        await world.publisher.publish_signal(s)
    await until(lambda: settled(56), what="56 signals settled")
    await world.service.kill()  # 3: mid-load again
    await world.service.start()
    await until(lambda: all_settled(world, ids), what="every signal settled", within=120)

    await calm_replay_restart_sync(world, sent)
    await assert_consistent(world, ids, executed_at_least=len(ids) // 2)


async def calm_replay_restart_sync(world: World, sent: list[dict[str, Any]]) -> None:
    """The faults stop; failed signals are replayed (as from the DLQ); a clean restart (start-up
    recovery and reconciliation); a full sync and every event published."""
    r = await world.admin.delete("/sim/faults")
    assert r.status_code == 200
    failed = [s for s in sent if (await statuses(world))[s["signal_id"]] == "failed"]
    for s in failed:
        await world.publisher.publish_signal(s)
    ids = {s["signal_id"] for s in sent}
    await until(lambda: all_settled(world, ids), what="replays settled", within=60)
    await world.service.terminate()
    await world.service.start()
    await sync_everything(world)


async def sync_everything(world: World) -> None:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{world.service.port}",
        headers={"X-API-Key": DEV_API_KEY},
        timeout=60,
    ) as api:

        async def synced() -> bool:
            r = await api.post("/api/v1/sync", json={"scope": "all"})
            if r.status_code == 409:  # the start-up or a reconnect's sync still runs
                return False
            assert r.status_code == 200, r.text
            assert r.json()["errors"] == [], r.json()
            return True

        await until(synced, what="a full sync")

    await until(lambda: outbox_drained(world), what="every event published")


async def outbox_drained(world: World) -> bool:
    rows = await world.fetch("SELECT count(*) AS n FROM outbox WHERE published_at IS NULL")
    return int(rows[0]["n"]) == 0


async def assert_consistent(
    world: World, ids: set[str], *, executed_at_least: int = SIGNALS // 2
) -> None:
    final = await statuses(world)
    assert all(final[i] in FINAL for i in ids), final
    assert await world.fetch("SELECT id FROM orders WHERE status = 'submitting'") == []

    exchange = [o for o in await world.sim_orders() if o["orderLinkId"].startswith("om")]
    legs = [parse_order_link_id("om", o["orderLinkId"]) for o in exchange]
    assert all(leg is not None for leg in legs)
    keys = [(signal_id_from_token(leg[0]), leg[1]) for leg in legs if leg is not None]
    assert len(keys) == len(set(keys)), "a leg of a signal exists twice on the exchange"
    assert all(signal_id in ids for signal_id, _ in keys)

    rows = {
        r["order_id"]: r
        for r in await world.fetch("SELECT * FROM orders WHERE order_id IS NOT NULL")
    }
    for order in exchange:
        row = rows.get(order["orderId"])
        assert row is not None, f"exchange order {order['orderLinkId']} unknown to us"
        assert row["order_link_id"] == order["orderLinkId"]
        assert_db_matches_sim(row, order)
    executed = [i for i in ids if final[i] == "executed"]
    assert len(executed) >= executed_at_least, final  # the run exercised the happy path too

    state = (await world.admin.get("/sim/state")).json()
    ours = {
        r["symbol"]: (r["side"], r["size"])
        for r in await world.fetch(
            "SELECT symbol, side, size FROM positions WHERE NOT is_dry_run AND category = 'linear'"
        )
    }
    for position in state["positions"]:
        size = Decimal(position["size"])
        expected = (position["side"], size) if size else ("None", Decimal(0))
        assert ours.get(position["symbol"], ("None", Decimal(0))) == expected, (position, ours)
    await assert_events_gapless(world)


async def assert_events_gapless(world: World) -> None:
    """Each aggregate's event sequences are 1..n, every one published."""
    sequences = await world.fetch(
        "SELECT aggregate_type, aggregate_id, array_agg(sequence ORDER BY sequence) AS seq,"
        " bool_and(published_at IS NOT NULL) AS published"
        " FROM outbox WHERE aggregate_id IS NOT NULL GROUP BY 1, 2"
    )
    assert sequences
    for row in sequences:
        assert list(row["seq"]) == list(range(1, len(row["seq"]) + 1)), row
        assert row["published"], row


async def test_a_database_outage_loses_nothing(world: World) -> None:
    """For a few seconds the database refuses every write to signals, orders, executions,
    positions and the outbox — a failover, say — while a resting order of ours fills on the
    exchange (its stream events cannot be stored) and a new signal arrives (it cannot even be
    claimed). Afterwards, with no restart and nothing done by hand: the signal is executed (its
    lane retried it, the message was never acked before), the fill is in our rows (the sync
    after the lost batch ran again until it completed), every row equals the exchange's and
    the service is ready."""
    order_id = await start_with_a_resting_order(world)
    tables = ("signals", "orders", "executions", "positions", "outbox")
    whens = [f"BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW" for table in tables]
    log = world.service.log_path
    async with database_fails(world.pool, *whens):
        arriving = await fill_it_and_send_a_signal(world, order_id)

        async def both_refused() -> bool:
            text = log.read_text()
            return "signal handling failed; retrying" in text and "batch could not be" in text

        await until(both_refused, what="the signal and the stream batch refused")

    await until(
        lambda: _status_is(world, arriving["signal_id"], "executed"), what="the signal executed"
    )

    async def filled() -> bool:
        rows = await world.fetch("SELECT status FROM orders WHERE order_id = $1", order_id)
        return [r["status"] for r in rows] == ["filled"]

    await until(filled, what="the fill lost in the outage restored")

    await every_row_equals_the_exchange(world, orders=2)


async def every_row_equals_the_exchange(world: World, *, orders: int) -> None:
    """Wait until our ``orders`` order rows agree with the exchange (a market order fills on
    the exchange a moment after its signal executed; its stream events reach our row shortly
    after that), then compare every field, and check the service is ready."""

    async def rows_equal_the_exchange() -> bool:
        on_exchange = {o["orderId"]: o for o in await world.sim_orders()}
        ours = await world.fetch("SELECT * FROM orders WHERE order_id IS NOT NULL")
        return len(ours) == len(on_exchange) == orders and all(
            stored["status"] == SIM_STATUS[on_exchange[stored["order_id"]]["orderStatus"]]
            and stored["cum_exec_qty"] == Decimal(on_exchange[stored["order_id"]]["cumExecQty"])
            for stored in ours
        )

    await until(rows_equal_the_exchange, what="every row equal to the exchange's")
    on_exchange = {o["orderId"]: o for o in await world.sim_orders()}
    for stored in await world.fetch("SELECT * FROM orders WHERE order_id IS NOT NULL"):
        assert_db_matches_sim(stored, on_exchange[stored["order_id"]])  # avg price too
    async with httpx.AsyncClient(timeout=5) as http:
        ready = await http.get(f"http://127.0.0.1:{world.service.port}/ready")
    assert ready.status_code == 200, ready.text


async def test_every_database_connection_dropped_the_service_carries_on(world: World) -> None:
    """A failover as the service sees it: every connection it holds to PostgreSQL — its pool,
    the outbox listener — is terminated at once, while a resting order of ours fills on the
    exchange and a new signal arrives. Without a restart: the signal executes, the fill reaches
    our row, every event is published, every row equals the exchange's, the service is ready."""
    order_id = await start_with_a_resting_order(world)
    killer = await asyncpg.connect(world.service.env["ORDERMANAGER_DATABASE_URL"])
    try:
        killed = await killer.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await killer.close()
    assert killed >= 3, killed  # the service's pool and its listener (and the test's pool)
    await world.pool.expire_connections()
    arriving = await fill_it_and_send_a_signal(world, order_id)

    await until(
        lambda: _status_is(world, arriving["signal_id"], "executed"), what="the signal executed"
    )
    await every_row_equals_the_exchange(world, orders=2)
    await until(lambda: outbox_drained(world), what="every event published")


async def test_every_broker_connection_dropped_the_service_carries_on(
    world: World, rabbitmq_api: str, amqp_url: str
) -> None:
    """The broker side of a failover: RabbitMQ force-closes every connection the service holds
    (signal consumer, outbox publisher, dead-letter publisher), while a resting order of ours
    fills. Without a restart: a new signal is consumed and executed, the events of both orders
    are confirmed by the broker, rows equal the exchange's, the service is ready."""
    order_id = await start_with_a_resting_order(world)
    api = urlsplit(rabbitmq_api)
    base = urlunsplit((api.scheme, f"{api.hostname}:{api.port}", api.path, "", ""))
    vhost = urlsplit(amqp_url).path.lstrip("/")
    async with httpx.AsyncClient(auth=(api.username or "guest", api.password or "guest")) as mq:

        async def service_connections() -> list[str]:
            # the management API lists a connection once its statistics were collected
            listed = (await mq.get(f"{base}/vhosts/{vhost}/connections")).json()
            names = [
                c["name"]
                for c in listed
                if c.get("client_properties", {}).get("connection_name") != "e2e-publisher"
            ]
            return names if len(names) >= 2 else []  # consumer and publisher at least

        await until(service_connections, what="the service's broker connections listed")
        for name in await service_connections():
            r = await mq.delete(f"{base}/connections/{quote(name, safe='')}")
            assert r.status_code == 204, r.text
    arriving = await fill_it_and_send_a_signal(world, order_id)

    await until(
        lambda: _status_is(world, arriving["signal_id"], "executed"), what="the signal executed"
    )
    await every_row_equals_the_exchange(world, orders=2)
    await until(lambda: outbox_drained(world), what="every event confirmed by the broker")


async def start_with_a_resting_order(world: World) -> str:
    """Start the service and rest a BTCUSDT limit buy of ours; returns its exchange id."""
    await world.service.start()
    resting = build_signal(
        asset="BTCUSDT",
        side="buy",
        amount=Decimal("1000"),
        confidence=Decimal("0.9"),
        metadata={"order_type": "limit"},
    )
    await world.publisher.publish_signal(resting)
    await until(
        lambda: _status_is(world, resting["signal_id"], "executed"), what="the resting order"
    )
    (row,) = await world.fetch(
        "SELECT order_id FROM orders WHERE signal_id = $1", resting["signal_id"]
    )
    return str(row["order_id"])


async def fill_it_and_send_a_signal(world: World, order_id: str) -> dict[str, Any]:
    """The exchange fills the resting order; a new ETHUSDT market buy signal is published."""
    fill = await world.admin.post("/sim/fill", json={"orderId": order_id})
    assert fill.status_code == 200, fill.text
    arriving = build_signal(
        asset="ETHUSDT", side="buy", amount=Decimal("500"), confidence=Decimal("0.9")
    )
    await world.publisher.publish_signal(arriving)
    return arriving


async def _status_is(world: World, signal_id: str, status: str) -> bool:
    return await world.signal_status(signal_id) == status
