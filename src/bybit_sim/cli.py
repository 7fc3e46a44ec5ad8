"""Command line entry point: `bybit-sim serve --host --port --seed --config FILE`."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer

app = typer.Typer(help="Local Bybit V5 exchange simulator.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo("bybit_sim")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port (0 = any free port)")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of price paths and ids")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="JSON or TOML file with SimConfig fields")
    ] = None,
) -> None:
    """Run the simulator until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = serve_config(config, host=host, port=port, seed=seed, now_ns=time.time_ns())
    asyncio.run(_serve(cfg))


def serve_config(
    config: Path | None, *, host: str | None, port: int | None, seed: int | None, now_ns: int
) -> SimConfig:
    """The configuration `serve` runs: the file (or the defaults on port 8765) with the
    options on top. Without a seed (option or file) ids are salted with the start time, so a
    restarted simulator never hands out an order id an earlier run did (clients keep them)."""
    cfg = SimConfig.load(config) if config else SimConfig(port=8765)
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if seed is not None:
        overrides["seed"] = seed
    elif cfg.id_epoch == 0 and "seed" not in cfg.model_fields_set:
        overrides["id_epoch"] = now_ns
    return cfg.with_overrides(**overrides) if overrides else cfg


def _tune_gc() -> None:
    """The exchange keeps every order and fill; the default GC thresholds would rescan that
    growing heap over and over (latency spikes). Objects alive at start-up are frozen and the
    young-generation threshold is raised; the engine creates few reference cycles."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _serve(cfg: SimConfig) -> None:
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with SimServer(cfg) as server:
        typer.echo(f"bybit-sim listening on {server.url} (seed {cfg.seed})", err=False)
        await stop.wait()
    typer.echo("bybit-sim stopped")


def main() -> None:
    app()
