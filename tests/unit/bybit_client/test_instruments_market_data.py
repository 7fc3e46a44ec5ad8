"""Instrument normalisation and cache; market-data book/ticker merging and staleness."""

from __future__ import annotations

from decimal import Decimal

import pytest

from order_manager.adapters.bybit.config import BybitClientConfig
from order_manager.adapters.bybit.errors import (
    ProtocolError,
    RetryableError,
    StaleMarketDataError,
    UnknownInstrumentError,
)
from order_manager.adapters.bybit.instruments import InstrumentCache, normalise
from order_manager.adapters.bybit.market_data import MarketData, PublicStream
from order_manager.adapters.bybit.models import RawInstrument, Ticker
from order_manager.adapters.bybit.ws_base import FanOut

D = Decimal
LINEAR = {
    "symbol": "BTCUSDT",
    "status": "Trading",
    "baseCoin": "BTC",
    "quoteCoin": "USDT",
    "priceFilter": {"tickSize": "0.10", "minPrice": "0.10", "maxPrice": "199999.80"},
    "lotSizeFilter": {
        "maxOrderQty": "1190.000",
        "maxMktOrderQty": "500.000",
        "minOrderQty": "0.001",
        "qtyStep": "0.001",
        "minNotionalValue": "5",
    },
}
SPOT = {
    "symbol": "ETHUSDT",
    "status": "Trading",
    "baseCoin": "ETH",
    "quoteCoin": "USDT",
    "priceFilter": {"tickSize": "0.01"},
    "lotSizeFilter": {
        "basePrecision": "0.00001",
        "quotePrecision": "0.0000001",
        "minOrderQty": "0.00062",
        "minOrderAmt": "1",
        "maxLimitOrderQty": "1229",
        "maxMarketOrderQty": "442",
    },
}


def test_linear_instrument_is_normalised() -> None:
    info = normalise("linear", RawInstrument.model_validate(LINEAR))
    assert (info.tick_size, info.qty_step, info.min_order_qty) == (
        D("0.10"),
        D("0.001"),
        D("0.001"),
    )
    assert (info.max_order_qty, info.max_market_qty, info.min_notional) == (
        D("1190.000"),
        D("500.000"),
        D("5"),
    )
    assert info.is_trading


def test_spot_instrument_uses_base_precision_and_min_order_amount() -> None:
    info = normalise("spot", RawInstrument.model_validate(SPOT))
    assert info.qty_step == D("0.00001") and info.min_notional == D("1")
    assert info.max_order_qty == D("1229") and info.max_market_qty == D("442")


def test_incomplete_lot_filter_is_a_protocol_error() -> None:
    broken = {**LINEAR, "lotSizeFilter": {"minOrderQty": "0.001"}}
    with pytest.raises(ProtocolError):
        normalise("linear", RawInstrument.model_validate(broken))


class FakeSource:
    """A stand-in instrument source returning fixed records (the REST path is integration-tested
    against the simulator)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get_instruments(
        self, category: str, *, symbol: str | None = None, page_size: int = 1000
    ) -> list[RawInstrument]:
        self.calls.append(category)
        raw = LINEAR if category == "linear" else SPOT
        return [RawInstrument.model_validate(raw)]


async def test_cache_loads_every_category_and_refuses_unknown_symbols() -> None:
    source = FakeSource()
    now = [100.0]
    cache = InstrumentCache(source, ["linear", "spot"], clock=lambda: now[0])
    assert await cache.refresh() == 2
    assert source.calls == ["linear", "spot"]
    assert cache.get("spot", "ETHUSDT").qty_step == D("0.00001")
    assert [i.symbol for i in cache.all("linear")] == ["BTCUSDT"]
    now[0] = 130.0
    assert cache.age() == 30.0
    with pytest.raises(UnknownInstrumentError):
        cache.get("linear", "DOGEUSDT")


CFG = BybitClientConfig.for_simulator("http://127.0.0.1:1")


async def test_book_snapshot_then_deltas_give_the_best_levels() -> None:
    now = [10.0]
    stream = PublicStream("ws://x", "linear", CFG, clock=lambda: now[0])
    await stream.on_message(
        {
            "topic": "orderbook.1.BTCUSDT",
            "type": "delta",
            "data": {"s": "BTCUSDT", "b": [["1", "1"]], "a": [], "u": 1},
        }
    )
    assert stream.quote("BTCUSDT") is None  # a delta without a snapshot is ignored
    await stream.on_message(
        {
            "topic": "orderbook.1.BTCUSDT",
            "type": "snapshot",
            "data": {"s": "BTCUSDT", "b": [["100.0", "2"]], "a": [["100.5", "1"]], "u": 5},
        }
    )
    await stream.on_message(
        {
            "topic": "orderbook.1.BTCUSDT",
            "type": "delta",
            "data": {"s": "BTCUSDT", "b": [["100.0", "0"], ["100.2", "3"]], "a": [], "u": 6},
        }
    )
    await stream.on_message(
        {
            "topic": "tickers.BTCUSDT",
            "type": "snapshot",
            "data": {"symbol": "BTCUSDT", "lastPrice": "100.3", "markPrice": "100.25"},
        }
    )
    await stream.on_message(
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "data": {"symbol": "BTCUSDT", "lastPrice": "100.4"},
        }
    )
    quote = stream.quote("BTCUSDT")
    assert quote is not None
    assert (quote.bid, quote.ask, quote.last, quote.mark) == (
        D("100.2"),
        D("100.5"),
        D("100.4"),
        D("100.25"),
    )
    assert quote.mid == D("100.35")


class Tickers:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    async def get_tickers(self, category: str, symbol: str | None = None) -> list[Ticker]:
        self.calls += 1
        if self.fail:
            raise RetryableError("HTTP 503", http_status=503)
        return [
            Ticker(
                symbol="BTCUSDT",
                bid1_price=D("1"),
                ask1_price=D("2"),
                last_price=D("1.5"),
                mark_price=D("1.5"),
            )
        ]


async def test_stale_stream_falls_back_to_rest_and_stale_rest_raises() -> None:
    now = [0.0]
    rest = Tickers()
    md = MarketData(CFG, rest, staleness=5.0, clock=lambda: now[0])
    stream = md.stream("linear")
    await stream.on_message(
        {
            "topic": "orderbook.1.BTCUSDT",
            "type": "snapshot",
            "data": {"s": "BTCUSDT", "b": [["10", "1"]], "a": [["11", "1"]]},
        }
    )
    assert (await md.quote("linear", "BTCUSDT")).source == "ws" and rest.calls == 0
    now[0] = 6.0
    fallback = await md.quote("linear", "BTCUSDT")
    assert fallback.source == "rest" and fallback.bid == D("1") and rest.calls == 1
    assert md.cached("linear", "BTCUSDT").source == "rest"
    now[0] = 20.0
    rest.fail = True
    with pytest.raises(StaleMarketDataError, match="REST fallback failed"):
        await md.quote("linear", "BTCUSDT")
    with pytest.raises(StaleMarketDataError, match=r"fresher than 5\.0s"):
        md.cached("linear", "BTCUSDT")


async def test_fan_out_delivers_to_every_open_subscription() -> None:
    fan: FanOut[int] = FanOut()
    a, b = fan.subscribe(), fan.subscribe()
    fan.publish(1)
    b.close()
    fan.publish(2)
    assert [a.get_nowait(), a.get_nowait()] == [1, 2]
    assert b.get_nowait() == 1 and b.qsize() == 0
