"""An exchange event may change a stored order only when neither of its ids contradicts it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from order_manager.domain.plans import identity_conflict, synthetic_link_id

ids = st.text(alphabet="abc123-", min_size=1, max_size=40)


def test_matching_or_missing_ids_never_conflict() -> None:
    assert identity_conflict("ord-1", "om-a-1", "ord-1", "om-a-1") is None
    assert identity_conflict("ord-1", "om-a-1", "ord-1", "") is None  # link omitted
    assert identity_conflict(None, "om-a-1", "ord-1", "om-a-1") is None  # not acknowledged yet
    assert identity_conflict("ord-1", "om-a-1", "", "om-a-1") is None


def test_a_contradicting_id_is_a_conflict_either_way() -> None:
    why = identity_conflict("ord-1", "om-old-1", "ord-1", "om-new-1")
    assert why is not None and "orderLinkId 'om-new-1'" in why and "'om-old-1'" in why
    why = identity_conflict("ord-old", "om-a-1", "ord-new", "om-a-1")
    assert why is not None and "orderId 'ord-new'" in why


def test_a_row_adopted_without_a_link_has_no_link_to_contradict() -> None:
    adopted = synthetic_link_id("ord-ext")
    assert identity_conflict("ord-ext", adopted, "ord-ext", "late-link") is None
    # ...but its exchange id still identifies it
    assert identity_conflict("ord-ext", adopted, "ord-other", "late-link") is not None


def test_synthetic_link_ids_fit_bybit_and_stay_unique() -> None:
    long_a, long_b = "9" * 60, "9" * 59 + "8"
    assert synthetic_link_id("ord-1") == "x-ord-1"
    assert len(synthetic_link_id(long_a)) == 36
    assert synthetic_link_id(long_a) != synthetic_link_id(long_b)


@given(ids, ids, ids, ids)
def test_conflict_is_exactly_a_contradiction_on_a_present_id(
    row_order: str, row_link: str, ev_order: str, ev_link: str
) -> None:
    why = identity_conflict(row_order, row_link, ev_order, ev_link)
    contradicts_order = row_order != ev_order
    contradicts_link = row_link != ev_link and row_link != synthetic_link_id(row_order)
    assert (why is not None) == (contradicts_order or contradicts_link)
