"""Pure parts of the API and the reconciler: decimal rendering, parameter parsing, the sort
allow-list, and which exchange snapshot of an order wins."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_manager.adapters.postgres.queries_repo import order_sort_clause
from order_manager.api.errors import ApiError
from order_manager.api.routers.orders import parse_side, parse_statuses
from order_manager.api.schemas import plain_decimal
from order_manager.services.ports.queries import ORDER_SORTS
from order_manager.services.reconciler import _Exchange


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12))
def test_plain_decimal_is_exact_and_never_exponential(value: Decimal) -> None:
    text = plain_decimal(value)
    assert "E" not in text.upper()
    assert Decimal(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("1E-8"), "0.00000001"), (Decimal("1E+3"), "1000"), (Decimal("-0"), "0")],
)
def test_plain_decimal_examples(value: Decimal, text: str) -> None:
    assert plain_decimal(value) == text


def test_statuses_accept_lists_case_and_the_active_alias() -> None:
    assert parse_statuses(None) == ()
    assert parse_statuses("Filled, cancelled,filled") == ("filled", "cancelled")
    assert parse_statuses("active") == (
        "submitting",
        "pending",
        "partially_filled",
        "untriggered",
        "triggered",
    )


def test_unknown_status_or_side_names_the_parameter() -> None:
    with pytest.raises(ApiError) as status:
        parse_statuses("filled,done")
    assert status.value.status_code == 422
    assert status.value.message.startswith("query status: unknown status 'done'")
    with pytest.raises(ApiError) as side:
        parse_side("long")
    assert side.value.message.startswith("query side:")
    assert parse_side("SELL") == "Sell"


def test_every_advertised_sort_has_sql_and_nothing_else_does() -> None:
    for sort in ORDER_SORTS:
        clause = order_sort_clause(sort)
        assert clause.endswith("DESC" if sort.startswith("-") else "ASC")
    for bad in ("price", "-id; DROP TABLE orders", "", "--created_at"):
        with pytest.raises(ValueError, match="unknown sort"):
            order_sort_clause(bad)


def test_the_newest_exchange_snapshot_of_an_order_wins() -> None:
    exchange = _Exchange()
    newer = {"orderId": "1", "orderLinkId": "om-a", "orderStatus": "Filled", "updatedTime": "20"}
    older = {"orderId": "1", "orderLinkId": "om-a", "orderStatus": "New", "updatedTime": "10"}
    exchange.add("linear", newer)
    exchange.add("linear", older)
    found = exchange.find(None, "om-a")
    assert found is not None
    assert (found["orderStatus"], found["category"]) == ("Filled", "linear")
    assert exchange.find("1", "") is found
    assert exchange.find("2", "om-b") is None
    exchange.add("linear", {"orderLinkId": "no-id"})  # unusable: ignored
    assert exchange.find(None, "no-id") is None
