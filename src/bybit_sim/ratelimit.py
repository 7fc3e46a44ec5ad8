"""Bybit's per-UID rate limits: rolling one-second windows per (key, endpoint[, category])."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bybit_sim.config import PER_CATEGORY_ENDPOINTS, SimConfig

WINDOW_MS = 1000


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one request's check plus the values of the three `X-Bapi-Limit*` headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    # units granted (a batch request asks for one per order; the first ones win)
    granted: int = 1

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(self.remaining),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class RateLimiter:
    """Counts requests in a rolling window; a refused request is not counted."""

    def __init__(self, config: SimConfig) -> None:
        self._enabled = config.rate_limits_enabled
        self._rules = config.rate_limits
        self._hits: dict[tuple[str, str, str], deque[int]] = {}

    def check(
        self, api_key: str, endpoint: str, category: str, now_ms: int, units: int = 1
    ) -> Verdict:
        """Count `units` requests (a batch: one per order) for this key/endpoint[/category]."""
        rule = self._rules.get(endpoint)
        if rule is None:
            return Verdict(True, 0, 0, now_ms, units)
        scoped = category if endpoint in PER_CATEGORY_ENDPOINTS else ""
        limit = rule.for_category(scoped) if scoped else rule.limit
        if not self._enabled:
            # Limits off (benchmarks): nothing is counted, and the headers say the whole quota
            # is left, so a client that adapts to X-Bapi-Limit-Status never throttles itself.
            return Verdict(True, limit, limit, now_ms, units)
        bucket = self._hits.setdefault((api_key, endpoint, scoped), deque())
        horizon = now_ms - WINDOW_MS
        while bucket and bucket[0] <= horizon:
            bucket.popleft()
        granted = min(units, limit - len(bucket))
        if granted <= 0:
            return Verdict(False, limit, 0, bucket[0] + WINDOW_MS, 0)
        bucket.extend([now_ms] * granted)
        while len(bucket) > limit:
            bucket.popleft()
        return Verdict(True, limit, max(limit - len(bucket), 0), now_ms, granted)

    def reset(self) -> None:
        self._hits.clear()
