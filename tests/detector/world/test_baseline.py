"""The naive baseline: aggregates by hand, determinism and sense on a tiny simulated world."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from detector import batch
from detector.records import CdrBatch, iso
from detector.world.baseline import FEATURES, REASON, aggregates, naive_baseline, run_baseline
from detector.world.simulate import WorldParams, simulate_world


def test_aggregates_by_hand():
    # SIM 20: MO voice to 5 (cell 0, imei 7, 60 s), MO voice to 5 again (cell 1, imei 7, 0 s),
    #         MT voice from 6 (cell 1, imei 8, 30 s), SMS out to 6, data (no peer, no cell)
    # SIM 10: SMS in from 9 (cell 2, no imei)
    rows = [  # ts, type, dir, dur, imsi, peer, cell, imei
        (100, 0, 0, 60, 20, 5, 0, 7),
        (300, 0, 0, 0, 20, 5, 1, 7),
        (200, 0, 1, 30, 20, 6, 1, 8),
        (250, 1, 0, 0, 20, 6, 1, 8),
        (400, 2, 0, 0, 20, 0, -1, 7),
        (50, 1, 1, 0, 10, 9, 2, 0),
    ]
    a = np.array(rows, dtype=np.int64)
    cdr = CdrBatch(ts=a[:, 0], record_type=a[:, 1].astype(np.int8), direction=a[:, 2].astype(np.int8),
                   duration=a[:, 3].astype(np.int32), imsi=a[:, 4], msisdn=a[:, 4] + 1000,
                   imei=a[:, 7], peer=a[:, 5], cell=a[:, 6].astype(np.int32),
                   result=np.zeros(len(a), np.int8), line=np.arange(len(a)), cells=("a", "b", "c"))
    imsi, msisdn, last, X = aggregates(cdr)
    assert imsi.tolist() == [10, 20] and msisdn.tolist() == [1010, 1020] and last.tolist() == [50, 400]
    got = dict(zip(FEATURES, X[1]))
    assert got == {"voice_mo": 2, "voice_mt": 1, "sms_out": 1, "sms_in": 0, "data": 1,
                   "distinct_peers": 2, "distinct_cells": 2, "distinct_imeis": 2,
                   "mean_voice_duration_s": 30.0}
    assert X[0].tolist() == [0, 0, 0, 1, 0, 1, 1, 0, 0.0]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    simulate_world(WorldParams(subscribers=2000, days=1, seed=5), out)
    return out


def test_deterministic_flags_file(world, tmp_path):
    cdr = batch.load_files([world / "cdr.csv"]).cdr
    a = run_baseline(world / "cdr.csv", tmp_path / "a.csv", cdr=cdr)
    b = run_baseline(world / "cdr.csv", tmp_path / "b.csv")  # read from the file this time
    assert a and a == b and (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    with open(tmp_path / "a.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(batch.FLAGS_HEADER)
    assert {r["reasons"] for r in rows} == {REASON}
    # the policy's default quantile: 0.5 % of the SIMs, at most
    assert len(rows) <= 0.005 * len(np.unique(cdr.imsi)) + 1
    last = {}
    for t, i in zip(cdr.ts.tolist(), cdr.imsi.tolist()):
        last[i] = max(t, last.get(i, t))
    assert all(r["flagged_at"] == iso(last[int(r["imsi"])]) for r in rows)


def test_flags_gateways_more_than_ordinary(world):
    cdr = batch.load_files([world / "cdr.csv"]).cdr
    with open(world / "labels.csv", newline="") as fh:
        scen = {int(r["imsi"]): r["scenario"] for r in csv.DictReader(fh)}
    flagged = {int(f.imsi) for f in naive_baseline(cdr, score_quantile=0.98)}
    seen = set(np.unique(cdr.imsi).tolist())

    def share(names):
        sims = [i for i in seen if scen[i] in names]
        return sum(i in flagged for i in sims) / len(sims)

    gateways = share({"goip_fixed", "goip_rotating"})
    assert gateways >= 0.5
    assert share({"ordinary"}) < 0.02 < gateways
