"""Fault rules of the simulator: validation, matching, counting, seeded probability."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bybit_sim.faults import FaultInjector, FaultSpecError


def test_rest_rule_defaults_and_json_form() -> None:
    faults = FaultInjector()
    rule = faults.add({"target": "rest", "endpoint": "/v5/order/create", "kind": "http_status"})
    assert rule.id == "f1"
    assert rule.params == {"status": 500, "body": ""}
    assert rule.to_json() == {
        "id": "f1",
        "target": "rest",
        "endpoint": "/v5/order/create",
        "kind": "http_status",
        "count": None,
        "probability": None,
        "params": {"status": 500, "body": ""},
        "applied": 0,
        "exhausted": False,
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"target": "db", "kind": "delay"}, "target must be one of"),
        ({"target": "rest", "kind": "drop"}, "kind for target 'rest'"),
        ({"target": "ws_private", "kind": "ret_code"}, "kind for target 'ws_private'"),
        ({"target": "rest", "kind": "delay"}, "requires param 'ms'"),
        ({"target": "rest", "kind": "delay", "params": {"ms": -1}}, "non-negative integer"),
        ({"target": "rest", "kind": "delay", "params": {"ms": 1, "x": 2}}, "unknown param"),
        ({"target": "rest", "kind": "http_status", "params": {"status": 404}}, "'status' must"),
        ({"target": "rest", "kind": "ret_code", "params": {"retCode": 0}}, "non-zero"),
        ({"target": "rest", "kind": "ret_code"}, "requires param 'retCode'"),
        ({"target": "rest", "kind": "delay", "params": {"ms": 1}, "count": 0}, "count must"),
        ({"target": "rest", "kind": "pause", "probability": 2}, "kind for target"),
        (
            {"target": "ws_public", "kind": "pause", "probability": 1.5},
            "probability must be in",
        ),
        ({"target": "ws_public", "kind": "pause", "endpoint": "/x"}, "takes 'topic'"),
        ({"target": "rest", "kind": "delay", "params": {"ms": 1}, "what": 1}, "unknown field"),
        (
            {"target": "rest", "kind": "timeout_after_execute", "params": {"mode": "x"}},
            "'mode' must",
        ),
    ],
)
def test_invalid_specs_are_rejected_precisely(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultInjector().add(spec)


def test_count_limits_applications_and_glob_matches() -> None:
    faults = FaultInjector()
    faults.add(
        {
            "target": "rest",
            "endpoint": "/v5/order/*",
            "kind": "ret_code",
            "count": 2,
            "params": {"retCode": 10016, "retMsg": "busy"},
        }
    )
    assert faults.pick("rest", "/v5/position/list") is None
    assert faults.pick("ws_private", "/v5/order/create") is None
    first = faults.pick("rest", "/v5/order/create")
    second = faults.pick("rest", "/v5/order/cancel")
    assert first is not None and second is first
    assert faults.pick("rest", "/v5/order/create") is None
    assert first.exhausted and first.applied == 2


def test_drop_after_messages_lets_n_through() -> None:
    faults = FaultInjector()
    faults.add(
        {
            "target": "ws_private",
            "topic": "order",
            "kind": "drop",
            "count": 1,
            "params": {"after_messages": 2},
        }
    )
    picks = [faults.pick("ws_private", "order") for _ in range(4)]
    assert [p is not None for p in picks] == [False, False, True, False]


def test_first_matching_rule_wins_and_remove_resumes() -> None:
    faults = FaultInjector()
    pause = faults.add({"target": "ws_private", "topic": "execution*", "kind": "pause"})
    faults.add({"target": "ws_private", "topic": "*", "kind": "duplicate"})
    assert faults.pick("ws_private", "execution.linear") is pause
    assert faults.is_paused("ws_private", "execution")
    dup = faults.pick("ws_private", "order")
    assert dup is not None and dup.kind == "duplicate"
    assert faults.remove(pause.id)
    assert not faults.remove(pause.id)
    after = faults.pick("ws_private", "execution")
    assert after is not None and after.kind == "duplicate"


@given(seed=st.integers(min_value=0, max_value=2**32), p=st.floats(min_value=0.05, max_value=1))
def test_probability_is_reproducible_under_a_seed(seed: int, p: float) -> None:
    def run() -> list[bool]:
        faults = FaultInjector(seed=seed)
        faults.add({"target": "rest", "kind": "delay", "probability": p, "params": {"ms": 0}})
        return [faults.pick("rest", "/v5/order/create") is not None for _ in range(50)]

    assert run() == run()
    if p == 1:
        assert all(run())


def test_reset_clears_rules_and_restarts_ids() -> None:
    faults = FaultInjector(seed=3)
    faults.add({"target": "ws_public", "kind": "pause"})
    faults.reset()
    assert faults.rules == []
    assert faults.add({"target": "ws_public", "kind": "pause"}).id == "f1"
