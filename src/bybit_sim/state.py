"""The simulator's shared state, reachable from every handler as `request.app[STATE]`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bybit_sim.config import SimConfig
from bybit_sim.engine.exchange import Exchange
from bybit_sim.faults import FaultInjector
from bybit_sim.ratelimit import RateLimiter


@dataclass
class SimState:
    """Everything one running simulator holds: the exchange, its config, fault rules, the
    account's API keys (key -> secret) and the per-UID rate limiter."""

    exchange: Exchange
    config: SimConfig
    faults: FaultInjector
    api_keys: dict[str, str]
    rate_limiter: RateLimiter

    @classmethod
    def build(cls, config: SimConfig) -> SimState:
        return cls(
            exchange=Exchange(config),
            config=config,
            faults=FaultInjector(),
            api_keys=dict(config.api_keys),
            rate_limiter=RateLimiter(config),
        )


STATE = web.AppKey("state", SimState)
