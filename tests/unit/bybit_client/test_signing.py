"""Signing against the exact worked examples of v5-reference §1."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_manager.adapters.bybit import signing

SECRET, KEY, TS, RECV = "test-secret", "test-key", 1700000000000, 5000


def test_get_signature_matches_reference_vector() -> None:
    query = signing.encode_query({"category": "linear", "symbol": "BTCUSDT"})
    assert query == "category=linear&symbol=BTCUSDT"
    assert (
        signing.rest_signature(SECRET, KEY, TS, RECV, query)
        == "9a7c8cfd6ba1a7c498aa4dd5a7f9cfbba01fcb6eebae734ffe0d775870a1a3fb"
    )


def test_post_signature_matches_reference_vector() -> None:
    body = signing.encode_body(
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": Decimal("0.001"),
            "price": Decimal("30000"),
        }
    )
    assert body == (
        '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit",'
        '"qty":"0.001","price":"30000"}'
    )
    assert (
        signing.rest_signature(SECRET, KEY, TS, RECV, body)
        == "8e41bac42476bec36aecf5ac4b505211bfaf20b06e9bb581330051d467473465"
    )


def test_ws_auth_signature_matches_reference_vector() -> None:
    assert (
        signing.ws_auth_signature(SECRET, 1700000010000)
        == "977d2a1068009c263a4e3e15a2838ccaf62d1eda4ca2ff08b5456910b481b58b"
    )


def test_auth_headers_carry_key_timestamp_window_and_signature() -> None:
    headers = signing.auth_headers(KEY, SECRET, TS, RECV, "category=linear&symbol=BTCUSDT")
    assert headers["X-BAPI-API-KEY"] == KEY
    assert headers["X-BAPI-TIMESTAMP"] == str(TS)
    assert headers["X-BAPI-RECV-WINDOW"] == str(RECV)
    assert headers["X-BAPI-SIGN"].startswith("9a7c8cfd")


def test_query_drops_none_keeps_order_and_passes_encoded_cursor_through() -> None:
    cursor = "page_args%3Dfd43%26symbol%3D6%26"
    query = signing.encode_query({"b": 1, "a": None, "cursor": cursor, "flag": True})
    assert query == f"b=1&cursor={cursor}&flag=true"


def test_query_encodes_characters_that_would_break_the_query() -> None:
    assert signing.encode_query({"x": "a&b=c d"}) == "x=a%26b%3Dc%20d"


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        signing.encode_body({"qty": 0.1})
    with pytest.raises(TypeError):
        signing.encode_query({"qty": 0.1})


def test_decimals_are_sent_as_plain_strings() -> None:
    body = json.loads(signing.encode_body({"qty": Decimal("1E+2"), "price": Decimal("0.00010")}))
    assert body == {"qty": "100", "price": "0.00010"}


@given(st.text(min_size=1), st.text(), st.integers(0, 2**45))
def test_signature_is_lowercase_hex_and_depends_on_every_input(
    secret: str, payload: str, ts: int
) -> None:
    sig = signing.rest_signature(secret, KEY, ts, RECV, payload)
    assert len(sig) == 64 and sig == sig.lower()
    assert sig != signing.rest_signature(secret, KEY, ts + 1, RECV, payload)
    assert sig != signing.rest_signature(secret + "x", KEY, ts, RECV, payload)
