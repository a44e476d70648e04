"""Several worlds side by side: each world's generator and draw, wall-clock time to detect first."""

from __future__ import annotations

import json

from detector.world.evaluate import evaluate
from detector.world.family import format_family, world_info

from tests.detector.world.test_evaluate import write_timed


def test_world_info_reads_generator_mix_seed_and_when_watching_began(tmp_path):
    (tmp_path / "world.json").write_text(json.dumps({
        "generator": "goipwatch detector.world.simulate", "params": {"mix": "random"}, "seed": 4,
        "sims": {"total": 4024},
        "span": {"start": "2026-10-05T00:00:00Z", "archive_from": "2026-10-04T00:00:00Z"}}))
    info = world_info(tmp_path)
    assert (info["generator"], info["mix"], info["seed"], info["sims"]) == ("simulate", "random", 4, 4024)
    assert info["watched_from"] == 1_791_072_000          # the archive's start
    assert world_info(tmp_path / "none")["generator"] == "?"


def test_a_row_per_world_with_never_for_missed_sims(tmp_path):
    labels, flags = write_timed(tmp_path)
    result = evaluate(labels, flags)
    infos = {"w1": {"generator": "boxgen", "mix": "hard", "seed": 1}}
    text = format_family({"w1": result}, infos).splitlines()
    row = text[3]
    assert row.startswith("w1") and "boxgen hard seed 1" in row
    assert "40.0 / never" in row and "50.0 / never" in row and "20.0 / never" in row
    assert text[text.index("recall per fraud scenario (flagged / SIMs)") + 3].split()[1:3] == ["66.7%", "(2/3)"]
