"""Cursor pagination and the rolling-window rate limiter, as pure functions."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from bybit_sim.config import SimConfig
from bybit_sim.engine.pagination import decode_cursor, encode_cursor, paginate, paginate_desc
from bybit_sim.ratelimit import RateLimiter


@given(
    keys=st.lists(st.integers(0, 10_000), unique=True, max_size=60),
    limit=st.integers(1, 12),
)
def test_pages_cover_every_item_once_in_order(keys: list[int], limit: int) -> None:
    items = sorted(keys, reverse=True)
    seen: list[int] = []
    cursor = ""
    pages = 0
    while True:
        page, cursor = paginate(items, lambda k: k, limit, cursor, "t")
        assert len(page) <= limit
        seen += page
        pages += 1
        if not cursor:
            break
    assert seen == items
    assert pages == max(1, -(-len(items) // limit))


@given(
    keys=st.lists(st.integers(0, 10_000), unique=True, max_size=60),
    limit=st.integers(1, 12),
    modulus=st.integers(1, 4),
)
def test_streaming_pagination_equals_list_pagination(
    keys: list[int], limit: int, modulus: int
) -> None:
    items = sorted(keys, reverse=True)
    wanted = [k for k in items if k % modulus == 0]
    cursor_a = cursor_b = ""
    while True:
        page_a, cursor_a = paginate(wanted, lambda k: k, limit, cursor_a, "t")
        page_b, cursor_b = paginate_desc(
            iter(items), lambda k: k, lambda k: k % modulus == 0, limit, cursor_b, "t"
        )
        assert (page_a, cursor_a) == (page_b, cursor_b)
        if not cursor_a:
            break


def test_cursor_survives_one_decoding_more_or_less() -> None:
    cursor = encode_cursor("exec", 42)
    assert "%3D" in cursor
    assert decode_cursor(cursor, "exec") == 42
    assert decode_cursor(unquote(cursor), "exec") == 42


def test_rolling_window_limit_status_and_reset() -> None:
    limiter = RateLimiter(SimConfig())
    path = "/v5/account/fee-rate"  # 5 per second
    verdicts = [limiter.check("k", path, "", 1_000 + n) for n in range(5)]
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0]
    refused = limiter.check("k", path, "", 1_500)
    assert not refused.allowed
    assert refused.reset_ms == 2_000  # the oldest request leaves the window then
    assert limiter.check("other-key", path, "", 1_500).allowed
    # at 2001 the requests of 1000 and 1001 are a full second old: two slots are free again
    again = limiter.check("k", path, "", 2_001)
    assert again.allowed and again.remaining == 1


def test_batch_units_are_granted_up_to_the_remaining_quota() -> None:
    limiter = RateLimiter(SimConfig())
    path = "/v5/order/create-batch"  # 10 per second per category
    first = limiter.check("k", path, "linear", 0, units=7)
    assert (first.granted, first.remaining) == (7, 3)
    second = limiter.check("k", path, "linear", 10, units=7)
    assert (second.granted, second.remaining) == (3, 0)
    assert not limiter.check("k", path, "linear", 20, units=1).allowed
    assert limiter.check("k", path, "spot", 20, units=7).granted == 7


def test_disabled_limits_still_report_headers() -> None:
    limiter = RateLimiter(SimConfig(rate_limits_enabled=False))
    verdicts = [limiter.check("k", "/v5/order/create", "linear", 0) for _ in range(30)]
    assert all(v.allowed for v in verdicts)
    assert verdicts[-1].headers()["X-Bapi-Limit"] == "10"
    # nothing is counted, so a client following X-Bapi-Limit-Status never throttles itself
    assert {v.headers()["X-Bapi-Limit-Status"] for v in verdicts} == {"10"}
