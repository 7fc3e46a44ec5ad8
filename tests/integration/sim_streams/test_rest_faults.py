"""Every REST fault kind, seen by a real signed client through the real server."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from bybit_sim.config import SimConfig
from bybit_sim.server import SimServer
from tests.helpers import eventually
from tests.integration.sim_streams.helpers import SimRest, now_ms


async def _exists(rest: SimRest, link: str) -> bool:
    return bool(await rest.open_orders(orderLinkId=link))


@pytest.mark.parametrize("status", [403, 429, 500, 502, 503])
async def test_http_status_fails_without_executing(rest: SimRest, status: int) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/create",
        kind="http_status",
        count=1,
        params={"status": status},
    )
    link = uuid.uuid4().hex
    failed = await rest.create_order(orderLinkId=link)
    assert failed.status == status
    if status == 500:
        assert failed.body["retCode"] == 10016
    else:
        assert f"{status}" in failed.body["raw"]
    assert not await _exists(rest, link)
    ok = await rest.create_order(orderLinkId=link)  # count=1: the retry goes through
    assert ok.status == 200 and ok.ret_code == 0, ok.body


async def test_ret_code_returns_any_code_without_executing(rest: SimRest) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/*",
        kind="ret_code",
        count=1,
        params={"retCode": 10016, "retMsg": "Server is busy"},
    )
    link = uuid.uuid4().hex
    reply = await rest.create_order(orderLinkId=link)
    assert reply.status == 200
    assert reply.body["retCode"] == 10016 and reply.body["retMsg"] == "Server is busy"
    assert reply.body["result"] == {} and isinstance(reply.body["time"], int)
    assert not await _exists(rest, link)


async def test_rate_limit_fault_is_10006_with_reset_header(rest: SimRest) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/create",
        kind="rate_limit",
        count=1,
        params={"reset_ms": 700},
    )
    before = now_ms()
    link = uuid.uuid4().hex
    reply = await rest.create_order(orderLinkId=link)
    assert reply.status == 200 and reply.ret_code == 10006
    assert reply.body["retMsg"] == "Too many visits!"
    assert reply.headers["X-Bapi-Limit-Status"] == "0"
    assert int(reply.headers["X-Bapi-Limit-Reset-Timestamp"]) >= before + 700
    assert not await _exists(rest, link)


async def test_delay_still_executes_and_answers(rest: SimRest) -> None:
    rule = await rest.add_fault(
        target="rest", endpoint="/v5/order/create", kind="delay", count=1, params={"ms": 200}
    )
    link = uuid.uuid4().hex
    reply = await rest.create_order(orderLinkId=link)
    assert reply.ret_code == 0, reply.body
    faults = (await rest.admin("GET", "/faults"))["rules"]
    assert [(r["id"], r["applied"]) for r in faults] == [(rule, 1)]


async def test_delay_longer_than_client_timeout_times_out(rest: SimRest) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/realtime",
        kind="delay",
        count=1,
        params={"ms": 5_000},
    )
    with pytest.raises(TimeoutError):
        await rest.get(
            "/v5/order/realtime", {"category": "linear", "settleCoin": "USDT"}, within=0.3
        )


async def test_delayed_create_still_executes_after_the_client_gave_up(rest: SimRest) -> None:
    """A request stuck in a slow gateway reaches the engine after the client timed out."""
    await rest.add_fault(
        target="rest", endpoint="/v5/order/create", kind="delay", count=1, params={"ms": 300}
    )
    link = uuid.uuid4().hex
    with pytest.raises(TimeoutError):
        await rest.create_order(orderLinkId=link, within=0.1)
    assert not await _exists(rest, link)  # not yet...

    async def created() -> bool:
        return await _exists(rest, link)

    await eventually(created, what="the delayed create to reach the engine")  # ...but later it is


async def test_timeout_after_execute_hold_creates_order_but_never_answers(rest: SimRest) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/create",
        kind="timeout_after_execute",
        count=1,
    )
    link = uuid.uuid4().hex
    with pytest.raises(TimeoutError):
        await rest.create_order(orderLinkId=link, within=0.5)
    orders = await rest.open_orders(orderLinkId=link)
    assert [o["orderLinkId"] for o in orders] == [link]
    # the idempotent retry with the same orderLinkId is refused as a duplicate
    retry = await rest.create_order(orderLinkId=link)
    assert retry.ret_code == 110072, retry.body


async def test_timeout_after_execute_close_drops_connection(rest: SimRest) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/create",
        kind="timeout_after_execute",
        count=1,
        params={"mode": "close"},
    )
    link = uuid.uuid4().hex
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await rest.create_order(orderLinkId=link)
    assert await _exists(rest, link)


async def test_probability_one_applies_every_time_until_cleared(rest: SimRest) -> None:
    await rest.add_fault(
        target="rest",
        endpoint="/v5/order/realtime",
        kind="http_status",
        probability=1.0,
        params={"status": 503},
    )
    for _ in range(3):
        reply = await rest.get("/v5/order/realtime", {"category": "linear", "settleCoin": "USDT"})
        assert reply.status == 503
    cleared = await rest.admin("DELETE", "/faults")
    assert cleared == {"removed": 1}
    reply = await rest.get("/v5/order/realtime", {"category": "linear", "settleCoin": "USDT"})
    assert reply.status == 200 and reply.ret_code == 0


async def test_probability_draws_are_reproducible_under_the_simulator_seed(
    http: aiohttp.ClientSession, credentials: tuple[str, str]
) -> None:
    """Two simulators with the same seed fault exactly the same requests."""

    async def pattern(seed: int) -> list[int]:
        config = SimConfig(seed=seed).with_path("frozen").with_overrides(rate_limits_enabled=False)
        async with SimServer(config) as server:
            client = SimRest(http, server.url, *credentials)
            await client.add_fault(
                target="rest", endpoint="/v5/market/time", kind="http_status", probability=0.5
            )
            statuses = []
            for _ in range(16):
                async with http.get(f"{server.url}/v5/market/time") as resp:
                    statuses.append(resp.status)
            return statuses

    first, second = await pattern(7), await pattern(7)
    assert first == second and set(first) == {200, 500}
