"""Configuration of the Bybit adapter, as plain frozen dataclasses.

The adapter never reads environment variables or the service's ``Settings`` itself: the bootstrap
maps ``ORDERMANAGER_*`` settings onto :class:`BybitClientConfig`. That keeps the adapter usable on
its own (tests, benchmarks, the CLI) and keeps the import contracts simple.

Base URLs for every Bybit environment are in :data:`ENVIRONMENTS`; the simulator's URLs are derived
from its HTTP address with :meth:`BybitClientConfig.for_simulator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class SecretLike(Protocol):
    """Anything that hides its value like ``pydantic.SecretStr`` does."""

    def get_secret_value(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where one Bybit environment lives. ``public_ws`` contains ``{category}``."""

    rest: str
    private_ws: str
    public_ws: str


ENVIRONMENTS: dict[str, Endpoints] = {
    "mainnet": Endpoints(
        rest="https://api.bybit.com",
        private_ws="wss://stream.bybit.com/v5/private",
        public_ws="wss://stream.bybit.com/v5/public/{category}",
    ),
    "testnet": Endpoints(
        rest="https://api-testnet.bybit.com",
        private_ws="wss://stream-testnet.bybit.com/v5/private",
        public_ws="wss://stream-testnet.bybit.com/v5/public/{category}",
    ),
    # Demo trading has no public streams of its own: Bybit says to use mainnet's.
    "demo": Endpoints(
        rest="https://api-demo.bybit.com",
        private_ws="wss://stream-demo.bybit.com/v5/private",
        public_ws="wss://stream.bybit.com/v5/public/{category}",
    ),
}


def simulator_endpoints(http_url: str) -> Endpoints:
    """Endpoints of a ``bybit_sim`` server listening at ``http_url`` (``http://host:port``)."""
    base = http_url.rstrip("/")
    if base.startswith("https://"):
        ws_base = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        ws_base = "ws://" + base.removeprefix("http://")
    else:
        raise ValueError(f"simulator URL must start with http:// or https://, got {http_url!r}")
    return Endpoints(
        rest=base,
        private_ws=f"{ws_base}/v5/private",
        public_ws=f"{ws_base}/v5/public/{{category}}",
    )


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Exponential backoff with full jitter (``ORDERMANAGER_BYBIT_API_RETRY_*``).

    ``max_attempts`` counts every attempt including the first one.
    """

    max_attempts: int = 5
    base_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Client-side rate limiting.

    ``overrides`` maps ``"<path>"`` or ``"<path>:<category>"`` to requests per second and wins
    over the built-in Bybit defaults (``ratelimit.DEFAULT_LIMITS``). ``safety_margin`` widens
    every window a little so network jitter cannot squeeze ``limit + 1`` requests into one of the
    exchange's windows.
    """

    enabled: bool = True
    overrides: dict[str, int] = field(default_factory=dict)
    window_seconds: float = 1.0
    safety_margin: float = 0.05
    ip_limit: int = 600
    ip_window_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """Heartbeats and reconnects of the private and public streams."""

    ping_interval: float = 20.0
    # A connection that delivered nothing (not even a pong) for ping_interval + pong_timeout
    # seconds is dead and gets replaced.
    pong_timeout: float = 10.0
    connect_timeout: float = 5.0
    reconnect_base_delay: float = 0.05
    reconnect_max_delay: float = 2.0
    auth_expires_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class BybitClientConfig:
    """Everything the Bybit adapter needs; built by the bootstrap from Settings."""

    endpoints: Endpoints
    api_key: str
    api_secret: SecretLike | str
    recv_window_ms: int = 5000
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    pool_size: int = 100
    keepalive_timeout: float = 30.0
    retry: RetryConfig = field(default_factory=RetryConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    websocket: WebSocketConfig = field(default_factory=WebSocketConfig)
    clock_sync_interval: float = 300.0
    categories: tuple[str, ...] = ("linear",)
    instruments_refresh_interval: float = 3600.0
    market_data_staleness: float = 5.0

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if not self.secret():
            raise ValueError("api_secret must not be empty")
        if self.recv_window_ms <= 0:
            raise ValueError("recv_window_ms must be > 0")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("timeouts must be > 0")

    def secret(self) -> str:
        """The API secret in clear text (only the signer calls this)."""
        if isinstance(self.api_secret, str):
            return self.api_secret
        return self.api_secret.get_secret_value()

    def __repr__(self) -> str:  # never leak the secret through a log of the config
        return (
            f"BybitClientConfig(rest={self.endpoints.rest!r}, api_key={self.api_key!r}, "
            f"api_secret='**********', recv_window_ms={self.recv_window_ms})"
        )

    @classmethod
    def for_environment(
        cls, environment: str, api_key: str, api_secret: SecretLike | str, **kwargs: Any
    ) -> BybitClientConfig:
        """Config for ``mainnet``, ``testnet`` or ``demo``."""
        try:
            endpoints = ENVIRONMENTS[environment]
        except KeyError:
            raise ValueError(
                f"unknown Bybit environment {environment!r}; expected one of {sorted(ENVIRONMENTS)}"
            ) from None
        return cls(endpoints=endpoints, api_key=api_key, api_secret=api_secret, **kwargs)

    @classmethod
    def for_simulator(
        cls,
        url: str,
        api_key: str = "sim-key",
        api_secret: SecretLike | str = "sim-secret",
        **kwargs: Any,
    ) -> BybitClientConfig:
        """Config for a ``bybit_sim`` server at ``url``."""
        return cls(
            endpoints=simulator_endpoints(url),
            api_key=api_key,
            api_secret=api_secret,
            **kwargs,
        )
