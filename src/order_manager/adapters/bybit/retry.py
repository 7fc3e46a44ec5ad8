"""Retry policy: exponential backoff with full jitter, honouring Bybit's rate-limit reset.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the n-th retry waits a
uniformly random time in ``[0, min(max_delay, base_delay * multiplier**n))``. Randomising the
whole interval spreads simultaneous retriers best. On 10006/429 Bybit tells us when the window
resets (``X-Bapi-Limit-Reset-Timestamp``): waiting exactly until then (plus a little) beats any
guess, so that wins over the backoff.

The random source is injected so the arithmetic is testable.
"""

from __future__ import annotations

import random
from typing import Protocol

from .config import RetryConfig
from .errors import BybitError, ErrorKind, RateLimitedError, TransportError

RETRIED_KINDS = frozenset({ErrorKind.RETRYABLE, ErrorKind.RATE_LIMITED, ErrorKind.CLOCK_SKEW})

# Extra wait after a rate-limit reset: the exchange's clock and ours differ by the offset error.
RESET_GRACE_MS = 20


class UniformSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


def backoff_ceiling(policy: RetryConfig, retry_number: int) -> float:
    """Upper bound of the wait before retry ``retry_number`` (0 = the first retry)."""
    if retry_number < 0:
        raise ValueError("retry_number must be >= 0")
    # Cap the exponent so huge attempt counts cannot overflow a float.
    exponent = min(retry_number, 64)
    return min(policy.max_delay, policy.base_delay * policy.multiplier**exponent)


def full_jitter_delay(policy: RetryConfig, retry_number: int, rng: UniformSource) -> float:
    """A random wait in ``[0, backoff_ceiling]``."""
    return rng.uniform(0.0, backoff_ceiling(policy, retry_number))


def is_retryable(error: BybitError) -> bool:
    return error.kind in RETRIED_KINDS


def delay_before_retry(
    policy: RetryConfig,
    retry_number: int,
    error: BybitError,
    *,
    server_now_ms: int,
    rng: UniformSource,
) -> float:
    """Seconds to wait before the next attempt after ``error``.

    Rate-limit errors that carry a reset timestamp wait until it (even beyond ``max_delay``:
    retrying earlier only earns another 10006); everything else uses full-jitter backoff. A clock
    skew error retries at once (the clock is re-synced first).
    """
    if isinstance(error, RateLimitedError) and error.reset_at_ms is not None:
        return max(0.0, (error.reset_at_ms - server_now_ms + RESET_GRACE_MS) / 1000)
    if error.kind is ErrorKind.CLOCK_SKEW:
        return 0.0
    return full_jitter_delay(policy, retry_number, rng)


def may_have_executed(error: BybitError) -> bool:
    """Could the exchange have executed a request that failed with ``error``?

    A connection that failed before sending, a rate-limit refusal or any business error means
    "not executed". A timeout, a 5xx or 10000/10016 (server timeout / restarting) mean "unknown".
    """
    if isinstance(error, TransportError):
        return error.maybe_executed
    return error.kind is ErrorKind.RETRYABLE


def default_rng() -> random.Random:
    return random.Random()
