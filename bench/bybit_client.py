"""Benchmark: overhead of the Bybit client per call, against a real `bybit-sim` subprocess.

For each call kind the same request is sent two ways, interleaved one after the other so both
see the same server and machine state:

* **bare** - one aiohttp session, HMAC signature computed inline, `json.loads` of the answer:
  the least any Python client can do;
* **client** - `BybitRestClient`: rate limiter (with limits raised so it never waits, but all of
  its bookkeeping runs), server-synced clock, query/body encoding, signing, retry wrapper,
  envelope decoding with Decimal, pydantic wire models, Prometheus metrics, structlog call
  (at INFO level, as in production, so the debug line is filtered, not rendered).

Overhead = client latency - bare latency (p50 and p99 of each, sequential calls, one in flight).
The simulator's own rate limits are disabled through its config file so 10 creates/s does not
throttle the run. The bench process and the server share the machine's cores.

Usage: `uv run python bench/bybit_client.py [--calls 2000]`
Writes `bench/results/bybit_client-<YYYYMMDD>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, write_result
from order_manager.adapters.bybit.config import BybitClientConfig, RateLimitConfig
from order_manager.adapters.bybit.rest import BybitRestClient, OrderRequest

REPO = Path(__file__).resolve().parent.parent
KEY, SECRET = "sim-key", "sim-secret"
RECV = 5000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bare_headers(payload: str) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    sign = hmac.new(SECRET.encode(), f"{ts}{KEY}{RECV}{payload}".encode(), hashlib.sha256)
    return {
        "X-BAPI-API-KEY": KEY,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": str(RECV),
        "X-BAPI-SIGN": sign.hexdigest(),
        "Content-Type": "application/json",
    }


async def wait_ready(base: str, proc: asyncio.subprocess.Process, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"bybit-sim exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/v5/market/time") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("bybit-sim did not become ready")


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 3),
        "p99_ms": round(percentile(ordered, 99) * 1000, 3),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3),
    }


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def measure(base: str, calls: int) -> dict[str, Any]:
    config = BybitClientConfig.for_simulator(
        base,
        rate_limit=RateLimitConfig(
            overrides={"/v5/order/create": 1_000_000, "/v5/order/realtime": 1_000_000},
            ip_limit=10_000_000,
        ),
    )
    results: dict[str, Any] = {}
    async with BybitRestClient(config) as client, aiohttp.ClientSession() as http:
        ticker = (await client.get_tickers("linear", "BTCUSDT"))[0]
        assert ticker.bid1_price is not None
        price = (ticker.bid1_price * Decimal("0.9")).quantize(Decimal("0.1"))

        # --- GET: open orders of one symbol (a signed query and a page of orders to parse)
        query = "category=linear&symbol=BTCUSDT&limit=20"

        async def bare_get() -> None:
            async with http.get(
                f"{base}/v5/order/realtime?{query}", headers=bare_headers(query)
            ) as resp:
                body = json.loads(await resp.text())
                assert body["retCode"] == 0, body

        async def client_get() -> None:
            await client.get_open_orders("linear", symbol="BTCUSDT", page_size=20)

        # --- POST: create a resting limit order (a new orderLinkId every time)
        counter = iter(range(10**9))

        async def bare_create() -> None:
            body = json.dumps(
                {
                    "category": "linear",
                    "symbol": "ETHUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": "0.01",
                    "price": "1000.00",
                    "orderLinkId": f"bare-{next(counter)}",
                },
                separators=(",", ":"),
            )
            async with http.post(
                f"{base}/v5/order/create", data=body, headers=bare_headers(body)
            ) as resp:
                answer = json.loads(await resp.text())
                assert answer["retCode"] == 0, answer

        async def client_create() -> None:
            await client.create_order(
                OrderRequest(
                    "linear",
                    "BTCUSDT",
                    "Buy",
                    "Limit",
                    Decimal("0.001"),
                    f"cli-{next(counter)}",
                    price=price,
                )
            )

        for name, bare, ours, n in (
            ("get_open_orders", bare_get, client_get, calls),
            ("create_order", bare_create, client_create, calls // 2),
        ):
            for _ in range(20):  # warm-up: connections, caches
                await bare()
                await ours()
            bare_times: list[float] = []
            client_times: list[float] = []
            for _ in range(n):
                bare_times.append(await timed(bare))
                client_times.append(await timed(ours))
            b, c = stats(bare_times), stats(client_times)
            results[name] = {
                "calls_each": n,
                "bare": b,
                "client": c,
                "overhead_p50_ms": round(c["p50_ms"] - b["p50_ms"], 3),
                "overhead_p99_ms": round(c["p99_ms"] - b["p99_ms"], 3),
            }
    return results


async def run(calls: int) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sim_config = {
        "rate_limits_enabled": False,
        "max_active_orders_per_symbol": 10_000_000,
        "initial_wallet": {"USDT": "1000000000"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "sim.json"
        cfg_path.write_text(json.dumps(sim_config), encoding="utf-8")
        log_path = Path(tmp) / "sim.log"
        with log_path.open("w") as log:
            proc = await asyncio.create_subprocess_exec(
                "uv", "run", "bybit-sim", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--seed", "1", "--config", str(cfg_path),
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                await wait_ready(base, proc)
                return await measure(base, calls)
            finally:
                proc.terminate()
                await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="GET calls per variant")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    figures = asyncio.run(run(args.calls))
    print(f"{'call':<16} {'variant':<7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, row in figures.items():
        for variant in ("bare", "client"):
            s = row[variant]
            print(
                f"{name:<16} {variant:<7} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f} "
                f"{s['mean_ms']:>8.3f}"
            )
        print(
            f"{name:<16} {'overhd':<7} {row['overhead_p50_ms']:>8.3f} "
            f"{row['overhead_p99_ms']:>8.3f}"
        )
    path = write_result(
        "bybit_client",
        figures,
        {
            "calls_get": args.calls,
            "calls_create": args.calls // 2,
            "concurrency": 1,
            "server": "uv run bybit-sim serve (subprocess), rate limits disabled",
            "client_log_level": "INFO",
        },
        notes=[
            "bare = aiohttp + inline HMAC + json.loads; client = BybitRestClient (limiter, "
            "signing, retries wrapper, Decimal models, metrics, structlog)",
            "calls interleaved bare/client; overhead = client - bare per percentile",
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
