from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.domain.enums import Category, OrderType, Side, TimeInForce
from order_manager.domain.orders import (
    BybitOrderStatus,
    ExchangeOrderUpdate,
    Execution,
    OrderEventType,
    OrderState,
    OrderStatus,
    UpdateOutcome,
    UpdateResult,
    acknowledge,
    apply_execution,
    apply_update,
    map_bybit_status,
    mark_failed,
    mark_rejected,
    ms_to_datetime,
    untraded_after_cancel,
    untraded_in_store,
)
from tests.unit.domain.conftest import NOW

LINK = "om-abc-1"
OID = "ord-1"


def intent(qty: str = "1.000", price: str | None = "100.0") -> OrderState:
    return OrderState.submitting(
        order_link_id=LINK,
        category=Category.LINEAR,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty=Decimal(qty),
        price=Decimal(price) if price else None,
        time_in_force=TimeInForce.GTC,
        created_at=NOW,
    )


def update(
    status: BybitOrderStatus,
    t: int,
    cum: str = "0",
    *,
    qty: str = "1.000",
    price: str = "100.0",
    value: str | None = None,
    **kw: object,
) -> ExchangeOrderUpdate:
    cum_d = Decimal(cum)
    return ExchangeOrderUpdate(
        order_id=OID,
        order_link_id=LINK,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        bybit_status=status,
        qty=Decimal(qty),
        price=Decimal(price),
        cum_exec_qty=cum_d,
        cum_exec_value=Decimal(value) if value else cum_d * Decimal(price),
        cum_exec_fee=cum_d * Decimal("0.01"),
        updated_time=NOW + timedelta(milliseconds=t),
        time_in_force=TimeInForce.GTC,
        **kw,  # type: ignore[arg-type]
    )


def execution(exec_id: str, qty: str, price: str = "100.0", t: int = 0) -> Execution:
    return Execution(
        exec_id=exec_id,
        order_id=OID,
        order_link_id=LINK,
        symbol="BTCUSDT",
        side=Side.BUY,
        exec_price=Decimal(price),
        exec_qty=Decimal(qty),
        exec_fee=Decimal(qty) * Decimal("0.01"),
        exec_time=NOW + timedelta(milliseconds=t),
    )


Item = ExchangeOrderUpdate | Execution


def apply(state: OrderState, item: Item) -> UpdateResult:
    if isinstance(item, Execution):
        return apply_execution(state, item)
    return apply_update(state, item)


def run(items: list[Item], state: OrderState | None = None) -> tuple[OrderState, list[str]]:
    state = state or intent()
    events: list[str] = []
    for item in items:
        result = apply(state, item)
        state = result.state
        events.extend(e.event_type.value for e in result.events)
    return state, events


@pytest.mark.parametrize(
    ("bybit", "kw", "ours"),
    [
        ("New", {}, OrderStatus.PENDING),
        ("PartiallyFilled", {}, OrderStatus.PARTIALLY_FILLED),
        ("Untriggered", {}, OrderStatus.UNTRIGGERED),
        ("Triggered", {}, OrderStatus.TRIGGERED),
        ("Filled", {}, OrderStatus.FILLED),
        ("Rejected", {}, OrderStatus.REJECTED),
        ("Deactivated", {}, OrderStatus.DEACTIVATED),
        ("Cancelled", {"cancel_type": "CancelByUser"}, OrderStatus.CANCELLED),
        ("PartiallyFilledCanceled", {"cancel_type": "CancelByUser"}, OrderStatus.CANCELLED),
        ("Cancelled", {"reject_reason": "EC_PostOnlyWillTakeLiquidity"}, OrderStatus.REJECTED),
        ("Cancelled", {"reject_reason": "EC_NoImmediateQtyToFill"}, OrderStatus.EXPIRED),
        ("Cancelled", {"reject_reason": "EC_CancelForNoFullFill"}, OrderStatus.EXPIRED),
        (
            "Cancelled",
            {"time_in_force": TimeInForce.IOC, "cancel_type": "UNKNOWN"},
            OrderStatus.EXPIRED,
        ),
        (
            "Cancelled",
            {"time_in_force": TimeInForce.GTC, "cancel_type": "UNKNOWN"},
            OrderStatus.CANCELLED,
        ),
    ],
)
def test_every_bybit_status_maps(bybit: str, kw: dict[str, object], ours: OrderStatus) -> None:
    assert map_bybit_status(bybit, **kw) is ours  # type: ignore[arg-type]


def test_unknown_bybit_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        map_bybit_status("Exploded")


def test_in_order_lifecycle_with_executions() -> None:
    state, events = run(
        [
            update(BybitOrderStatus.NEW, 1),
            execution("e1", "0.400", "100.0", 2),
            update(BybitOrderStatus.PARTIALLY_FILLED, 3, "0.400"),
            execution("e2", "0.600", "99.0", 4),
            update(BybitOrderStatus.FILLED, 5, "1.000", value="99.400"),
        ]
    )
    assert events == ["created", "partially_filled", "filled"]
    assert state.status is OrderStatus.FILLED
    assert state.filled_qty == Decimal("1.000")
    assert state.average_price == Decimal("99.4")
    assert state.fees == Decimal("0.01000")
    assert state.remaining_qty == 0 and state.fill_percentage == 100
    assert state.order_id == OID


def test_fills_fall_back_to_cumulative_deltas_when_executions_are_missed() -> None:
    result = apply_update(intent(), update(BybitOrderStatus.PARTIALLY_FILLED, 1, "0.250"))
    types = [e.event_type for e in result.events]
    assert types == [OrderEventType.CREATED, OrderEventType.PARTIALLY_FILLED]
    fill = result.events[-1].fill
    assert fill is not None and fill.qty == Decimal("0.250") and fill.price == Decimal("100.0")
    assert fill.exec_id is None
    assert result.state.average_price == Decimal("100.0")


def test_execution_before_order_update_moves_status() -> None:
    result = apply_execution(intent(), execution("e1", "0.5"))
    assert result.state.status is OrderStatus.PARTIALLY_FILLED
    assert [e.event_type for e in result.events] == [
        OrderEventType.CREATED,
        OrderEventType.PARTIALLY_FILLED,
    ]
    assert result.events[-1].fill is not None and result.events[-1].fill.exec_id == "e1"
    # the late order update with the same cumulative qty adds no second fill event
    late = apply_update(result.state, update(BybitOrderStatus.PARTIALLY_FILLED, 9, "0.5"))
    assert late.applied and late.events == ()


def test_duplicates_stale_and_illegal_are_refused() -> None:
    state, _ = run([update(BybitOrderStatus.NEW, 1), update(BybitOrderStatus.FILLED, 5, "1")])
    assert (
        apply_update(state, update(BybitOrderStatus.FILLED, 5, "1")).outcome
        is UpdateOutcome.DUPLICATE
    )
    assert apply_update(state, update(BybitOrderStatus.NEW, 1)).outcome is UpdateOutcome.STALE
    illegal = apply_update(
        state, update(BybitOrderStatus.CANCELLED, 9, "1", cancel_type="CancelByUser")
    )
    assert illegal.outcome is UpdateOutcome.ILLEGAL and "filled -> cancelled" in illegal.reason
    assert illegal.state is state  # terminal is sticky

    partial, _ = run([update(BybitOrderStatus.PARTIALLY_FILLED, 2, "0.5")])
    back = apply_update(partial, update(BybitOrderStatus.NEW, 3, "0.5"))
    assert back.outcome is UpdateOutcome.ILLEGAL
    down = apply_update(partial, update(BybitOrderStatus.PARTIALLY_FILLED, 4, "0.4"))
    assert down.outcome is UpdateOutcome.ILLEGAL and "cumExecQty" in down.reason

    other = replace(update(BybitOrderStatus.NEW, 1), order_id="x", order_link_id="y")
    assert apply_update(state, other).outcome is UpdateOutcome.MISMATCH
    assert apply_execution(state, execution("e1", "0.1")).outcome is UpdateOutcome.APPLIED
    s2 = apply_execution(state, execution("e1", "0.1")).state
    assert apply_execution(s2, execution("e1", "0.1")).outcome is UpdateOutcome.DUPLICATE


def test_bybits_duplicate_filled_after_a_late_cancel_changes_nothing() -> None:
    state, events = run(
        [
            update(BybitOrderStatus.FILLED, 5, "1"),
            update(
                BybitOrderStatus.FILLED,
                6,
                "1",
                cancel_type="CancelByUser",
                reject_reason="EC_OrigClOrdIDDoesNotExist",
            ),
        ]
    )
    assert state.status is OrderStatus.FILLED and events == ["created", "filled"]


def test_amend_emits_modified_with_before_and_after() -> None:
    state, _ = run([update(BybitOrderStatus.NEW, 1)])
    result = apply_update(state, update(BybitOrderStatus.NEW, 2, qty="1.500", price="101.0"))
    (event,) = result.events
    assert event.event_type is OrderEventType.MODIFIED
    assert event.modification == {"qty": ("1.000", "1.500"), "price": ("100.0", "101.0")}
    assert result.state.qty == Decimal("1.500")


def test_partially_filled_then_cancelled_keeps_the_fill() -> None:
    state, events = run(
        [
            update(BybitOrderStatus.PARTIALLY_FILLED, 1, "0.3"),
            update(BybitOrderStatus.CANCELLED, 2, "0.3", cancel_type="CancelByUser"),
        ]
    )
    assert state.status is OrderStatus.CANCELLED and state.filled_qty == Decimal("0.3")
    assert events == ["created", "partially_filled", "cancelled"]


def test_rest_outcomes() -> None:
    ack = acknowledge(intent(), OID, NOW)
    assert ack.state.status is OrderStatus.PENDING
    assert [e.event_type for e in ack.events] == [OrderEventType.CREATED]
    assert acknowledge(ack.state, OID, NOW).outcome is UpdateOutcome.DUPLICATE
    # a REST answer processed after the WS said filled never moves the order back
    filled, _ = run([update(BybitOrderStatus.FILLED, 5, "1")])
    assert acknowledge(filled, OID, NOW).state.status is OrderStatus.FILLED

    rejected = mark_rejected(intent(), "110007", "ab not enough for new order", NOW)
    assert rejected.state.status is OrderStatus.REJECTED
    assert [e.event_type for e in rejected.events] == [OrderEventType.REJECTED]
    assert rejected.state.reject_code == "110007"
    assert mark_rejected(filled, "x", "y", NOW).outcome is UpdateOutcome.ILLEGAL

    failed = mark_failed(intent(), "retries exhausted", NOW)
    assert failed.state.status is OrderStatus.FAILED
    assert mark_failed(filled, "x", NOW).outcome is UpdateOutcome.ILLEGAL
    # the exchange's evidence overrides a provisional failure
    revived = apply_update(failed.state, update(BybitOrderStatus.NEW, 1))
    assert revived.state.status is OrderStatus.PENDING
    assert [e.event_type for e in revived.events] == [OrderEventType.CREATED]


def test_from_bybit_wire_objects() -> None:
    raw = {
        "orderId": "fd4300ae",
        "orderLinkId": LINK,
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "orderStatus": "PartiallyFilled",
        "qty": "0.015",
        "price": "64240.0",
        "cumExecQty": "0.010",
        "cumExecValue": "642.4",
        "cumExecFee": "",
        "cumFeeDetail": {"USDT": "0.3532"},
        "avgPrice": "64240",
        "leavesQty": "0.005",
        "timeInForce": "GTC",
        "rejectReason": "EC_NoError",
        "cancelType": "UNKNOWN",
        "takeProfit": "",
        "stopLoss": "0.00",
        "triggerPrice": "",
        "reduceOnly": False,
        "positionIdx": 0,
        "createdTime": "1684738540559",
        "updatedTime": "1684738540561",
        "category": "linear",
    }
    parsed = ExchangeOrderUpdate.from_bybit(raw)
    assert parsed.status is OrderStatus.PARTIALLY_FILLED
    assert parsed.cum_exec_fee == Decimal("0.3532") and parsed.stop_loss is None
    assert parsed.updated_time == ms_to_datetime("1684738540561")
    assert parsed.updated_time.microsecond == 561000
    ex = Execution.from_bybit(
        {
            "execId": "x1",
            "orderId": "fd4300ae",
            "orderLinkId": LINK,
            "symbol": "BTCUSDT",
            "side": "Buy",
            "execPrice": "64240.0",
            "execQty": "0.010",
            "execFee": "0.3532",
            "execTime": "1684738540560",
            "isMaker": True,
            "feeCurrency": "USDT",
            "execType": "Trade",
        }
    )
    assert ex.value == Decimal("642.4000") and ex.is_maker


# ---------------------------------------------------------------------------- property


@st.composite
def valid_streams(draw: st.DrawFn) -> list[Item]:
    """A valid exchange stream for one order of qty 1.000: fills, order updates, an end."""
    fills = draw(st.lists(st.integers(min_value=1, max_value=400), min_size=0, max_size=5))
    total = Decimal(0)
    items: list[Item] = [update(BybitOrderStatus.NEW, 1)]
    t = 2
    for i, units in enumerate(fills):
        qty = Decimal(units) / 1000
        if total + qty > 1:
            break
        total += qty
        items.append(execution(f"e{i}", str(qty), str(100 - i), t))
        t += 1
        if draw(st.booleans()):  # order updates may be coalesced/missing
            status = BybitOrderStatus.FILLED if total == 1 else BybitOrderStatus.PARTIALLY_FILLED
            items.append(update(status, t, str(total)))
            t += 1
        if total == 1:
            break
    end = draw(st.sampled_from(["filled", "cancelled", "open", "amend"]))
    if total == 1 or end == "filled":
        if total < 1:
            items.append(execution("last", str(1 - total), "101", t))
        items.append(update(BybitOrderStatus.FILLED, t + 1, "1.000"))
    elif end == "cancelled":
        items.append(
            update(BybitOrderStatus.CANCELLED, t + 1, str(total), cancel_type="CancelByUser")
        )
    elif end == "amend":
        status = BybitOrderStatus.PARTIALLY_FILLED if total else BybitOrderStatus.NEW
        items.append(update(status, t + 1, str(total), qty="1.000", price="99.5"))
    return items


@settings(max_examples=300)
@given(valid_streams(), st.data())
def test_any_permutation_with_duplicates_ends_in_the_same_state(
    stream: list[Item], data: st.DataObject
) -> None:
    expected, _ = run(stream)
    duplicates = data.draw(st.lists(st.sampled_from(stream), max_size=6))
    shuffled = data.draw(st.permutations(stream + duplicates))
    actual, events = run(shuffled)
    assert actual == expected
    assert (
        actual.filled_qty
        == sum((i.exec_qty for i in stream if isinstance(i, Execution)), Decimal(0))
        or actual.filled_qty == expected.cum_exec_qty
    )
    # a terminal event is emitted at most once, whatever the order
    terminal = [e for e in events if e in ("filled", "cancelled")]
    assert len(terminal) <= 1
    assert events.count("created") == 1


def test_unknown_orders_are_adopted_from_the_exchange_object() -> None:
    external = replace(
        update(BybitOrderStatus.PARTIALLY_FILLED, 7, "0.2"), order_link_id="", order_id="manual-1"
    )
    result = OrderState.adopted(external, Category.LINEAR)
    assert result.applied
    assert (
        result.state.order_id == "manual-1" and result.state.status is OrderStatus.PARTIALLY_FILLED
    )
    assert [e.event_type for e in result.events] == [
        OrderEventType.CREATED,
        OrderEventType.PARTIALLY_FILLED,
    ]
    later = apply_update(result.state, replace(external, updated_time=NOW + timedelta(seconds=1)))
    assert later.outcome is UpdateOutcome.APPLIED  # matched by orderId, no link id needed


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"orderId": "x", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit"},
        {
            "orderId": "x",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "orderStatus": "New",
            "qty": "abc",
            "updatedTime": "1",
        },
        {
            "orderId": "x",
            "symbol": "BTCUSDT",
            "side": "Up",
            "orderType": "Limit",
            "orderStatus": "New",
            "updatedTime": "1",
        },
    ],
)
def test_malformed_exchange_objects_raise_value_error(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ExchangeOrderUpdate.from_bybit(broken)
    with pytest.raises(ValueError):
        Execution.from_bybit(broken)


def test_millisecond_timestamps_are_exact() -> None:
    assert ms_to_datetime(1684738540999).microsecond == 999000
    assert ms_to_datetime("1684738540999").second == 40


@pytest.mark.parametrize(
    ("status", "cum", "expected"),
    [
        (BybitOrderStatus.CANCELLED, "0", "1.000"),  # cancelled untouched: all of it
        (BybitOrderStatus.PARTIALLY_FILLED_CANCELED, "0.400", "0.600"),  # the rest only
        (BybitOrderStatus.FILLED, "1.000", "0"),  # traded: nothing to convert
        (BybitOrderStatus.NEW, "0", "0"),  # still open: it may still trade
        (BybitOrderStatus.PARTIALLY_FILLED, "0.400", "0"),
    ],
)
def test_what_a_cancelled_order_left_untraded(
    status: BybitOrderStatus, cum: str, expected: str
) -> None:
    order = update(status, 1, cum)
    assert untraded_after_cancel(order, Decimal("1.000")) == Decimal(expected)
    assert untraded_after_cancel(order, Decimal("0.500")) == min(Decimal(expected), Decimal("0.5"))


@pytest.mark.parametrize(
    ("status", "cum"),
    [
        (BybitOrderStatus.CANCELLED, "0"),
        (BybitOrderStatus.PARTIALLY_FILLED_CANCELED, "0.400"),
        (BybitOrderStatus.FILLED, "1.000"),
        (BybitOrderStatus.NEW, "0"),
        (BybitOrderStatus.PARTIALLY_FILLED, "0.400"),
    ],
)
@pytest.mark.parametrize("planned", ["1.000", "0.500"])
def test_the_store_record_of_an_order_answers_as_the_exchange_lookup_would(
    status: BybitOrderStatus, cum: str, planned: str
) -> None:
    """What a converted limit left untraded, read from our store's final record of it (the
    exchange's record applied through the state machine) instead of a lookup."""
    order = update(status, 1, cum)
    stored = apply_update(acknowledge(intent(), OID, NOW).state, order).state
    assert untraded_in_store(stored, Decimal(planned)) == untraded_after_cancel(
        order, Decimal(planned)
    )


def test_an_order_the_exchange_does_not_know_left_nothing_to_convert() -> None:
    assert untraded_after_cancel(None, Decimal("1")) == 0
