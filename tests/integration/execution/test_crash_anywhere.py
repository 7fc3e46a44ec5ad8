"""A crash at ANY write of a signal's processing ends exactly as if nothing had crashed.

The issue's promise — "a crash anywhere never yields a second exchange order nor a lost one" —
checked systematically instead of at hand-picked points. For each scenario (a plain market
order, a split, a many-to-one amend, a cancel of an opposite order, a conversion, a
reduce-only sell) the last signal is first processed cleanly, counting the writes it makes to
``orders``, ``signal_order_links``, ``outbox`` and ``audit_log`` (N) and recording the exchange's
final orders. Then, for every k in 1..N, on a fresh database and a reset simulator: the
process "dies" at write k — that write and every later one fail on the real database (a
trigger), so nothing after it is committed — then the service "restarts" (a new client, start-up
recovery), the signal is redelivered (and, if that attempt ends ``failed``, replayed once as
the dead-letter queue allows), and the tracker reconciles the orders with the exchange.

What must hold for every k: the exchange's orders are exactly the clean run's (same
orderLinkIds, sides, types, quantities, prices, statuses — none missing, none twice), every
order row agrees with the exchange, no intent is left ``submitting``, and the signal executed.
Real PostgreSQL (one fresh database per k, cloned from the migrated template), real simulator.

The same in dry-run, where the exchange is the in-process paper exchange and dies with the
process: after the crash a new paper exchange is rebuilt from the database
(``bootstrap.restore_paper``), in two variants — the paper tracker had stored what the paper
exchange published before the crash (``feed-stored``), or it had not (``feed-lost``). Every run
must end with the clean run's paper orders (orderLinkIds, sides, types, quantities, prices,
statuses, filled quantities), paper account (books, wallet) and stored positions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from order_manager.adapters.bybit.queries import BybitReconcileQueries
from order_manager.adapters.paper.exchange import PaperExchange
from order_manager.adapters.postgres.pool import create_pool
from order_manager.bootstrap import restore_paper
from order_manager.domain.planner import PendingLimitPolicy, PlannerConfig
from order_manager.domain.signals import TradingSignal
from order_manager.services.ports.processing import SignalExecuted, SignalFailed
from order_manager.services.processor import Processor, ProcessorConfig
from order_manager.services.recovery import Recovery
from order_manager.services.tracker import Tracker, resync_orders
from tests.conftest import pg_admin_execute, pg_url_with_db
from tests.integration.reconcile.conftest import assert_db_matches_sim

from .conftest import Env, drain_into, insert_signal, make_signal, open_env

LIMIT = {"metadata": {"order_type": "limit"}}
MARKET = {"metadata": {"order_type": "market"}}
WRITTEN = ("orders", "signal_order_links", "outbox", "audit_log")

_ARM = f"""
CREATE SEQUENCE om_test_writes;
CREATE TABLE om_test_crash (die_at bigint);
INSERT INTO om_test_crash VALUES (NULL);
CREATE FUNCTION om_test_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n bigint := nextval('om_test_writes');
BEGIN
    IF n >= (SELECT die_at FROM om_test_crash) THEN
        RAISE EXCEPTION 'the process died here (write %)', n;
    END IF;
    RETURN COALESCE(NEW, OLD);
END $$;
{
    "".join(
        f"CREATE TRIGGER om_test_write BEFORE INSERT OR UPDATE OR DELETE ON {t} "
        "FOR EACH ROW EXECUTE FUNCTION om_test_write();"
        for t in WRITTEN
    )
}
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    before: tuple[dict[str, Any], ...]  # signals processed cleanly first
    last: dict[str, Any]  # the signal the process dies in
    planner: PlannerConfig = field(default_factory=PlannerConfig)


SCENARIOS = [
    Scenario("market", (), {"amount": "1000"}),
    Scenario("split", (), {"amount": "1000"}, PlannerConfig(max_order_notional=Decimal("400"))),
    Scenario("amend", ({"amount": "1000", **LIMIT},), {"amount": "1000", **LIMIT}),
    Scenario(
        "cancel-opposite",
        ({"amount": "1000"}, {"side": "sell", "amount": "500", **LIMIT}),
        {"amount": "1000", **MARKET},
    ),
    Scenario(
        "convert",
        ({"amount": "1000", **LIMIT},),
        {"amount": "1000", **MARKET},
        PlannerConfig(pending_limits_on_market=PendingLimitPolicy.CONVERT),
    ),
    Scenario("reduce", ({"amount": "1000"},), {"side": "sell", "amount": "500"}),
]


@dataclass
class Run:
    """One fresh database and a reset simulator, as one process of the service sees them."""

    env: Env
    scenario: Scenario

    def signal_id(self, n: int) -> str:
        """The same ids in every run: the orderLinkIds of the runs are comparable."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"crash-anywhere/{self.scenario.name}/{n}"))

    def processor(self) -> Processor:
        return Processor(self.env.uow, self.env.gateway, ProcessorConfig(self.scenario.planner))

    async def signal(self, spec: dict[str, Any], signal_id: str) -> TradingSignal:
        signal = make_signal(signal_id=signal_id, **spec)
        await insert_signal(self.env.pool, signal.signal_id)
        return signal

    async def writes(self) -> int:
        rows = await self.env.fetch("SELECT last_value, is_called FROM om_test_writes")
        return int(rows[0]["last_value"]) if rows[0]["is_called"] else 0

    async def exchange_orders(self) -> list[tuple[str, ...]]:
        orders = (await self.env.state())["orders"]
        return sorted(
            (
                o["orderLinkId"],
                o["side"],
                o["orderType"],
                o["qty"],
                o["price"],
                o["orderStatus"],
                o["cumExecQty"],
            )
            for o in orders
        )


@asynccontextmanager
async def fresh_run(
    pg_admin_url: str, template: str, sim: Any, scenario: Scenario
) -> AsyncIterator[Run]:
    name = f"om_t_{uuid.uuid4().hex[:16]}"
    await pg_admin_execute(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    pool = await create_pool(pg_url_with_db(pg_admin_url, name), min_size=1, max_size=8)
    try:
        async with pool.acquire() as conn:
            await conn.execute(_ARM)
        async with open_env(pool, sim.url, ("linear",)) as env:
            (await env.admin.post("/sim/reset")).raise_for_status()
            yield Run(env, scenario)
    finally:
        await pool.close()
        await pg_admin_execute(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _prepare(run: Run) -> TradingSignal:
    """The scenario's earlier signals, cleanly; returns its last signal (not yet processed)."""
    for n, spec in enumerate(run.scenario.before):
        signal = await run.signal(spec, run.signal_id(n))
        outcome = await run.processor().process(signal, "t-before")
        assert isinstance(outcome, SignalExecuted), (run.scenario.name, outcome)
    await run.env.fetch("SELECT setval('om_test_writes', 1, false)")
    return await run.signal(run.scenario.last, run.signal_id(len(run.scenario.before)))


async def _settle(run: Run, signal: TradingSignal) -> None:
    """After the crash: start-up recovery (no create can be in flight any more: the process is
    gone), the redelivery, one replay if that ended ``failed``, then the tracker's sync."""
    later = Recovery(run.env.uow, run.env.gateway).window + timedelta(seconds=1)
    recovery = Recovery(run.env.uow, run.env.gateway, clock=lambda: datetime.now(UTC) + later)
    assert (await recovery.run()).settled
    outcome = await run.processor().process(signal, "t-redelivered")
    if isinstance(outcome, SignalFailed) and outcome.retryable:
        outcome = await run.processor().process(signal, "t-replayed")
    assert isinstance(outcome, SignalExecuted), outcome
    tracker = Tracker(run.env.uow, link_prefix="om")
    await resync_orders(tracker, run.env.uow, BybitReconcileQueries(run.env.rest))


async def _check_rows(run: Run) -> None:
    rows = {
        r["order_link_id"]: r
        for r in await run.env.fetch("SELECT * FROM orders WHERE NOT is_external")
    }
    assert [k for k, r in rows.items() if r["status"] == "submitting"] == []
    for order in (await run.env.state())["orders"]:
        row = rows[order["orderLinkId"]]
        assert row["order_id"] == order["orderId"]
        assert_db_matches_sim(row, order)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_a_crash_at_any_write_ends_as_the_clean_run(
    pg_admin_url: str, migrated_template: str, sim: Any, scenario: Scenario
) -> None:
    async with fresh_run(pg_admin_url, migrated_template, sim, scenario) as clean:
        signal = await _prepare(clean)
        outcome = await clean.processor().process(signal, "t-clean")
        assert isinstance(outcome, SignalExecuted), outcome
        writes = await clean.writes()
        await _settle(clean, signal)  # (a duplicate delivery: places nothing)
        expected = await clean.exchange_orders()
        await _check_rows(clean)
    assert writes >= 3, writes  # intent, answer, audit at least

    for k in range(1, writes + 1):
        async with fresh_run(pg_admin_url, migrated_template, sim, scenario) as run:
            signal = await _prepare(run)
            await run.env.fetch("UPDATE om_test_crash SET die_at = $1", k)
            # the failed write reaches the caller (the lane) only once every leg has ended
            with pytest.raises(Exception, match="the process died here"):
                await run.processor().process(signal, f"t-dies-at-{k}")
            await run.env.fetch("UPDATE om_test_crash SET die_at = NULL")
            assert await run.writes() >= k  # write k was reached (and refused)

            await _settle(run, signal)

            assert await run.exchange_orders() == expected, f"{scenario.name}: died at write {k}"
            await _check_rows(run)


# ---------------------------------------------------------------------------- dry-run (paper)


@dataclass
class PaperRun:
    """A `Run` in dry-run: the paper exchange of the current "process" and its paper tracker."""

    run: Run
    paper: PaperExchange
    tracker: Tracker

    @classmethod
    def start(cls, run: Run) -> PaperRun:
        paper = PaperExchange(run.env.gateway, levels=run.env.gateway)
        return cls(run, paper, Tracker(run.env.uow, link_prefix="om", is_dry_run=True))

    def processor(self) -> Processor:
        config = ProcessorConfig(self.run.scenario.planner)
        return Processor(self.run.env.uow, self.paper, config)  # type: ignore[arg-type]

    async def restart(self) -> None:
        """A new process: a new paper exchange, rebuilt from the database."""
        self.paper = PaperExchange(self.run.env.gateway, levels=self.run.env.gateway)
        await restore_paper(self.paper, self.run.env.uow)

    async def outcome(self) -> tuple[object, ...]:
        """What the dry-run ends with: paper orders, paper account, stored positions."""
        orders = await self.run.env.fetch(
            "SELECT order_link_id, side, order_type, qty, price, status, cum_exec_qty "
            "FROM orders WHERE is_dry_run ORDER BY order_link_id"
        )
        positions = await self.run.env.fetch(
            "SELECT symbol, size FROM positions WHERE is_dry_run AND size <> 0 ORDER BY symbol"
        )
        books = {
            key: (p.size, p.entry_value, p.realized_pnl, p.fees)
            for key, p in self.paper.books.items()
            if p.size or p.realized_pnl or p.fees
        }
        return (
            [tuple(r.values()) for r in orders],
            [tuple(r.values()) for r in positions],
            books,
            dict(self.paper.wallet),
        )


async def _prepare_paper(run: Run) -> tuple[PaperRun, TradingSignal]:
    paper = PaperRun.start(run)
    for n, spec in enumerate(run.scenario.before):
        signal = await run.signal(spec, run.signal_id(n))
        outcome = await paper.processor().process(signal, "t-before")
        assert isinstance(outcome, SignalExecuted), (run.scenario.name, outcome)
        await drain_into(paper.tracker, paper.paper)
    await run.env.fetch("SELECT setval('om_test_writes', 1, false)")
    return paper, await run.signal(run.scenario.last, run.signal_id(len(run.scenario.before)))


async def _settle_paper(paper: PaperRun, signal: TradingSignal) -> None:
    """The restarted dry-run: rebuilt paper exchange, recovery, redelivery, its feed stored."""
    await paper.restart()
    later = Recovery(paper.run.env.uow, paper.paper).window + timedelta(seconds=1)
    recovery = Recovery(paper.run.env.uow, paper.paper, clock=lambda: datetime.now(UTC) + later)
    assert (await recovery.run()).settled
    outcome = await paper.processor().process(signal, "t-redelivered")
    if isinstance(outcome, SignalFailed) and outcome.retryable:
        outcome = await paper.processor().process(signal, "t-replayed")
    assert isinstance(outcome, SignalExecuted), outcome
    await drain_into(paper.tracker, paper.paper)


@pytest.mark.parametrize("stored", [False, True], ids=["feed-lost", "feed-stored"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_a_dry_run_crash_at_any_write_ends_as_the_clean_run(
    pg_admin_url: str, migrated_template: str, sim: Any, scenario: Scenario, stored: bool
) -> None:
    async with fresh_run(pg_admin_url, migrated_template, sim, scenario) as run:
        clean, signal = await _prepare_paper(run)
        outcome = await clean.processor().process(signal, "t-clean")
        assert isinstance(outcome, SignalExecuted), outcome
        writes = await run.writes()
        await drain_into(clean.tracker, clean.paper)
        expected = await clean.outcome()
        await _settle_paper(clean, signal)  # a restart and a duplicate delivery change nothing
        assert await clean.outcome() == expected
    assert writes >= 3, writes

    for k in range(1, writes + 1):
        async with fresh_run(pg_admin_url, migrated_template, sim, scenario) as run:
            paper, signal = await _prepare_paper(run)
            await run.env.fetch("UPDATE om_test_crash SET die_at = $1", k)
            with pytest.raises(Exception, match="the process died here"):
                await paper.processor().process(signal, f"t-dies-at-{k}")
            await run.env.fetch("UPDATE om_test_crash SET die_at = NULL")
            assert await run.writes() >= k
            if stored:  # the paper tracker had stored the feed before the process died
                await drain_into(paper.tracker, paper.paper)

            await _settle_paper(paper, signal)

            assert await paper.outcome() == expected, f"{scenario.name}: died at write {k}"
            assert await run.env.fetch("SELECT 1 FROM orders WHERE status = 'submitting'") == []
