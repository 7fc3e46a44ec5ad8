"""Market-data endpoints: instruments (with pagination), tickers, orderbook."""

from __future__ import annotations

from decimal import Decimal

from tests.integration.sim.client import RawClient


async def test_instruments_linear_paginate_with_cursor(client: RawClient) -> None:
    symbols: list[str] = []
    cursor = ""
    pages = 0
    while True:
        query = "category=linear&limit=3" + (f"&cursor={cursor}" if cursor else "")
        reply = await client.public("/v5/market/instruments-info", query)
        assert reply.code == 0
        symbols += [i["symbol"] for i in reply.result["list"]]
        cursor = reply.result["nextPageCursor"]
        pages += 1
        if not cursor:
            break
    assert pages == 2
    unpaged = await client.public("/v5/market/instruments-info", "category=linear")
    assert symbols == [i["symbol"] for i in unpaged.result["list"]]
    assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


async def test_instrument_filters_are_bybits(client: RawClient) -> None:
    reply = await client.public("/v5/market/instruments-info", "category=linear&symbol=BTCUSDT")
    item = reply.result["list"][0]
    assert item["priceFilter"]["tickSize"] == "0.10"
    assert item["lotSizeFilter"]["qtyStep"] == "0.001"
    assert item["lotSizeFilter"]["minOrderQty"] == "0.001"
    assert item["lotSizeFilter"]["maxMktOrderQty"] == "500.000"
    assert item["lotSizeFilter"]["minNotionalValue"] == "5"
    spot = await client.public("/v5/market/instruments-info", "category=spot")
    assert {i["symbol"] for i in spot.result["list"]} == {"BTCUSDT", "ETHUSDT"}
    assert spot.result["list"][0]["lotSizeFilter"]["minOrderAmt"] == "5"


async def test_ticker_and_orderbook_agree(client: RawClient) -> None:
    ticker = (await client.public("/v5/market/tickers", "category=linear&symbol=BTCUSDT")).result
    item = ticker["list"][0]
    book = (await client.public("/v5/market/orderbook", "category=linear&symbol=BTCUSDT")).result
    assert len(book["b"]) == 25 and len(book["a"]) == 25
    assert book["b"][0][0] == item["bid1Price"]
    assert book["a"][0][0] == item["ask1Price"]
    assert Decimal(item["bid1Price"]) < Decimal(item["lastPrice"]) < Decimal(item["ask1Price"])
    bids = [Decimal(p) for p, _ in book["b"]]
    assert bids == sorted(bids, reverse=True)
    spot = (await client.public("/v5/market/orderbook", "category=spot&symbol=BTCUSDT")).result
    assert len(spot["a"]) == 1


async def test_unknown_symbol_and_category(client: RawClient) -> None:
    bad = await client.public("/v5/market/tickers", "category=linear&symbol=NOPEUSDT")
    assert bad.code == 10001
    cat = await client.public("/v5/market/tickers", "category=option")
    assert cat.code == 10001
