"""Benchmark: signed order creates per second and latency against a real `bybit-sim` process.

The simulator runs in a SUBPROCESS (`uv run bybit-sim serve ...`), exactly as users start it. N
concurrent clients (aiohttp, one keep-alive connection each, every request HMAC-signed like
Bybit's) create resting GTC limit orders as fast as they can for `--duration` seconds per round;
between rounds all orders are cancelled so every round starts from a similar book. One private
WebSocket subscriber (topics order/position/wallet, its own process, parses every message) is
connected throughout by default, so the fan-out cost of every create is part of the measurement.

For fair numbers the simulator's per-UID rate limits (10 creates/s on Bybit) are DISABLED through
its config file (`rate_limits_enabled = false`), the price paths are frozen (no fills during the
run), the per-symbol order cap and the wallet are raised. The bench process itself (signing,
JSON, HTTP client) shares the 2 cores with the server, so the figures are a lower bound.

A calibration round follows: the same load against a do-nothing aiohttp server, i.e. the best
this machine's loopback HTTP and load generator allow; read the simulator's figures against it.

Usage: `uv run python bench/sim_throughput.py [--clients 1,4,16] [--duration 5]`
Writes `bench/results/sim_throughput-<YYYYMMDD>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hmac
import json
import multiprocessing
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from hashlib import sha256
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, write_result
from bybit_sim.config import SimConfig

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = {"BTCUSDT": Decimal("50000.0"), "ETHUSDT": Decimal("3000.00")}
TARGET_RATE = 1_000.0
# `bybit-sim serve` under cProfile; stats are written when SIGTERM stops the server.
PROFILED_SERVER = (
    "import cProfile, sys; out = sys.argv[1]; sys.argv = ['bybit-sim', *sys.argv[2:]]; "
    "from bybit_sim.cli import main; cProfile.run('main()', out)"
)
TARGET_P99_MS = 10.0


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), sha256).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_config(port: int) -> SimConfig:
    config = SimConfig().with_path("frozen")
    return config.with_overrides(
        port=port,
        rate_limits_enabled=False,
        max_active_orders_per_symbol=10_000_000,
        initial_wallet={"USDT": Decimal("1000000000")},
    )


@dataclass
class Round:
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    elapsed: float = 0.0

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "clients": self.clients,
            "creates": len(lat),
            "errors": dict(self.errors),
            "seconds": round(self.elapsed, 3),
            "creates_per_s": round(len(lat) / self.elapsed, 1),
            "p50_ms": round(percentile(lat, 50) * 1000, 3),
            "p90_ms": round(percentile(lat, 90) * 1000, 3),
            "p99_ms": round(percentile(lat, 99) * 1000, 3),
            "max_ms": round(lat[-1] * 1000, 3),
        }


class Signer:
    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret

    def headers(self, payload: str) -> dict[str, str]:
        ts = str(time.time_ns() // 1_000_000)
        return {
            "X-BAPI-API-KEY": self.key,
            "X-BAPI-TIMESTAMP": ts,
            "X-BAPI-RECV-WINDOW": "5000",
            "X-BAPI-SIGN": sign(self.secret, ts + self.key + "5000" + payload),
            "X-BAPI-SIGN-TYPE": "2",
            "Content-Type": "application/json",
        }


async def client(index: int, base: str, signer: Signer, stop_at: float, result: Round) -> None:
    symbol = list(SYMBOLS)[index % len(SYMBOLS)]
    top = SYMBOLS[symbol]
    tick = Decimal("0.1") if symbol == "BTCUSDT" else Decimal("0.01")
    qty = "0.001" if symbol == "BTCUSDT" else "0.01"
    connector = aiohttp.TCPConnector(limit=1)
    n = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        while time.perf_counter() < stop_at:
            price = top - tick * (n % 2000)
            n += 1
            body = json.dumps(
                {
                    "category": "linear",
                    "symbol": symbol,
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": qty,
                    "price": str(price),
                    "timeInForce": "GTC",
                },
                separators=(",", ":"),
            )
            started = time.perf_counter()
            async with session.post(
                base + "/v5/order/create", data=body, headers=signer.headers(body)
            ) as resp:
                payload = await resp.json()
            took = time.perf_counter() - started
            if resp.status == 200 and payload.get("retCode") == 0:
                result.latencies.append(took)
            else:
                result.errors[f"{resp.status}/{payload.get('retCode')}"] += 1


async def cancel_all(base: str, signer: Signer) -> None:
    async with aiohttp.ClientSession() as session:
        for symbol in SYMBOLS:
            body = json.dumps({"category": "linear", "symbol": symbol})
            async with session.post(
                base + "/v5/order/cancel-all", data=body, headers=signer.headers(body)
            ) as resp:
                payload = await resp.json()
                if payload.get("retCode") != 0:
                    raise RuntimeError(f"cancel-all failed: {payload}")


async def subscriber(ws_url: str, key: str, secret: str, stats: Any, stop: Any) -> None:
    """Parse and count private data messages until ``stop`` is set.

    ``stats[0]`` counts data messages, ``stats[1]`` becomes 1 if the server dropped the
    connection (the simulator disconnects clients whose queue overflows).
    """
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        expires = time.time_ns() // 1_000_000 + 10_000
        signature = sign(secret, f"GET/realtime{expires}")
        await ws.send_json({"op": "auth", "args": [key, expires, signature]})
        await ws.send_json({"op": "subscribe", "args": ["order", "position", "wallet"]})
        while not stop.is_set():
            try:
                msg = await ws.receive(timeout=0.2)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                stats[1] = 1
                return
            if "topic" in json.loads(msg.data):
                stats[0] += 1


def subscriber_process(ws_url: str, key: str, secret: str, stats: Any, stop: Any) -> None:
    """The subscriber runs in its own process so the load generator cannot starve it."""
    asyncio.run(subscriber(ws_url, key, secret, stats, stop))


async def wait_ready(base: str, proc: asyncio.subprocess.Process, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"bybit-sim exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/v5/market/time") as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("bybit-sim did not become ready")
            await asyncio.sleep(0.1)


async def run(
    clients: list[int], duration: float, with_ws: bool, profile: Path | None = None
) -> dict[str, Any]:
    port = free_port()
    config = bench_config(port)
    key, secret = next(iter(config.api_keys.items()))
    signer = Signer(key, secret)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "bench-sim.json"
        cfg_path.write_text(config.model_dump_json(), encoding="utf-8")
        log_path = Path(tmp) / "sim.log"
        with log_path.open("wb") as log:
            serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--seed", "1",
                     "--config", str(cfg_path)]  # fmt: skip
            if profile is None:
                command = ["uv", "run", "bybit-sim", *serve]
            else:
                command = ["uv", "run", "python", "-c", PROFILED_SERVER, str(profile), *serve]
            proc = await asyncio.create_subprocess_exec(
                *command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                await wait_ready(base, proc)
                stats = multiprocessing.Array("q", [0, 0])
                stop = multiprocessing.Event()
                sub = multiprocessing.Process(
                    target=subscriber_process,
                    args=(f"ws://127.0.0.1:{port}/v5/private", key, secret, stats, stop),
                )
                if with_ws:
                    sub.start()
                # warm-up round, not recorded
                await one_round(base, signer, 4, 1.0)
                await cancel_all(base, signer)
                rounds = []
                for n in clients:
                    result = await one_round(base, signer, n, duration)
                    await cancel_all(base, signer)
                    rounds.append(result.figures())
                if with_ws:
                    stop.set()
                    await asyncio.to_thread(sub.join, 10)
                return {
                    "rounds": rounds,
                    "ws_messages_received": stats[0],
                    "ws_subscriber_dropped_as_slow": bool(stats[1]),
                }
            finally:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def _baseline_server(port: int) -> None:
    """A trivial aiohttp server answering every create with a fixed envelope (calibration)."""
    body = {"retCode": 0, "retMsg": "OK", "result": {"orderId": "x", "orderLinkId": ""},
            "retExtInfo": {}, "time": 0}  # fmt: skip

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/v5/order/create", handle)
    app.router.add_get("/v5/market/time", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def run_baseline(clients: list[int], duration: float) -> list[dict[str, Any]]:
    """The same load against a do-nothing server: what this machine's loopback HTTP and the
    load generator allow at best, to read the simulator's figures against."""
    port = free_port()
    server = multiprocessing.Process(target=_baseline_server, args=(port,), daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(base + "/v5/market/time") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.1)
        signer = Signer("calibration", "calibration")
        return [(await one_round(base, signer, n, duration)).figures() for n in clients]
    finally:
        server.terminate()
        await asyncio.to_thread(server.join, 10)


async def one_round(base: str, signer: Signer, n: int, duration: float) -> Round:
    result = Round(clients=n)
    started = time.perf_counter()
    stop_at = started + duration
    await asyncio.gather(*(client(i, base, signer, stop_at, result) for i in range(n)))
    result.elapsed = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--no-ws", action="store_true", help="no private WebSocket subscriber")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the do-nothing-server calibration"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the server under cProfile, write the stats here and print the top functions "
        "(slower: figures are then not representative and no result file is written)",
    )
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    print("bybit-sim throughput: signed POST /v5/order/create (resting GTC limits, linear)")
    print(
        "NOTE: simulator rate limits DISABLED via config (rate_limits_enabled=false); "
        "prices frozen; order cap and wallet raised"
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    outcome = asyncio.run(run(clients, args.duration, not args.no_ws, args.profile))
    rows = outcome["rounds"]
    print(
        f"{'clients':>7} {'creates':>8} {'creates/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    for r in rows:
        print(
            f"{r['clients']:>7} {r['creates']:>8} {r['creates_per_s']:>10.1f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {sum(r['errors'].values()):>7}"
        )
    if not args.no_ws:
        dropped = outcome["ws_subscriber_dropped_as_slow"]
        print(
            f"private WS subscriber received {outcome['ws_messages_received']} messages"
            + (" and was DISCONNECTED as too slow" if dropped else ", stayed connected")
        )
    if not args.no_baseline and args.profile is None:
        baseline = asyncio.run(run_baseline(clients, args.duration))
        outcome["baseline_trivial_server"] = baseline
        print("calibration - same load against a do-nothing aiohttp server on this machine:")
        for r in baseline:
            print(
                f"{r['clients']:>7} {r['creates']:>8} {r['creates_per_s']:>10.1f} "
                f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            )
    best = max(r["creates_per_s"] for r in rows)
    met = any(r["creates_per_s"] >= TARGET_RATE and r["p99_ms"] <= TARGET_P99_MS for r in rows)
    print(
        f"target >= {TARGET_RATE:.0f} creates/s with p99 <= {TARGET_P99_MS} ms: "
        f"{'MET' if met else 'NOT MET'} (best {best:.1f}/s)"
    )
    if args.profile is not None:
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(30)
        return
    path = write_result(
        "sim_throughput",
        outcome,
        {
            "clients": clients,
            "duration_s": args.duration,
            "ws_subscriber": not args.no_ws,
            "rate_limits_enabled": False,
            "price_path": "frozen",
            "server": "uv run bybit-sim serve (subprocess)",
            "loadavg_before": load_before,
            "target": {"creates_per_s": TARGET_RATE, "p99_ms": TARGET_P99_MS, "met": met},
        },
        notes=["client and server share the machine's cores"],
    )
    print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
