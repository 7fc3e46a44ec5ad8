"""`bybit-sim serve`'s configuration: ids are salted with the start time unless a seed is given."""

from __future__ import annotations

import json
from pathlib import Path

from bybit_sim.cli import serve_config


def test_without_a_seed_ids_are_salted_with_the_start_time() -> None:
    cfg = serve_config(None, host=None, port=8900, seed=None, now_ns=123)
    assert (cfg.port, cfg.seed, cfg.id_epoch) == (8900, 1, 123)


def test_a_seed_keeps_ids_reproducible(tmp_path: Path) -> None:
    assert serve_config(None, host=None, port=None, seed=7, now_ns=123).id_epoch == 0
    seeded = tmp_path / "sim.json"
    seeded.write_text(json.dumps({"seed": 3}))
    from_file = serve_config(seeded, host=None, port=None, seed=None, now_ns=123)
    assert (from_file.seed, from_file.id_epoch) == (3, 0)
    unseeded = tmp_path / "plain.json"
    unseeded.write_text(json.dumps({"tick_interval_ms": 50}))
    assert serve_config(unseeded, host=None, port=None, seed=None, now_ns=123).id_epoch == 123
