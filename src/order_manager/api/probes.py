"""Health, liveness and readiness.

* `/live`   — the process answers HTTP: 200 always (a hung event loop fails it by timing out).
* `/health` — 200 with a summary of every dependency check (for people and dashboards).
* `/ready`  — 200 only when every registered check passes AND start-up is complete (start-up
  tasks such as the start-up reconciliation have finished); 503 otherwise, with the reasons.

Checks are injected: `Probes.add_check(name, coroutine_function)`; a check passes when it
returns and fails when it raises or exceeds its timeout. Later components register their own
(database, broker, exchange, WebSocket streams...) without touching this module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

Check = Callable[[], Awaitable[object]]


@dataclass
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "latency_ms": round(self.latency_ms, 2)}
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Probes:
    """Registry of readiness checks and the start-up gate."""

    timeout_seconds: float = 2.0
    checks: dict[str, Check] = field(default_factory=dict)
    started_monotonic: float = field(default_factory=time.monotonic)
    _startup_complete: bool = False
    _startup_error: str | None = None

    def add_check(self, name: str, check: Check) -> None:
        if name in self.checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self.checks[name] = check

    def mark_startup_complete(self) -> None:
        """Start-up work (e.g. the start-up reconciliation) has finished."""
        self._startup_complete = True
        self._startup_error = None

    def mark_startup_failed(self, error: str) -> None:
        self._startup_complete = False
        self._startup_error = error

    @property
    def startup_complete(self) -> bool:
        return self._startup_complete

    async def _run(self, name: str, check: Check) -> CheckResult:
        start = time.perf_counter()
        try:
            await asyncio.wait_for(check(), timeout=self.timeout_seconds)
        except TimeoutError:
            return CheckResult(name, False, (time.perf_counter() - start) * 1000, "timed out")
        except Exception as exc:  # a failing dependency is a result, not a crash
            message = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            return CheckResult(name, False, (time.perf_counter() - start) * 1000, message)
        return CheckResult(name, True, (time.perf_counter() - start) * 1000)

    async def run_checks(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run(name, c) for name, c in self.checks.items())))

    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic


def _startup_dict(probes: Probes) -> dict[str, Any]:
    out: dict[str, Any] = {"complete": probes.startup_complete}
    if probes._startup_error is not None:
        out["error"] = probes._startup_error
    return out


def probes_router(probes: Probes, version: str) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/health")
    async def health() -> dict[str, Any]:
        results = await probes.run_checks()
        healthy = all(r.ok for r in results)
        return {
            "status": "ok" if healthy else "degraded",
            "version": version,
            "uptime_seconds": round(probes.uptime_seconds(), 3),
            "startup": _startup_dict(probes),
            "checks": {r.name: r.as_dict() for r in results},
        }

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        results = await probes.run_checks()
        failing = [r.name for r in results if not r.ok]
        is_ready = not failing and probes.startup_complete
        body: dict[str, Any] = {
            "status": "ready" if is_ready else "not_ready",
            "startup": _startup_dict(probes),
            "checks": {r.name: r.as_dict() for r in results},
        }
        if not is_ready:
            reasons = [f"{name} check failing" for name in failing]
            if not probes.startup_complete:
                reasons.append("start-up not complete")
            body["reasons"] = reasons
        return JSONResponse(status_code=200 if is_ready else 503, content=body)

    return router
