"""Fixtures for the pybit conformance tests: an unmodified pybit pointed at the simulator.

pybit builds its URLs from templates; nothing in pybit is changed:
* `HTTP`: every call is `f"{self.endpoint}{path}"`, so the instance's `endpoint` attribute is set
  to the simulator's base URL after construction.
* `WebSocket`: the URL comes from the module constants `PRIVATE_WSS` / `PUBLIC_WSS` of
  `pybit.unified_trading` (formatted with subdomain/domain placeholders, which a plain
  `ws://127.0.0.1:PORT/...` URL simply does not contain). The test patches those constants for
  its duration with pytest's `monkeypatch`.

pybit is synchronous (requests; websocket-client in a thread), so every call runs in its own
daemon thread (`tests.conformance.threads.in_thread`) while the simulator serves on the test's
event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pybit.unified_trading import HTTP

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """A fresh simulator with frozen prices (events come only from the test's own orders).

    WebSocket requests get 20 ms of modelled network latency: pybit records a subscription
    only AFTER sending it, so a loopback-fast acknowledgement can beat that bookkeeping (a
    KeyError in pybit's callback thread, which then drops the connection). Real Bybit is never
    that fast; the latency keeps the test about the protocol, not about that race."""
    server = SimServer(SimConfig(ws_request_latency_ms=20).with_path("frozen"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def credentials(sim: SimServer) -> tuple[str, str]:
    key, secret = next(iter(sim.state.config.api_keys.items()))
    return str(key), str(secret)


@pytest.fixture
def ws_base(sim: SimServer) -> str:
    return str(sim.url).replace("http://", "ws://", 1).rstrip("/")


@pytest.fixture
def pybit_http(sim: SimServer, credentials: tuple[str, str]) -> HTTP:
    session = HTTP(testnet=False, api_key=credentials[0], api_secret=credentials[1])
    session.endpoint = str(sim.url).rstrip("/")
    return session


@pytest.fixture
def patch_ws_urls(monkeypatch: pytest.MonkeyPatch, ws_base: str) -> None:
    import pybit.unified_trading as ut

    monkeypatch.setattr(ut, "PRIVATE_WSS", f"{ws_base}/v5/private")
    monkeypatch.setattr(ut, "PUBLIC_WSS", f"{ws_base}/v5/public/{{CHANNEL_TYPE}}")
