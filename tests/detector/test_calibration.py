"""Calibration to the watched population (detector/calibration.py)."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from detector import batch, model as model_mod
from detector.calibration import (
    CALIBRATED_FAMILIES, Baseline, CalibrationPolicy, Calibrator, blend_reference, calibrator_for,
)
from detector.config import Config, ConfigError, load as load_config
from detector.features.catalog import CATALOG, FEATURES
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.scoring import Policy, Scorer
from detector.store import calibration as calibration_store
from detector.store.db import migrate

BUSIER = 40   # people calling 40 times as often as the prior's: a network unlike its worlds


def busier_world(src: Path, dst: Path, factor: int) -> Path:
    """``src`` with its ordinary subscribers ``factor`` times as busy: each of their calls and
    texts repeated at random moments within the hour around it, to their own contacts (so
    they stay people: repeat contacts, both directions)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("subscribers.csv", "labels.csv"):
        (dst / name).write_bytes((src / name).read_bytes())
    with (src / "labels.csv").open() as fh:
        people = {r["imsi"] for r in csv.DictReader(fh)
                  if r["label"] != "fraud" and r["scenario"] in ("ordinary", "elderly", "dual_sim")}
    with (src / "cdr.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    contacts: dict[str, list[str]] = {}
    for r in rows:
        if r["peer"]:
            contacts.setdefault(r["imsi"], []).append(r["peer"])
    rng = random.Random(1)
    out = []
    for r in rows:
        out.append(r)
        if r["imsi"] in people and r["record_type"] in ("voice", "sms"):
            t = datetime.fromisoformat(r["start_time"].replace("Z", "+00:00"))
            for _ in range(factor - 1):
                c = dict(r, peer=rng.choice(contacts[r["imsi"]]) if r["peer"] else "")
                c["start_time"] = (t + timedelta(seconds=rng.randint(-1800, 1800))).strftime("%Y-%m-%dT%H:%M:%SZ")
                out.append(c)
    out.sort(key=lambda r: r["start_time"])
    with (dst / "cdr.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, header, lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    return dst


def fraud_and_people(world: Path) -> tuple[set[str], set[str]]:
    with (world / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return {r["imsi"] for r in rows if r["label"] == "fraud"}, {r["imsi"] for r in rows if r["label"] != "fraud"}


def scored(world: Path, model_path: Path, calibration: CalibrationPolicy | None,
           person_repeat_share: float = Policy().person_repeat_share):
    loaded = batch.load_files([world / "cdr.csv"], [world / "subscribers.csv"])
    cfg = Config()
    policy = replace(cfg.detector.policy, person_repeat_share=person_repeat_share)
    return batch.score(loaded, model_mod.load(model_path), policy,
                       rig_policy=cfg.detector.rigs, calibration=calibration)


@pytest.fixture(scope="module")
def busy_world(small_world, tmp_path_factory):
    return busier_world(small_world, tmp_path_factory.mktemp("busy"), BUSIER)


def test_a_population_busier_than_the_prior_flags_its_rigs_not_its_people(small_world, busy_world,
                                                                           small_model):
    """People forty times as busy as the prior's: the prior alone flags many of them;
    calibrated to the live network, almost none, and the rigs the prior finds in the quiet
    world are still found (their one-way calling stands out although their volume does
    not: a busier network calls more, not more one-way). The busier people call their own
    contacts again, which the person test (``person_repeat_share``) would spare by itself:
    it is off here, so that calibration is what is judged."""
    fraud, benign = fraud_and_people(busy_world)
    quiet = {f.imsi for f in scored(small_world, small_model, None, 1.0).flags} & fraud
    prior = {f.imsi for f in scored(busy_world, small_model, None, 1.0).flags}
    calibrated = scored(busy_world, small_model, CalibrationPolicy(), 1.0)
    flagged = {f.imsi for f in calibrated.flags}
    assert len(prior & benign) >= 20, "the busier people do look anomalous to the prior"
    assert len(flagged & benign) <= max(2, len(prior & benign) // 10)
    assert len(flagged & quiet) >= 0.9 * len(quiet)
    # with the person test, the prior alone spares them too: their extra calls are repeats
    persons = {f.imsi for f in scored(busy_world, small_model, None).flags}
    assert len(persons & benign) <= len(prior & benign) // 10


def test_drift_names_the_features_the_busier_population_moved(busy_world, small_model):
    loaded = batch.load_files([busy_world / "cdr.csv"], [busy_world / "subscribers.csv"])
    model = model_mod.load(small_model)
    engine = FeatureEngine()
    engine.apply_registrations(loaded.registrations)
    scorer = Scorer(model, Policy())
    cal = calibrator_for(model, scorer.policy, CalibrationPolicy())
    pipe = Pipeline(engine, scorer, calibrator=cal)
    pipe.feed(loaded.cdr)
    status = cal.status()
    assert status["model"] == "calibrated" and status["sim_days"] >= 1000
    assert "voice_out_24h" in status["drifting"]
    assert status["drift"]["voice_out_24h"] >= math.log(3)
    assert status["action"] != "none needed"
    # the scorer uses it: the busier people's volume is the live network's, not the prior's
    ref = scorer.model.manifest["reference"]["voice_out_24h"]
    assert ref["source"] == "live" and ref["p99"] > model.manifest["reference"]["voice_out_24h"]["p99"]


def run(world: Path, model_path: Path, parts: int, policy: CalibrationPolicy) -> Calibrator:
    loaded = batch.load_files([world / "cdr.csv"], [world / "subscribers.csv"])
    model = model_mod.load(model_path)
    engine = FeatureEngine()
    engine.apply_registrations(loaded.registrations)
    scorer = Scorer(model, Policy())
    cal = calibrator_for(model, scorer.policy, policy)
    pipe = Pipeline(engine, scorer, calibrator=cal)
    cdr = loaded.cdr.take(np.argsort(loaded.cdr.ts, kind="stable"))
    for piece in np.array_split(np.arange(len(cdr)), parts):
        pipe.feed(cdr.take(piece))
    return cal


def test_one_batch_or_many_learn_the_same_model(small_world, small_model):
    one = run(small_world, small_model, 1, CalibrationPolicy())
    many = run(small_world, small_model, 7, CalibrationPolicy())
    a, b = one.baseline.window(), many.baseline.window()
    assert np.array_equal(a.imsi, b.imsi) and np.array_equal(a.row_day, b.row_day)
    assert np.array_equal(a.highs, b.highs) and np.array_equal(a.rows, b.rows)
    assert (one.current.sim_days, one.current.at) == (many.current.sim_days, many.current.at)
    assert one.current.sim_days > 0
    probe = a.rows[:200]
    assert np.array_equal(one.current.model.anomaly_score(probe), many.current.model.anomaly_score(probe))


def test_the_sample_follows_at_most_sample_sims_chosen_by_imsi(small_world, small_model):
    cal = run(small_world, small_model, 1, CalibrationPolicy(sample_sims=300, min_sim_days=100))
    followed = cal.baseline.followed
    assert 100 < len(followed) <= 300
    window = cal.baseline.window()
    assert set(window.imsi.tolist()) <= followed
    # the choice is the IMSI's hash: the same SIMs whatever the order of the records
    again = run(small_world, small_model, 5, CalibrationPolicy(sample_sims=300, min_sim_days=100))
    assert again.baseline.followed == followed


def test_flagged_sims_stay_out_of_what_the_population_is_learnt_from(small_world, small_model):
    cal = run(small_world, small_model, 1, CalibrationPolicy())
    window = cal.baseline.window()
    some = set(window.imsi[:50].tolist())
    left = cal.baseline.window(exclude=some)
    assert not some & set(left.imsi.tolist())
    assert left.sim_days == window.sim_days - int(np.isin(window.imsi, list(some)).sum())


reference = st.fixed_dictionaries({
    k: st.floats(0, 1e4, allow_nan=False) for k in ("p001", "p01", "p50", "p99", "p999")})


@settings(max_examples=50, deadline=None)
@given(st.lists(reference, min_size=len(FEATURES), max_size=len(FEATURES)),
       st.lists(reference, min_size=len(FEATURES), max_size=len(FEATURES)))
def test_the_blend_is_never_less_tolerant_than_the_prior(prior_rows, live_rows):
    prior = dict(zip(FEATURES, prior_rows))
    live = dict(zip(FEATURES, live_rows))
    out = blend_reference(prior, live)
    for f in CATALOG:
        got, p, q = out[f.name], prior[f.name], live[f.name]
        if f.family not in CALIBRATED_FAMILIES:
            assert got["source"] == "prior" and got["p99"] == p["p99"]
        elif f.suspicious == "high":      # never below the prior's bar, never above the live's
            assert p["p99"] <= got["p99"] <= max(p["p99"], q["p99"])
            if f.count:                   # a count's tail moves with the population
                assert got["p99"] == max(p["p99"], q["p99"])
            elif p["p50"] > 0 and q["p50"] > 0:   # a ratio's, as far as its median moved
                assert got["p99"] == pytest.approx(max(p["p99"], min(q["p99"], p["p99"] * q["p50"] / p["p50"])))
        elif f.suspicious == "low":
            assert max(p["p01"], q["p01"]) >= got["p01"] >= min(p["p01"], q["p01"])
            assert got["p01"] <= p["p01"]
            if f.count:
                assert got["p01"] == min(p["p01"], q["p01"])
            elif p["p50"] > 0 and q["p50"] > 0:
                assert got["p01"] == pytest.approx(min(p["p01"], max(q["p01"], p["p01"] * q["p50"] / p["p50"])))


def test_a_ratio_whose_tail_alone_moved_keeps_the_prior_bar():
    """Outgoing per incoming call: the live 99th percentile at 225 (the window's gateways and
    call-centre agents) while the median barely moved keeps the prior's bar, scaled by the
    median's shift; a count whose body moved takes the live tail."""
    ref = lambda p50, p99: {"p001": 0.0, "p01": 0.1, "p50": p50, "p99": p99, "p999": p99 * 2}  # noqa: E731
    prior = {f: ref(1.0, 10.0) for f in FEATURES}
    live = {f: ref(1.0, 10.0) for f in FEATURES}
    prior["out_in_ratio_24h"], live["out_in_ratio_24h"] = ref(1.7, 69.0), ref(1.9, 225.0)
    prior["voice_out_24h"], live["voice_out_24h"] = ref(3.0, 61.0), ref(120.0, 522.0)
    out = blend_reference(prior, live)
    assert out["out_in_ratio_24h"]["p99"] == pytest.approx(69.0 * 1.9 / 1.7)
    assert out["voice_out_24h"]["p99"] == 522.0 and out["voice_out_24h"]["source"] == "live"


async def test_a_restart_resumes_the_same_baseline_and_model(small_world, small_model, pg_dsn):
    cal = run(small_world, small_model, 1, CalibrationPolicy())
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrate(conn)
        async with conn.transaction():
            await calibration_store.save(conn, cal)
        cal.saved()
        assert cal.baseline.unsaved() == []
        model = model_mod.load(small_model)
        again = calibrator_for(model, Policy(), CalibrationPolicy())
        await calibration_store.restore(conn, again)
    finally:
        await conn.close()
    a, b = cal.baseline.window(), again.baseline.window()
    assert np.array_equal(np.sort(a.imsi), np.sort(b.imsi)) and a.sim_days == b.sim_days
    assert (again.next_fit, again.first_at, again.first_fit) == (cal.next_fit, cal.first_at, cal.first_fit)
    assert again.current.sim_days == cal.current.sim_days > 0
    probe = a.rows[:300]
    assert np.allclose(again.current.model.anomaly_score(probe), cal.current.model.anomaly_score(probe))
    assert again.current.model.manifest["reference"] == cal.current.model.manifest["reference"]
    assert again.status()["drift"] == cal.status()["drift"]


def test_calibration_is_configured_in_its_own_table(tmp_path):
    path = tmp_path / "goipwatch.toml"
    path.write_text("[detector.calibration]\nevery_s = 7200\nwindow_days = 3\n")
    cfg = load_config(path)
    assert cfg.detector.calibration == CalibrationPolicy(every_s=7200, window_days=3)
    path.write_text("[detector.calibration]\nevery = 7200\n")
    with pytest.raises(ConfigError, match=r"detector\.calibration\.every: unknown key"):
        load_config(path)
    path.write_text("[detector.calibration]\nwindow_days = 0\n")
    with pytest.raises(ConfigError, match="window_days"):
        load_config(path)


def test_off_means_the_model_as_given(small_world, small_model):
    off = scored(small_world, small_model, CalibrationPolicy(enabled=False))
    none = scored(small_world, small_model, None)
    assert [(f.imsi, f.flagged_at, f.score) for f in off.flags] == \
        [(f.imsi, f.flagged_at, f.score) for f in none.flags]
