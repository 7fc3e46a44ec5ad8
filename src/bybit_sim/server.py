"""The simulator's aiohttp application and a start/stop wrapper (`SimServer`).

`create_app` wires the shared `SimState`, the fault middleware (outermost), the REST routes,
the WebSocket and admin modules, and the background task that moves prices every
`tick_interval_ms`. `SimServer` binds it to a host/port (port 0 picks a free one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from aiohttp import web

from bybit_sim import admin, faults, ws_private, ws_public
from bybit_sim.config import SimConfig
from bybit_sim.envelope import register
from bybit_sim.rest_account import ROUTES as ACCOUNT_ROUTES
from bybit_sim.rest_batch import ROUTES as BATCH_ROUTES
from bybit_sim.rest_execution import ROUTES as EXECUTION_ROUTES
from bybit_sim.rest_market import ROUTES as MARKET_ROUTES
from bybit_sim.rest_order import ROUTES as ORDER_ROUTES
from bybit_sim.rest_position import ROUTES as POSITION_ROUTES
from bybit_sim.state import STATE, SimState

log = logging.getLogger(__name__)

TICKER_TASK = web.AppKey("ticker_task", asyncio.Task[None])


async def _price_loop(state: SimState) -> None:
    interval = state.config.tick_interval_ms / 1000
    while True:
        await asyncio.sleep(interval)
        try:
            state.exchange.tick()
        except Exception:
            log.exception("price tick failed")


async def _start_ticker(app: web.Application) -> None:
    app[TICKER_TASK] = asyncio.create_task(_price_loop(app[STATE]))


async def _stop_ticker(app: web.Application) -> None:
    task = app[TICKER_TASK]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(config: SimConfig) -> web.Application:
    """Build the simulator application for `config` (fresh state every time)."""
    app = web.Application(middlewares=[faults.rest_fault_middleware])
    app[STATE] = SimState.build(config)
    register(
        app,
        MARKET_ROUTES
        + ORDER_ROUTES
        + BATCH_ROUTES
        + EXECUTION_ROUTES
        + POSITION_ROUTES
        + ACCOUNT_ROUTES,
    )
    ws_private.setup(app)
    ws_public.setup(app)
    admin.setup(app)
    app.on_startup.append(_start_ticker)
    app.on_cleanup.append(_stop_ticker)
    return app


class SimServer:
    """A running simulator: `await start()`, `.url`, `.state`, `await stop()` (or `async with`)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.app = create_app(self.config)
        self._runner: web.AppRunner | None = None
        self.port = self.config.port

    @property
    def state(self) -> SimState:
        return self.app[STATE]

    @property
    def url(self) -> str:
        """Base REST URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self._host()}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL, e.g. ws://127.0.0.1:PORT (append /v5/private etc.)."""
        return f"ws://{self._host()}:{self.port}"

    def _host(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, reuse_address=True)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
