"""Helpers for engine tests: a frozen-price exchange and an event recorder."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bybit_sim.config import SimConfig
from bybit_sim.engine.exchange import Exchange


class Recorder:
    """Collects every private event the exchange emits, per topic."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, topic: str, items: list[dict[str, Any]]) -> None:
        self.events.extend((topic, item) for item in items)

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [item for topic, item in self.events if topic == name]

    def statuses(self, order_id: str) -> list[str]:
        return [o["orderStatus"] for o in self.topic("order") if o["orderId"] == order_id]


def make_exchange(**overrides: Any) -> tuple[Exchange, Recorder]:
    config = SimConfig().with_path("frozen")
    if overrides:
        config = config.with_overrides(**overrides)
    exchange = Exchange(config)
    recorder = Recorder()
    exchange.add_private_listener(recorder)
    return exchange, recorder


def linear(**params: Any) -> dict[str, Any]:
    return {"category": "linear", "symbol": "BTCUSDT", **params}


def usdt(exchange: Exchange) -> Decimal:
    return exchange.coins["USDT"].wallet
