"""The synthetic book: level layout, consumption and rebuild on a price move."""

from __future__ import annotations

from decimal import Decimal

from bybit_sim.config import SimConfig
from bybit_sim.engine.book import BUY, SELL, SyntheticBook

D = Decimal


def _book() -> SyntheticBook:
    cfg = next(i for i in SimConfig().instruments if i.symbol == "BTCUSDT")
    return SyntheticBook(cfg, levels=10, price=D("65000.0"))


def test_levels_grow_with_depth_around_the_price() -> None:
    book = _book()
    assert book.depth(SELL, 3) == [
        (D("65000.1"), D("0.500")),
        (D("65000.2"), D("0.625")),
        (D("65000.3"), D("0.750")),
    ]
    assert book.best(BUY) == (D("64999.9"), D("0.500"))


def test_taking_consumes_levels_until_the_price_moves() -> None:
    book = _book()
    u = book.update_id
    fills = book.take(BUY, D("65000.2"), D("2"))
    assert fills == [(D("65000.1"), D("0.500")), (D("65000.2"), D("0.625"))]
    assert book.update_id == u + 1
    assert book.depth(SELL, 2) == [(D("65000.3"), D("0.750")), (D("65000.4"), D("0.875"))]
    assert book.available(BUY, D("65000.3")) == D("0.750")
    partial = book.take(BUY, D("65001"), D("0.1"))
    assert partial == [(D("65000.3"), D("0.1"))]
    assert book.best(SELL) == (D("65000.3"), D("0.650"))
    book.reprice(D("65000.0"))
    assert book.best(SELL) == (D("65000.1"), D("0.500"))


def test_quote_budget_buys_whole_steps_only() -> None:
    book = _book()
    fills = book.take(BUY, D("70000"), D("100"), quote=D("100"))
    assert fills == [(D("65000.1"), D("0.001"))]
