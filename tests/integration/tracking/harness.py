"""The tracking pipeline wired to a running simulator: private WS -> tracker -> PostgreSQL
(+ optionally the outbox relay -> RabbitMQ). Orders are placed straight through the Bybit REST
client or the simulator's admin API."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from order_manager.adapters.bybit.config import BybitClientConfig, RetryConfig, WebSocketConfig
from order_manager.adapters.bybit.event_source import PrivateStreamSource
from order_manager.adapters.bybit.private_ws import PrivateStream
from order_manager.adapters.bybit.queries import BybitExchangeQueries
from order_manager.adapters.bybit.rest import BybitRestClient, OrderRequest
from order_manager.adapters.postgres.outbox_listener import PgOutboxNotifications
from order_manager.adapters.rabbitmq.publisher import RabbitEventPublisher
from order_manager.domain.enums import Category, OrderType, PositionIdx, Side, TimeInForce
from order_manager.domain.orders import OrderState
from order_manager.domain.plans import order_link_id
from order_manager.services.outbox_relay import OutboxRelay
from order_manager.services.ports.outbox import ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC
from order_manager.services.positions import PositionKeeper
from order_manager.services.tracker import Tracker, run_tracker
from tests.integration.tracking.support import uow_factory

PREFIX = "om"


class SimTracking:
    def __init__(self, sim: Any, pool: asyncpg.Pool, db_url: str) -> None:
        self.sim = sim
        self.pool = pool
        self.db_url = db_url
        self.config = BybitClientConfig.for_simulator(
            sim.url,
            retry=RetryConfig(max_attempts=5, base_delay=0.02, multiplier=2.0, max_delay=0.2),
            read_timeout=5.0,
            websocket=WebSocketConfig(ping_interval=5.0, pong_timeout=5.0),
        )
        self.rest = BybitRestClient(self.config)
        self.stream = PrivateStream(self.config)
        self.queries = BybitExchangeQueries(self.rest)
        self.tracker = Tracker(uow_factory(pool), link_prefix=PREFIX, queries=self.queries)
        self.keeper = PositionKeeper(uow_factory(pool), self.queries, quiet_seconds=0.0)
        # as the service wires it: drift first looks for missed fills
        self.catching_keeper = PositionKeeper(
            uow_factory(pool),
            self.queries,
            quiet_seconds=0.0,
            history=self.queries,
            apply_fills=self.tracker.handle,
        )
        self.admin = httpx.AsyncClient(base_url=sim.url, timeout=10)
        self._tasks: list[asyncio.Task[None]] = []
        self.relay: OutboxRelay | None = None
        self._relay_stop = asyncio.Event()
        self._publisher: RabbitEventPublisher | None = None

    async def start(self) -> None:
        await self.rest.start()
        await self.stream.start()
        self._tasks.append(
            asyncio.create_task(run_tracker(self.tracker, PrivateStreamSource(self.stream)))
        )

    async def start_relay(self, amqp_url: str) -> OutboxRelay:
        self._publisher = RabbitEventPublisher(
            amqp_url, queues=(ORDER_EVENTS_TOPIC, POSITION_EVENTS_TOPIC)
        )
        self.relay = OutboxRelay(
            uow_factory(self.pool),
            self._publisher,
            PgOutboxNotifications(self.db_url),
            sweep_interval=3600.0,
            retry_base=0.05,
            retry_max=0.5,
        )
        self._tasks.append(asyncio.create_task(self.relay.run(self._relay_stop)))
        return self.relay

    async def stop(self) -> None:
        self._relay_stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._publisher is not None:
            await self._publisher.close()
        await self.stream.stop()
        await self.rest.close()
        await self.admin.aclose()

    # ------------------------------------------------------------------ exchange actions
    async def add_intent(
        self,
        side: str,
        qty: str,
        *,
        symbol: str,
        price: str | None,
        reduce_only: bool,
        position_idx: int = 0,
    ) -> str:
        """What the executor commits before the REST call: a signal and a `submitting` row."""
        signal_id = str(uuid.uuid4())
        await self.pool.execute(
            "INSERT INTO signals (signal_id, status, symbol, strategy_id, amount, confidence,"
            " raw, trace_id) VALUES ($1::uuid, 'processing', $2, 'test', 1000, 0.8, $3, $4)",
            signal_id,
            symbol,
            {"signal_id": signal_id},
            f"trace-{signal_id[:8]}",
        )
        link = order_link_id(PREFIX, signal_id, 1)
        state = OrderState.submitting(
            order_link_id=link,
            category=Category.LINEAR,
            symbol=symbol,
            side=Side(side),
            order_type=OrderType.LIMIT if price else OrderType.MARKET,
            qty=Decimal(qty),
            price=Decimal(price) if price else None,
            time_in_force=TimeInForce.GTC if price else TimeInForce.IOC,
            created_at=datetime.now(UTC),
            reduce_only=reduce_only,
            position_idx=PositionIdx(position_idx),
        )
        async with uow_factory(self.pool)() as uow:
            await uow.orders.add_intent(
                state,
                signal_id=signal_id,
                leg=1,
                trace_id=f"trace-{signal_id[:8]}",
                is_dry_run=False,
            )
            await uow.commit()
        return link

    async def place(
        self,
        side: str,
        qty: str,
        *,
        symbol: str = "BTCUSDT",
        price: str | None = None,
        reduce_only: bool = False,
        link: str | None = None,
        intent: bool = True,
        position_idx: int = 0,
    ) -> str:
        """Place an order on the simulator; with `intent` (default) as the executor does it:
        signal + `submitting` row committed first, so the tracker finds our row."""
        if link is None and intent:
            link = await self.add_intent(
                side,
                qty,
                symbol=symbol,
                price=price,
                reduce_only=reduce_only,
                position_idx=position_idx,
            )
        request = OrderRequest(
            category="linear",
            symbol=symbol,
            side=side,
            order_type="Limit" if price else "Market",
            qty=Decimal(qty),
            price=Decimal(price) if price else None,
            time_in_force="GTC" if price else None,
            reduce_only=reduce_only or None,
            position_idx=position_idx or None,
            order_link_id=link or f"{PREFIX}-test-{uuid.uuid4().hex[:20]}",
        )
        result = await self.rest.create_order(request)
        return result.order_id

    async def force_fill(self, order_id: str, qty: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"orderId": order_id}
        if qty is not None:
            body["qty"] = qty
        response = await self.admin.post("/sim/fill", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def external_order(self, **params: Any) -> dict[str, Any]:
        response = await self.admin.post("/sim/external-order", json=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def set_price(self, symbol: str, price: str) -> None:
        response = await self.admin.post(
            "/sim/price", json={"category": "linear", "symbol": symbol, "price": price}
        )
        assert response.status_code == 200, response.text

    async def fault(self, **rule: Any) -> str:
        response = await self.admin.post("/sim/faults", json=rule)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def clear_faults(self) -> None:
        response = await self.admin.delete("/sim/faults")
        assert response.status_code == 200, response.text

    async def exchange_order(self, order_id: str) -> dict[str, Any]:
        order = await self.queries.fetch_order("linear", order_id=order_id, order_link_id=None)
        assert order is not None, f"the simulator does not know {order_id}"
        return dict(order)

    async def exchange_executions(self, order_id: str) -> list[dict[str, Any]]:
        return [dict(e) for e in await self.queries.fetch_order_executions("linear", order_id)]

    async def exchange_position(self, symbol: str, idx: int = 0) -> dict[str, Any]:
        for row in await self.queries.fetch_positions("linear"):
            if row["symbol"] == symbol and int(row.get("positionIdx") or 0) == idx:
                return dict(row)
        raise AssertionError(f"no exchange position for {symbol}/{idx}")

    async def ticker_price(self, symbol: str = "BTCUSDT") -> Decimal:
        response = await self.admin.get(
            "/v5/market/tickers", params={"category": "linear", "symbol": symbol}
        )
        return Decimal(response.json()["result"]["list"][0]["lastPrice"])
