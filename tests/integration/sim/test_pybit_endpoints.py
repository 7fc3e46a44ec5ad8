"""The endpoints pybit's conformance suite does not exercise, through pybit's unmodified `HTTP`
client: cursor pagination as pybit sends it, position settings, trading-stop, batch orders,
cancel-all, fee rates. pybit is synchronous, so each call runs in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from bybit_sim.server import SimServer


@pytest.fixture
def pybit(sim: SimServer) -> HTTP:
    session = HTTP(testnet=False, api_key="sim-key", api_secret="sim-secret")
    session.endpoint = sim.url
    return session


async def call(fn: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    return await asyncio.to_thread(fn, **kwargs)


async def test_pybit_follows_instrument_cursors(pybit: HTTP) -> None:
    symbols: list[str] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        reply = await call(pybit.get_instruments_info, category="linear", limit=3, **extra)
        symbols += [i["symbol"] for i in reply["result"]["list"]]
        cursor = reply["result"]["nextPageCursor"]
        if not cursor:
            break
    assert sorted(symbols) == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    time = await call(pybit.get_server_time)
    assert int(time["result"]["timeSecond"]) > 0


async def test_pybit_follows_open_order_cursors(pybit: HTTP) -> None:
    placed = []
    for n in range(5):
        reply = await call(
            pybit.place_order,
            category="linear",
            symbol="SOLUSDT",
            side="Buy",
            orderType="Limit",
            qty="1",
            price=str(140 + n),
        )
        placed.append(reply["result"]["orderId"])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = await call(
            pybit.get_open_orders, category="linear", symbol="SOLUSDT", limit=2, **extra
        )
        seen += [o["orderId"] for o in page["result"]["list"]]
        cursor = page["result"]["nextPageCursor"]
        if not cursor:
            break
    assert seen == list(reversed(placed))
    cancelled = await call(pybit.cancel_all_orders, category="linear", symbol="SOLUSDT")
    assert sorted(o["orderId"] for o in cancelled["result"]["list"]) == sorted(placed)


async def test_pybit_position_settings_and_trading_stop(pybit: HTTP) -> None:
    await call(
        pybit.set_leverage, category="linear", symbol="ETHUSDT", buyLeverage="4", sellLeverage="4"
    )
    with pytest.raises(InvalidRequestError) as err:
        await call(
            pybit.set_leverage,
            category="linear",
            symbol="ETHUSDT",
            buyLeverage="4",
            sellLeverage="4",
        )
    assert err.value.status_code == 110043
    await call(pybit.switch_position_mode, category="linear", symbol="ETHUSDT", mode=3)
    await call(
        pybit.place_order,
        category="linear",
        symbol="ETHUSDT",
        side="Buy",
        orderType="Market",
        qty="0.5",
        positionIdx=1,
    )
    await call(
        pybit.set_trading_stop,
        category="linear",
        symbol="ETHUSDT",
        positionIdx=1,
        tpslMode="Full",
        takeProfit="3600",
        stopLoss="3400",
    )
    rows = (await call(pybit.get_positions, category="linear", symbol="ETHUSDT"))["result"]["list"]
    long = next(r for r in rows if r["positionIdx"] == 1)
    assert (long["size"], long["leverage"], long["takeProfit"], long["stopLoss"]) == (
        "0.50",
        "4",
        "3600.00",
        "3400.00",
    )
    assert Decimal(long["positionIM"]) == Decimal(long["positionValue"]) / 4


async def test_pybit_batch_orders_and_fee_rates(pybit: HTTP) -> None:
    reply = await call(
        pybit.place_batch_order,
        category="linear",
        request=[
            {"symbol": "XRPUSDT", "side": "Buy", "orderType": "Limit", "qty": "10", "price": "2.4"},
            {"symbol": "XRPUSDT", "side": "Buy", "orderType": "Limit", "qty": "1", "price": "2.4"},
        ],
    )
    codes = [c["code"] for c in reply["retExtInfo"]["list"]]
    assert codes == [0, 110094]  # 1 XRP at 2.4 USDT is below the 5 USDT minimum
    assert reply["result"]["list"][0]["orderId"]
    fees = await call(pybit.get_fee_rates, category="linear", symbol="XRPUSDT")
    assert fees["result"]["list"][0]["takerFeeRate"] == "0.00055"
