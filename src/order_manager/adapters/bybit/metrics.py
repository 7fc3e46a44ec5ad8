"""Prometheus metrics and log redaction of the Bybit adapter.

Metric objects are created once per registry (the default one unless a test passes its own), so
any number of clients can share them without "duplicated timeseries" errors.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BybitMetrics:
    request_seconds: Histogram
    requests: Counter
    retries: Counter
    ratelimit_wait_seconds: Histogram
    ws_connected: Gauge
    ws_reconnects: Counter
    ws_messages: Counter
    market_data_fallbacks: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BybitMetrics:
        return cls(
            request_seconds=Histogram(
                "bybit_request_duration_seconds",
                "Latency of one Bybit REST attempt (rate-limit wait excluded)",
                ["method", "endpoint"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            requests=Counter(
                "bybit_requests",
                "Bybit REST attempts by outcome (ok or error kind)",
                ["method", "endpoint", "outcome"],
                registry=registry,
            ),
            retries=Counter(
                "bybit_retries",
                "Bybit REST retries by reason",
                ["endpoint", "reason"],
                registry=registry,
            ),
            ratelimit_wait_seconds=Histogram(
                "bybit_ratelimit_wait_seconds",
                "Time a request waited in the client-side rate limiter",
                ["endpoint"],
                buckets=(0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 120.0),
                registry=registry,
            ),
            ws_connected=Gauge(
                "bybit_ws_connected",
                "1 while the stream is connected, authenticated and subscribed",
                ["stream"],
                registry=registry,
            ),
            ws_reconnects=Counter(
                "bybit_ws_reconnects", "WebSocket reconnects", ["stream"], registry=registry
            ),
            ws_messages=Counter(
                "bybit_ws_messages",
                "WebSocket data messages received by topic",
                ["stream", "topic"],
                registry=registry,
            ),
            market_data_fallbacks=Counter(
                "bybit_market_data_rest_fallbacks",
                "Quotes served from REST because the stream was stale",
                ["category"],
                registry=registry,
            ),
        )


# Keyed by the registry object itself (weakly): keying by id() would hand a new registry the
# metrics of a collected one that happened to live at the same address.
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, BybitMetrics] = (
    weakref.WeakKeyDictionary()
)


def metrics_for(registry: CollectorRegistry | None = None) -> BybitMetrics:
    """The adapter's metrics in ``registry`` (default: the global one), created on first use."""
    reg = registry if registry is not None else REGISTRY
    found = _BY_REGISTRY.get(reg)
    if found is None:
        found = BybitMetrics.create(reg)
        _BY_REGISTRY[reg] = found
    return found


SENSITIVE_KEYS = frozenset(
    {
        "x-bapi-api-key",
        "x-bapi-sign",
        "api_key",
        "apikey",
        "api_secret",
        "secret",
        "sign",
        "signature",
        "authorization",
        "args",  # the WebSocket auth op carries key, expiry and signature in args
    }
)
REDACTED = "***"


def redact(values: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``values`` with every secret-bearing key masked (recursively)."""
    clean: dict[str, object] = {}
    for key, value in values.items():
        if key.lower() in SENSITIVE_KEYS:
            clean[key] = REDACTED
        elif isinstance(value, Mapping):
            clean[key] = redact(value)
        else:
            clean[key] = value
    return clean
