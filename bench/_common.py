"""Shared helpers for benchmarks: percentiles and the result file under ``bench/results/``.

Every benchmark writes ``bench/results/<bench>-<YYYYMMDD>.json`` holding its figures, the
parameters it ran with, the machine (CPU model, cores, Python) and the git commit, so a number in
a note can always be traced back to what produced it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> dict[str, Any]:
    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # other work on the machine skews results; record how busy it was when writing
        "loadavg_1_5_15m": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(
    bench: str, figures: Any, parameters: Mapping[str, Any], notes: Sequence[str] = ()
) -> Path:
    """Write the result file for ``bench`` (overwrites today's) and return its path."""
    now = dt.datetime.now(dt.UTC)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{bench}-{now:%Y%m%d}.json"
    payload = {
        "bench": bench,
        "recorded_at": now.isoformat(),
        "parameters": dict(parameters),
        "figures": figures,
        "notes": list(notes),
        "machine": machine(),
        "git": git_commit(),
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def cpu_seconds_by_command(commands: Sequence[str]) -> dict[str, float]:
    """Cumulative CPU seconds (user + system) of every running process whose command name
    (``/proc/<pid>/comm``) is one of ``commands``, summed per name. Linux only; a process that
    exits between two samples drops out (sample around a steady window)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(commands, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name in totals:
            fields = stat[stat.rindex(")") + 2 :].split()
            totals[name] += (int(fields[11]) + int(fields[12])) / ticks
    return totals
