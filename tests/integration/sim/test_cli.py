"""`bybit-sim serve` as users start it: a subprocess with a config file, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

from tests.helpers import eventually, free_port


async def test_serve_uses_config_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "sim.json"
    config.write_text(
        json.dumps({"seed": 3, "initial_wallet": {"USDT": "1234.5"}, "tick_interval_ms": 50})
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bybit_sim",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def ticker() -> dict[str, object] | None:
                try:
                    url = f"http://127.0.0.1:{port}/v5/market/tickers?category=spot"
                    async with http.get(url) as r:
                        body: dict[str, object] = await r.json()
                        return body
                except aiohttp.ClientConnectionError:
                    return None

            first = await eventually(ticker, timeout=20, what="simulator up")
            assert first["retCode"] == 0
            listed = first["result"]
            assert isinstance(listed, dict)
            assert {t["symbol"] for t in listed["list"]} == {"BTCUSDT", "ETHUSDT"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert f"listening on http://127.0.0.1:{port} (seed 3)" in text
    assert "bybit-sim stopped" in text
