"""Full-jitter backoff arithmetic with an injected random source."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_manager.adapters.bybit.config import RetryConfig
from order_manager.adapters.bybit.errors import (
    ClockSkewError,
    InsufficientFundsError,
    RateLimitedError,
    RetryableError,
    TransportError,
)
from order_manager.adapters.bybit.retry import (
    backoff_ceiling,
    delay_before_retry,
    full_jitter_delay,
    is_retryable,
    may_have_executed,
)

POLICY = RetryConfig(max_attempts=5, base_delay=0.1, multiplier=2.0, max_delay=1.0)


class Recorder:
    """Returns a fixed fraction of the interval and records what was asked."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a + (b - a) * self.fraction


def test_ceiling_grows_exponentially_and_is_capped() -> None:
    assert [backoff_ceiling(POLICY, n) for n in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert backoff_ceiling(POLICY, 10_000) == 1.0


def test_full_jitter_draws_from_zero_to_the_ceiling() -> None:
    rng = Recorder(0.5)
    assert full_jitter_delay(POLICY, 2, rng) == pytest.approx(0.2)
    [(low, high)] = rng.calls
    assert low == 0.0 and high == pytest.approx(0.4)


@given(st.integers(0, 200), st.integers(0, 2**32))
def test_jitter_is_always_within_bounds(retry: int, seed: int) -> None:
    delay = full_jitter_delay(POLICY, retry, random.Random(seed))
    assert 0.0 <= delay <= backoff_ceiling(POLICY, retry) <= POLICY.max_delay


def test_rate_limit_waits_until_the_reset_timestamp_even_beyond_max_delay() -> None:
    err = RateLimitedError("Too many visits!", reset_at_ms=1_000_000 + 3_000, ret_code=10006)
    delay = delay_before_retry(POLICY, 0, err, server_now_ms=1_000_000, rng=Recorder(0.0))
    assert delay == pytest.approx(3.02)


def test_rate_limit_in_the_past_retries_at_once_and_without_header_uses_backoff() -> None:
    past = RateLimitedError("x", reset_at_ms=10)
    assert delay_before_retry(POLICY, 0, past, server_now_ms=1_000, rng=Recorder(1.0)) == 0.0
    bare = RateLimitedError("x", reset_at_ms=None)
    assert delay_before_retry(POLICY, 1, bare, server_now_ms=0, rng=Recorder(1.0)) == 0.2


def test_clock_skew_retries_immediately() -> None:
    assert delay_before_retry(POLICY, 3, ClockSkewError("x"), server_now_ms=0, rng=Recorder(1)) == 0


def test_what_is_retried_and_what_may_have_executed() -> None:
    assert is_retryable(RetryableError("5xx", http_status=500))
    assert is_retryable(RateLimitedError("x"))
    assert not is_retryable(InsufficientFundsError("x", ret_code=110007))
    assert may_have_executed(TransportError("read timeout", maybe_executed=True))
    assert not may_have_executed(TransportError("refused", maybe_executed=False))
    assert may_have_executed(RetryableError("500", http_status=500))
    assert not may_have_executed(RateLimitedError("x", ret_code=10006))
    assert not may_have_executed(InsufficientFundsError("x"))


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryConfig(max_attempts=0)
    with pytest.raises(ValueError):
        RetryConfig(multiplier=0.5)
