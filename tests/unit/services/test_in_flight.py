"""InFlightPlans: which approved plans a signal's account snapshot may miss, and when they are
forgotten."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from order_manager.domain.account import Commitment
from order_manager.services.in_flight import InFlightPlans


def plan_of(notional: str) -> Commitment:
    return Commitment((), Decimal(notional))


def test_a_plan_executing_or_finished_after_the_reads_began_is_unseen() -> None:
    plans = InFlightPlans()
    a, b = plan_of("1"), plan_of("2")
    with plans.snapshot() as early:
        with plans.holding(a):
            assert plans.unseen(early) == (a,)  # executing
            with plans.snapshot() as during:
                assert plans.unseen(during) == (a,)
        assert plans.unseen(early) == (a,)  # finished after `early` began
        assert plans.unseen(during) == (a,)  # finished while `during` was reading
        with plans.snapshot() as late:
            assert plans.unseen(late) == ()  # finished before `late` began: it read it
            with plans.holding(b):
                assert plans.unseen(early) == (a, b)
                assert plans.unseen(late) == (b,)
    assert plans.held == 0  # no reader left: nothing to remember


def test_a_finished_plan_is_kept_while_an_older_reader_is_alive() -> None:
    plans = InFlightPlans()
    with plans.snapshot() as old:
        with plans.holding(plan_of("1")):
            pass
        assert plans.held == 1 and len(plans.unseen(old)) == 1
    assert plans.held == 0


def test_a_failed_execution_still_releases_its_hold() -> None:
    plans = InFlightPlans()
    try:
        with plans.holding(plan_of("1")):
            raise RuntimeError("the database went away")
    except RuntimeError:
        pass
    assert plans.held == 0


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["read", "end-read", "hold", "release"]), max_size=40))
def test_unseen_is_exactly_the_plans_not_finished_before_the_read_began(
    steps: list[str],
) -> None:
    """Against a model that remembers everything: a reader's unseen plans are those still
    executing, or finished after the reader began — and forgetting never drops one a live
    reader still needs."""
    plans = InFlightPlans()
    readers: list[tuple[object, int, set[int]]] = []  # (context, began, finished-before ids)
    holds: list[tuple[object, Commitment]] = []
    finished: set[int] = set()
    every: list[Commitment] = []
    for step in steps:
        if step == "read":
            ctx = plans.snapshot()
            began = ctx.__enter__()
            readers.append((ctx, began, set(finished)))
        elif step == "end-read" and readers:
            ctx = readers.pop(0)[0]
            ctx.__exit__(None, None, None)  # type: ignore[attr-defined]
        elif step == "hold":
            commitment = plan_of(str(len(every)))
            every.append(commitment)
            ctx = plans.holding(commitment)
            ctx.__enter__()
            holds.append((ctx, commitment))
        elif step == "release" and holds:
            ctx, commitment = holds.pop(0)
            ctx.__exit__(None, None, None)  # type: ignore[attr-defined]
            finished.add(every.index(commitment))
        for _ctx, began, seen in readers:
            expected = {i for i in range(len(every)) if i not in seen}
            got = {every.index(c) for c in plans.unseen(began)}
            assert got == expected
