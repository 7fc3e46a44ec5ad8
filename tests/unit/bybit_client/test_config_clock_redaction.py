"""Configuration, server clock offset and log redaction."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from order_manager.adapters.bybit.clock import ServerClock, estimate_offset
from order_manager.adapters.bybit.config import ENVIRONMENTS, BybitClientConfig
from order_manager.adapters.bybit.metrics import REDACTED, metrics_for, redact


def test_simulator_urls_are_derived_from_the_http_url() -> None:
    cfg = BybitClientConfig.for_simulator("http://127.0.0.1:8123/")
    assert cfg.endpoints.rest == "http://127.0.0.1:8123"
    assert cfg.endpoints.private_ws == "ws://127.0.0.1:8123/v5/private"
    assert cfg.endpoints.public_ws.format(category="linear") == (
        "ws://127.0.0.1:8123/v5/public/linear"
    )


def test_environments_and_secret_handling() -> None:
    cfg = BybitClientConfig.for_environment("testnet", "k", SecretStr("top-secret"))
    assert cfg.endpoints is ENVIRONMENTS["testnet"]
    assert cfg.secret() == "top-secret"
    assert "top-secret" not in repr(cfg)
    with pytest.raises(ValueError, match="unknown Bybit environment"):
        BybitClientConfig.for_environment("moon", "k", "s")
    with pytest.raises(ValueError):
        BybitClientConfig.for_simulator("ftp://x")
    with pytest.raises(ValueError):
        BybitClientConfig.for_simulator("http://x", api_secret="")


def test_offset_uses_the_midpoint_of_the_round_trip() -> None:
    sample = estimate_offset(1_000.0, 5_060, 1_100.0)
    assert sample.offset_ms == 4_010 and sample.round_trip_ms == 100
    with pytest.raises(ValueError):
        estimate_offset(10.0, 0, 5.0)


def test_server_clock_applies_offset_and_knows_when_it_is_stale() -> None:
    wall, mono = [1_000_000.0], [50.0]
    clock = ServerClock(wall_ms=lambda: wall[0], monotonic=lambda: mono[0])
    assert clock.is_stale(10) and clock.now_ms() == 1_000_000
    clock.apply(estimate_offset(1_000_000.0, 1_002_000, 1_000_000.0))
    assert clock.now_ms() == 1_002_000 and not clock.is_stale(10)
    mono[0] = 61.0
    assert clock.is_stale(10)


def test_redaction_masks_secret_bearing_keys_recursively() -> None:
    clean = redact(
        {"X-BAPI-SIGN": "abc", "api_key": "k", "nested": {"secret": "s"}, "symbol": "BTCUSDT"}
    )
    assert clean == {
        "X-BAPI-SIGN": REDACTED,
        "api_key": REDACTED,
        "nested": {"secret": REDACTED},
        "symbol": "BTCUSDT",
    }


def test_metrics_are_per_registry_and_shared_within_one() -> None:
    first = CollectorRegistry()
    assert metrics_for(first) is metrics_for(first)
    metrics_for(first).requests.labels(method="GET", endpoint="/x", outcome="ok").inc()
    for _ in range(20):  # fresh registries never inherit another one's counts
        fresh = metrics_for(CollectorRegistry())
        samples = [s for m in fresh.requests.collect() for s in m.samples]
        assert samples == []
