"""The REST client against the real simulator: signing, errors, faults, idempotent creates,
pagination."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
import structlog.contextvars
import structlog.testing

from order_manager.adapters.bybit.clock import ServerClock
from order_manager.adapters.bybit.config import BybitClientConfig, RetryConfig
from order_manager.adapters.bybit.errors import (
    AuthError,
    InsufficientFundsError,
    InvalidRequestError,
    NotFoundError,
    OrderOutcomeUnknownError,
)
from order_manager.adapters.bybit.instruments import InstrumentCache
from order_manager.adapters.bybit.metrics import BybitMetrics
from order_manager.adapters.bybit.rest import BybitRestClient, CreateOutcome, OrderRequest
from tests.helpers import eventually

from .conftest import SimAdmin, counter_value, with_changes

CREATE = "/v5/order/create"


async def resting_buy(client: BybitRestClient, link: str, qty: str = "0.001") -> OrderRequest:
    """A BTCUSDT limit buy 2% under the market: accepted and resting."""
    ticker = (await client.get_tickers("linear", "BTCUSDT"))[0]
    assert ticker.bid1_price is not None
    price = (ticker.bid1_price * Decimal("0.98")).quantize(Decimal("0.1"))
    return OrderRequest("linear", "BTCUSDT", "Buy", "Limit", Decimal(qty), link, price=price)


async def orders_with_link(client: BybitRestClient, link: str) -> list[str]:
    orders = await client.get_open_orders("linear", symbol="BTCUSDT")
    return [o.order_id for o in orders if o.order_link_id == link]


async def test_signed_requests_are_accepted(client: BybitRestClient) -> None:
    wallet = await client.get_wallet_balance()
    assert wallet.account_type == "UNIFIED" and wallet.total_equity is not None
    result = await client.create_order(await resting_buy(client, "sign-ok-1"))
    assert result.outcome is CreateOutcome.CREATED and result.attempts == 1
    order = await client.get_order("linear", order_link_id="sign-ok-1", symbol="BTCUSDT")
    assert order is not None and order.order_id == result.order_id
    assert isinstance(order.qty, Decimal) and order.qty == Decimal("0.001")
    ack = await client.cancel_order("linear", "BTCUSDT", order_id=result.order_id)
    assert ack.order_id == result.order_id
    with pytest.raises(NotFoundError):
        await client.cancel_order("linear", "BTCUSDT", order_id=result.order_id)


async def test_wrong_secret_is_a_fatal_auth_error_not_retried(
    bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> None:
    bad = with_changes(bybit_config, api_secret="not-the-secret")
    async with BybitRestClient(bad, metrics=metrics) as rest:
        with pytest.raises(AuthError) as caught:
            await rest.get_wallet_balance()
    assert caught.value.ret_code == 10004
    assert counter_value(metrics, "requests", endpoint="/v5/account/wallet-balance") == 1
    wrong_key = with_changes(bybit_config, api_key="nobody")
    async with BybitRestClient(wrong_key, metrics=metrics) as rest:
        with pytest.raises(AuthError) as caught:
            await rest.create_order(await resting_buy(rest, "auth-bad-1"))
    assert caught.value.ret_code == 10003


async def test_clock_offset_prevents_10002_from_a_drifting_local_clock(
    bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> None:
    skewed = ServerClock(wall_ms=lambda: time.time() * 1000 - 60_000)  # 60 s behind
    async with BybitRestClient(bybit_config, clock=skewed, metrics=metrics) as rest:
        assert 59_000 < skewed.offset_ms < 61_000
        assert (await rest.get_wallet_balance()).account_type == "UNIFIED"
    assert counter_value(metrics, "requests", outcome="clock_skew") == 0


async def test_10002_resyncs_the_clock_and_retries(
    client: BybitRestClient, sim_admin: SimAdmin, metrics: BybitMetrics
) -> None:
    await sim_admin.fault(
        target="rest",
        endpoint="/v5/account/wallet-balance",
        kind="ret_code",
        params={"retCode": 10002},
        count=1,
    )
    assert (await client.get_wallet_balance()).account_type == "UNIFIED"
    assert counter_value(metrics, "retries", reason="clock_skew") == 1


async def test_http_500_is_retried_and_the_create_is_not_duplicated(
    client: BybitRestClient, sim_admin: SimAdmin, metrics: BybitMetrics
) -> None:
    await sim_admin.fault(
        target="rest",
        endpoint="/v5/order/realtime",
        kind="http_status",
        params={"status": 500},
        count=2,
    )
    assert isinstance(await client.get_open_orders("linear", symbol="BTCUSDT"), list)
    assert counter_value(metrics, "retries", endpoint="/v5/order/realtime") == 2

    await sim_admin.fault(
        target="rest", endpoint=CREATE, kind="http_status", params={"status": 502}, count=1
    )
    result = await client.create_order(await resting_buy(client, "http500-1"))
    assert result.outcome is CreateOutcome.CREATED and result.attempts == 2
    assert await orders_with_link(client, "http500-1") == [result.order_id]

    # HTTP 429 (system-level frequency protection) is retried the same way
    await sim_admin.fault(
        target="rest", endpoint=CREATE, kind="http_status", params={"status": 429}, count=1
    )
    result = await client.create_order(await resting_buy(client, "http429-1"))
    assert result.outcome is CreateOutcome.CREATED and result.attempts == 2
    assert await orders_with_link(client, "http429-1") == [result.order_id]


@pytest.mark.parametrize("mode", ["hold", "close"])
async def test_timeout_after_execute_resolves_to_the_order_that_exists(
    bybit_config: BybitClientConfig, sim_admin: SimAdmin, metrics: BybitMetrics, mode: str
) -> None:
    config = with_changes(bybit_config, read_timeout=0.5)
    link = f"tae-{mode}-1"
    async with BybitRestClient(config, metrics=metrics) as rest:
        rule = await sim_admin.fault(
            target="rest",
            endpoint=CREATE,
            kind="timeout_after_execute",
            params={"mode": mode, "hold_ms": 3000},
            count=1,
        )
        result = await rest.create_order(await resting_buy(rest, link))
        assert (await sim_admin.fault_rule(rule))["applied"] == 1
        assert result.outcome is CreateOutcome.RECOVERED
        assert result.order is not None and result.order.order_link_id == link
        assert await orders_with_link(rest, link) == [result.order_id]


async def test_unknown_outcome_is_raised_when_the_order_can_never_be_confirmed(
    bybit_config: BybitClientConfig, sim_admin: SimAdmin, metrics: BybitMetrics
) -> None:
    config = with_changes(
        bybit_config, retry=RetryConfig(max_attempts=2, base_delay=0.01, max_delay=0.02)
    )
    async with BybitRestClient(config, metrics=metrics) as rest:
        request = await resting_buy(rest, "unknown-1")
        await sim_admin.fault(
            target="rest", endpoint=CREATE, kind="http_status", params={"status": 503}, count=5
        )
        await sim_admin.fault(
            target="rest",
            endpoint="/v5/order/*",
            kind="http_status",
            params={"status": 503},
            count=50,
        )
        with pytest.raises(OrderOutcomeUnknownError) as caught:
            await rest.create_order(request)
    assert caught.value.order_link_id == "unknown-1"


async def test_10006_waits_for_the_reset_and_retries(
    client: BybitRestClient, sim_admin: SimAdmin, metrics: BybitMetrics
) -> None:
    await sim_admin.fault(
        target="rest", endpoint=CREATE, kind="rate_limit", params={"reset_ms": 300}, count=1
    )
    result = await client.create_order(await resting_buy(client, "ratelimit-1"))
    assert result.outcome is CreateOutcome.CREATED and result.attempts == 2
    assert counter_value(metrics, "retries", reason="rate_limited") == 1
    assert await orders_with_link(client, "ratelimit-1") == [result.order_id]


async def test_duplicate_order_link_id_resolves_to_the_existing_order(
    client: BybitRestClient,
) -> None:
    request = await resting_buy(client, "dup-1")
    first = await client.create_order(request)
    second = await client.create_order(request)
    assert first.outcome is CreateOutcome.CREATED
    assert second.outcome is CreateOutcome.EXISTING
    assert second.order_id == first.order_id
    assert await orders_with_link(client, "dup-1") == [first.order_id]


async def test_business_refusals_are_typed_and_not_retried(
    client: BybitRestClient, metrics: BybitMetrics
) -> None:
    request = await resting_buy(client, "too-big-1", qty="1000")
    with pytest.raises(InsufficientFundsError) as funds:
        await client.create_order(request)
    assert funds.value.ret_code == 110007
    with pytest.raises(InvalidRequestError):
        await client.create_order(
            OrderRequest(
                "linear",
                "BTCUSDT",
                "Buy",
                "Limit",
                Decimal("0.0001"),
                "tiny-1",
                price=Decimal("60000"),
            )
        )
    assert counter_value(metrics, "retries", endpoint=CREATE) == 0


async def test_instruments_are_paginated_and_cached(client: BybitRestClient) -> None:
    everything = await client.get_instruments("linear")
    one_per_page = await client.get_instruments("linear", page_size=1)
    assert len(everything) >= 2
    assert len(one_per_page) == len(everything)
    assert sorted(i.symbol for i in one_per_page) == sorted(i.symbol for i in everything)
    cache = InstrumentCache(client, ["linear", "spot"], page_size=1)
    assert await cache.refresh() == len(everything) + len(await client.get_instruments("spot"))
    btc = cache.get("linear", "BTCUSDT")
    assert btc.tick_size == Decimal("0.10") and btc.qty_step == Decimal("0.001")
    assert cache.get("spot", "BTCUSDT").min_notional > 0


async def test_open_orders_are_paginated_beyond_one_page(client: BybitRestClient) -> None:
    links = [f"page-{i}" for i in range(7)]
    requests = [await resting_buy(client, link) for link in links]
    created = await asyncio.gather(*(client.create_order(r) for r in requests))
    orders = await client.get_open_orders("linear", symbol="BTCUSDT", page_size=2)
    mine = {o.order_link_id: o.order_id for o in orders if o.order_link_id in links}
    assert mine == {r.order_link_id: r.order_id for r in created}
    assert len(orders) == len({o.order_id for o in orders})


async def test_every_call_logs_trace_id_and_metrics_without_secrets(
    client: BybitRestClient, bybit_config: BybitClientConfig, metrics: BybitMetrics
) -> None:
    with structlog.testing.capture_logs() as logs:
        await client.create_order(await resting_buy(client, "log-1"), trace_id="trace-abc")
        bad = with_changes(bybit_config, api_secret="wrong-secret-value")
        async with BybitRestClient(bad, metrics=metrics) as rest:
            with pytest.raises(AuthError):
                await rest.get_wallet_balance(trace_id="trace-bad")
        structlog.contextvars.bind_contextvars(trace_id="trace-from-context")
        try:
            await client.get_wallet_balance()
        finally:
            structlog.contextvars.unbind_contextvars("trace_id")
    requests = [e for e in logs if e["event"] == "bybit.request"]
    wallet = [e for e in requests if e["path"] == "/v5/account/wallet-balance"]
    assert wallet[-1]["trace_id"] == "trace-from-context"
    create = next(e for e in requests if e["path"] == CREATE)
    assert create["trace_id"] == "trace-abc" and create["ret_code"] == 0
    assert create["params"]["orderLinkId"] == "log-1"
    loud = next(e for e in logs if e["event"] == "bybit.auth_failed")
    assert loud["log_level"] == "error" and loud["trace_id"] == "trace-bad"
    text = repr(logs)
    for secret in ("sim-secret", "wrong-secret-value", "X-BAPI-SIGN", "'sim-key'"):
        assert secret not in text
    assert any(
        s.name.endswith("_count") and s.value >= 1
        for m in metrics.request_seconds.collect()
        for s in m.samples
        if s.labels.get("endpoint") == CREATE
    ), "latency histogram has no sample for order create"


async def test_a_response_slower_than_the_read_timeout_is_retried(
    bybit_config: BybitClientConfig, sim_admin: SimAdmin, metrics: BybitMetrics
) -> None:
    config = with_changes(bybit_config, read_timeout=0.3)
    async with BybitRestClient(config, metrics=metrics) as rest:
        await sim_admin.fault(
            target="rest",
            endpoint="/v5/account/wallet-balance",
            kind="delay",
            params={"ms": 1500},
            count=1,
        )
        assert (await rest.get_wallet_balance()).account_type == "UNIFIED"
    assert counter_value(metrics, "retries", endpoint="/v5/account/wallet-balance") == 1


async def test_instrument_cache_refreshes_in_the_background(client: BybitRestClient) -> None:
    cache = InstrumentCache(client, ["linear"], refresh_interval=0.05)
    await cache.start()
    try:
        first = cache.loaded_at
        assert len(cache) >= 2
        await eventually(lambda: cache.loaded_at != first, what="a background refresh")
        assert cache.get("linear", "BTCUSDT").symbol == "BTCUSDT"
    finally:
        await cache.stop()


async def test_110072_for_an_order_nobody_can_find_is_an_unknown_outcome(
    client: BybitRestClient, sim_admin: SimAdmin
) -> None:
    request = await resting_buy(client, "ghost-1")
    await sim_admin.fault(target="rest", endpoint=CREATE, kind="ret_code",
                          params={"retCode": 110072, "retMsg": "OrderLinkedID is duplicate"},
                          count=1)  # fmt: skip
    with pytest.raises(OrderOutcomeUnknownError) as caught:
        await client.create_order(request)
    assert caught.value.order_link_id == "ghost-1"
    assert await orders_with_link(client, "ghost-1") == []
