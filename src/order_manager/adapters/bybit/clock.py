"""Server-synchronised time for signing.

Bybit accepts a signed request only if ``server_time - recv_window <= timestamp < server_time +
1000`` (v5-reference §1). Rather than trusting the local clock we measure the offset to the
server's clock (``GET /v5/market/time``) and sign with ``local + offset``; with the offset known
to within half a round trip, retCode 10002 cannot come from drift.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OffsetSample:
    """One measurement: server time vs the midpoint of the local send/receive times."""

    offset_ms: int
    round_trip_ms: float


def estimate_offset(local_sent_ms: float, server_ms: int, local_received_ms: float) -> OffsetSample:
    """Offset such that ``local + offset ≈ server``, assuming a symmetric network path."""
    if local_received_ms < local_sent_ms:
        raise ValueError("received before sent: the local clock went backwards")
    midpoint = (local_sent_ms + local_received_ms) / 2
    return OffsetSample(
        offset_ms=round(server_ms - midpoint), round_trip_ms=local_received_ms - local_sent_ms
    )


class ServerClock:
    """Local wall clock corrected by the last measured offset to the exchange's clock.

    ``wall_ms`` and ``monotonic`` are injectable for tests. ``monotonic`` records when the
    offset was last measured so callers can decide to re-sync.
    """

    def __init__(
        self,
        wall_ms: Callable[[], float] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._wall_ms = wall_ms or (lambda: time.time() * 1000)
        self._monotonic = monotonic or time.monotonic
        self.offset_ms = 0
        self.synced_at: float | None = None

    def local_ms(self) -> float:
        return self._wall_ms()

    def now_ms(self) -> int:
        """Best estimate of the exchange's current time in ms."""
        return int(self._wall_ms()) + self.offset_ms

    def apply(self, sample: OffsetSample) -> None:
        self.offset_ms = sample.offset_ms
        self.synced_at = self._monotonic()

    def is_stale(self, max_age: float) -> bool:
        return self.synced_at is None or self._monotonic() - self.synced_at > max_age
