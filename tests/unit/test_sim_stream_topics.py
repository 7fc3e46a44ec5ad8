"""Pure parts of the simulator's streams: topic parsing and order-book deltas."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bybit_sim import ws_private, ws_public, ws_stream


def test_private_topics() -> None:
    assert ws_private.parse_topic("order") == ("order", None)
    assert ws_private.parse_topic("execution.fast") == ("execution.fast", None)
    assert ws_private.parse_topic("execution.fast.spot") == ("execution.fast", "spot")
    assert ws_private.parse_topic("position.linear") == ("position", "linear")
    assert ws_private.parse_topic("position.spot") is None
    assert ws_private.parse_topic("wallet.linear") is None
    assert ws_private.parse_topic("orders") is None


def test_public_topics() -> None:
    assert ws_public.parse_topic("linear", "tickers.BTCUSDT") == ("tickers", "BTCUSDT", 0)
    assert ws_public.parse_topic("linear", "orderbook.500.BTCUSDT") == ("orderbook", "BTCUSDT", 500)
    assert ws_public.parse_topic("spot", "orderbook.500.BTCUSDT") is None
    assert ws_public.parse_topic("spot", "orderbook.x.BTCUSDT") is None
    assert ws_public.parse_topic("spot", "tickers.") is None


def test_realtime_signature_matches_reference_example() -> None:
    # v5-reference §1 worked example
    assert ws_private.realtime_signature("test-secret", 1700000010000) == (
        "977d2a1068009c263a4e3e15a2838ccaf62d1eda4ca2ff08b5456910b481b58b"
    )


prices = st.integers(min_value=1, max_value=500).map(lambda n: str(Decimal(n) / 10))
books = st.dictionaries(prices, st.integers(min_value=1, max_value=9).map(str), max_size=12)


@given(old=books, new=books, reverse=st.booleans())
def test_applying_a_delta_to_the_old_side_gives_the_new_side(
    old: dict[str, str], new: dict[str, str], reverse: bool
) -> None:
    delta = ws_public._diff(old, new, reverse=reverse)
    book = dict(old)
    for price, size in delta:
        if size == "0":
            del book[price]
        else:
            book[price] = size
    assert book == new
    keys = [Decimal(p) for p, _ in delta]
    assert keys == sorted(keys, reverse=reverse)
    assert len({p for p, _ in delta}) == len(delta)


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (5, b"\x81\x05"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_text_frame_length_encoding(size: int, header: bytes) -> None:
    payload = b"x" * size
    assert ws_stream.text_frame(payload) == header + payload
