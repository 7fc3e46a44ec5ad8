"""A resumed amend: what the exchange's current order says about it (domain.amends)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_manager.domain.amends import AmendResolution, recorded, resolve
from order_manager.domain.enums import Category, Side
from order_manager.domain.orders import BybitOrderStatus
from order_manager.domain.plans import Amend
from tests.unit.domain.test_orders import update

D = Decimal

PLANNED = Amend(
    order_link_id="om-abc-1",
    order_id="ord-1",
    category=Category.LINEAR,
    symbol="BTCUSDT",
    side=Side.BUY,
    qty=D("0.030"),
    price=D("100.0"),
    previous_qty=D("0.015"),
    previous_price=D("100.0"),
    added_qty=D("0.015"),
    reference_price=D("100.0"),
    added_notional=D("1.5"),
)
RECORD = recorded(PLANNED, "sig-2")


def test_the_record_rebuilds_the_amend_exactly_as_planned() -> None:
    assert not RECORD.landed
    assert RECORD.amend("ord-1", Category.LINEAR, "BTCUSDT", Side.BUY) == PLANNED


@pytest.mark.parametrize(
    ("status", "qty", "price", "expected"),
    [
        # the amend landed (its answer was lost, or the process died before recording it)
        (BybitOrderStatus.NEW, "0.030", "100.0", AmendResolution.LANDED),
        (BybitOrderStatus.PARTIALLY_FILLED, "0.030", "100.0", AmendResolution.LANDED),
        (BybitOrderStatus.FILLED, "0.030", "100.0", AmendResolution.LANDED),
        # still as planned from and open: it never landed and still can
        (BybitOrderStatus.NEW, "0.015", "100.0", AmendResolution.SEND),
        (BybitOrderStatus.PARTIALLY_FILLED, "0.015", "100.0", AmendResolution.SEND),
        # as planned from but closed: it can no longer land
        (BybitOrderStatus.FILLED, "0.015", "100.0", AmendResolution.REPLACE),
        (BybitOrderStatus.CANCELLED, "0.015", "100.0", AmendResolution.REPLACE),
        # changed by something else: neither send nor place
        (BybitOrderStatus.NEW, "0.045", "100.0", AmendResolution.AMBIGUOUS),
        (BybitOrderStatus.NEW, "0.015", "99.5", AmendResolution.AMBIGUOUS),
        (BybitOrderStatus.NEW, "0.030", "99.5", AmendResolution.AMBIGUOUS),
    ],
)
def test_the_exchanges_order_decides(
    status: BybitOrderStatus, qty: str, price: str, expected: AmendResolution
) -> None:
    found = update(status, 1, qty=qty, price=price)
    assert resolve(RECORD, found) is expected


def test_an_order_the_exchange_does_not_know_is_replaced() -> None:
    assert resolve(RECORD, None) is AmendResolution.REPLACE


@given(
    qty=st.decimals(min_value=D("0.001"), max_value=D("1"), places=3),
    price=st.decimals(min_value=D("90"), max_value=D("110"), places=1),
    status=st.sampled_from(list(BybitOrderStatus)),
)
def test_an_amend_is_sent_only_to_an_open_order_untouched_since_planning(
    qty: Decimal, price: Decimal, status: BybitOrderStatus
) -> None:
    """SEND overwrites the order with the planned absolute values: only safe when the order is
    exactly as planned from; LANDED only at the exact target. Never both."""
    found = update(status, 1, qty=str(qty), price=str(price))
    decision = resolve(RECORD, found)
    if decision is AmendResolution.SEND:
        assert (qty, price) == (RECORD.previous_qty, RECORD.previous_price)
        assert found.status.is_open
    if decision is AmendResolution.LANDED:
        assert (qty, price) == (RECORD.target_qty, RECORD.target_price)
    if (qty, price) not in {(D("0.030"), D("100.0")), (D("0.015"), D("100.0"))}:
        assert decision is AmendResolution.AMBIGUOUS
