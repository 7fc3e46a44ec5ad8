"""A/B: one `bench/signal_to_order.py` command on two revisions, alternately, in one sitting.

On the shared 2-core VM a single run's throughput swings by ±10 % with other sessions' load, so
a change worth a few percent shows only when both revisions run side by side: this checks each
revision out into a temporary worktree (its own virtualenv: `uv sync --frozen`), then runs the
command on base, head, base, head, ... (`--pairs` times each), prints every run and the medians,
and writes `bench/results/ab_compare-<YYYYMMDD>.json`. The working tree is not touched (each
worktree writes its own result files, thrown away with it).

    eval "$(scripts/infra env)"
    uv run python bench/ab_compare.py --base 52c9bae --head HEAD --pairs 3 -- \\
        --mode dry-run --dry-run-rate 0 --count 3000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, RESULTS_DIR, write_result

CPU_KEYS = {
    "order-manager (this process)": "service",
    "postgres": "postgres",
    "bybit-sim": "sim",
    "beam.smp": "rabbitmq",
}


def _git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


def checkout(rev: str, into: Path) -> str:
    """A detached worktree of ``rev`` with its own synced virtualenv; returns the commit."""
    commit = _git("rev-parse", rev)
    _git("worktree", "add", "--detach", "--force", str(into), commit)
    subprocess.run(["uv", "sync", "--frozen", "--quiet"], cwd=into, check=True)
    return commit


def one_run(tree: Path, bench_args: list[str]) -> dict[str, Any]:
    """Run the bench in ``tree`` and return the run it recorded."""
    results = tree / "bench" / "results"
    for old in results.glob("signal_to_order-*.json"):
        old.unlink()  # the worktree's copy: the run below is then the only entry
    subprocess.run(
        [str(tree / ".venv" / "bin" / "python"), "bench/signal_to_order.py", *bench_args],
        cwd=tree,
        check=True,
        stdout=subprocess.DEVNULL,
        env=os.environ,
    )
    (written,) = results.glob("signal_to_order-*.json")
    runs = json.loads(written.read_text())["figures"]["runs"]
    (run,) = runs.values()
    return dict(run)


def summary(run: dict[str, Any]) -> dict[str, Any]:
    cpu = {CPU_KEYS.get(k, k): v for k, v in run["cpu_ms_per_signal"].items()}
    return {
        "signals_per_s": run["throughput_signals_per_s"],
        "p99_ms": run["latency_ms"]["p99"],
        "cpu_ms_per_signal": cpu,
        "cpu_ms_total": round(sum(cpu.values()), 2),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        key: round(statistics.median(r[key] for r in runs), 2)
        for key in ("signals_per_s", "p99_ms", "cpu_ms_total")
    }


def _merged(comparison: dict[str, Any]) -> dict[str, Any]:
    """Today's comparisons with this one added (keyed by arguments and commits)."""
    revisions = f"{comparison['base'][:10]}..{comparison['head'][:10]}"
    key = f"{' '.join(comparison['bench'][1:])} | {revisions}"
    previous: dict[str, Any] = {}
    for path in sorted(RESULTS_DIR.glob(f"ab_compare-{dt.datetime.now(dt.UTC):%Y%m%d}.json")):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            previous = dict(json.loads(path.read_text())["figures"]["comparisons"])
    previous[key] = comparison
    return previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="revision to compare against")
    parser.add_argument("--head", default="HEAD", help="revision under test (default HEAD)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- signal_to_order args")
    args = parser.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    if not os.environ.get("ORDERMANAGER_DATABASE_URL"):
        sys.exit('run eval "$(scripts/infra env)" first (database/broker settings missing)')
    root = Path(tempfile.mkdtemp(prefix="om-ab-"))
    trees = {"base": root / "base", "head": root / "head"}
    try:
        commits = {
            side: checkout(rev, trees[side])
            for side, rev in (("base", args.base), ("head", args.head))
        }
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
        print(f"{'pair':>4} {'side':<5} {'signals/s':>10} {'p99 ms':>9} {'CPU ms/signal':>14}")
        for pair in range(1, args.pairs + 1):
            for side in ("base", "head"):
                run = summary(one_run(trees[side], bench_args))
                runs[side].append(run)
                print(
                    f"{pair:>4} {side:<5} {run['signals_per_s']:>10} {run['p99_ms']:>9}"
                    f" {run['cpu_ms_total']:>14}",
                    flush=True,
                )
        medians = {side: median_of(runs[side]) for side in runs}
        head_wins = sum(
            h["signals_per_s"] > b["signals_per_s"]
            for b, h in zip(runs["base"], runs["head"], strict=True)
        )
        for side in ("base", "head"):
            m = medians[side]
            print(
                f"median {side:<5} {m['signals_per_s']:>8} signals/s, p99 {m['p99_ms']} ms,"
                f" {m['cpu_ms_total']} ms CPU/signal ({commits[side][:10]})"
            )
        print(f"head faster in {head_wins} of {args.pairs} pairs")
        comparison = {
            "base": commits["base"],
            "head": commits["head"],
            "pairs": args.pairs,
            "bench": ["bench/signal_to_order.py", *bench_args],
            "medians": medians,
            "head_faster_pairs": head_wins,
            "runs": runs,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
        path = write_result(
            "ab_compare",
            {"comparisons": _merged(comparison)},
            {"pairs": args.pairs},
            [
                "each comparison: runs alternate base, head per pair on one machine in one "
                "sitting; keyed by the bench arguments and the two commits",
            ],
        )
        print(f"wrote {path}")
    finally:
        for tree in trees.values():
            if tree.exists():
                _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
