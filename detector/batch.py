"""Batch commands over CSV files: ``goipwatch score`` and ``goipwatch train``.

Both replay the files in event-time order through :class:`detector.pipeline.Pipeline`, the
same path the daemon takes; nothing here computes a feature or a flag itself.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from detector import model as model_mod
from detector.calibration import CalibrationPolicy, calibrator_for
from detector.config import Config, FeatureConfig
from detector.features.catalog import FEATURES
from detector.features.engine import FeatureEngine
from detector.flags import Flag, Rig
from detector.pipeline import SCORING_INTERVAL_S, Pipeline, training_rows
from detector.records import CdrBatch, RegistrationBatch, Rejected, iso
from detector.rigs.book import RigBook
from detector.rigs.policy import RigPolicy
from detector.scoring import Policy, Scorer
from detector.wording import counted
from probes.cdrfile import read_cdr_file
from probes.csvparse import CANONICAL, Layout, read_feed_file
from probes.feedcheck import split_reason
from probes.signalling.capture import read_capture
from probes.signalling.observations import observations

FLAGS_HEADER = ("imsi", "msisdn", "score", "flagged_at", "rig_id", "reasons")
REJECTED_HEADER = ("source", "line", "reason", "raw")


@dataclass(frozen=True, slots=True)
class Loaded:
    cdr: CdrBatch
    registrations: RegistrationBatch | None
    rejected: tuple[Rejected, ...]


def load_files(cdr_paths: list[Path], subscriber_paths: list[Path] = (),
               cdr_layout: Layout = CANONICAL, reg_layout: Layout = CANONICAL,
               capture_paths: list[Path] = ()) -> Loaded:
    """CDR and registration files, and captures whose signalling events join the CDRs as
    observations (cells, devices, attaches), as the daemon's pcap probe does."""
    rejected: list[Rejected] = []
    cdr = []
    for p in cdr_paths:
        for parsed in read_cdr_file(Path(p), cdr_layout):
            cdr.append(parsed.batch)
            rejected += parsed.rejected
    for p in capture_paths:
        capture = read_capture(p)
        if capture.error:
            rejected.append(Rejected(str(p), 0, capture.error, ""))
        cdr.append(observations(capture.events, str(p)).batch)
    regs = []
    for p in subscriber_paths:
        for parsed in read_feed_file(Path(p), "registrations", reg_layout):
            regs.append(parsed.batch)
            rejected += parsed.rejected
    reg = None
    if regs:
        reg = RegistrationBatch(**{
            f: np.concatenate([getattr(r, f) for r in regs])
            for f in ("imsi", "msisdn", "iccid", "activated_at", "id_hash", "channel", "carrier", "line")
        })
    return Loaded(CdrBatch.concat(cdr), reg, tuple(rejected))


def _engine(loaded: Loaded, features: FeatureConfig) -> FeatureEngine:
    engine = features.engine()
    if loaded.registrations is not None:
        engine.apply_registrations(loaded.registrations)
    return engine


def train_on(loaded: Loaded, *, seed: int = 0, interval_s: int = SCORING_INTERVAL_S,
             features: FeatureConfig = FeatureConfig(), start: int | None = None,
             end: int | None = None
             ) -> model_mod.TrainedModel:
    """Fit a model on the records in [start, end) of event time (all when not given)."""
    cdr = loaded.cdr
    if start is not None or end is not None:
        keep = (cdr.ts >= (start if start is not None else cdr.ts.min())) & \
               (cdr.ts < (end if end is not None else cdr.ts.max() + 1))
        cdr = cdr.take(keep)
    if not len(cdr):
        raise model_mod.ModelError("no records in the training window")
    engine = _engine(loaded, features)
    data = training_rows(engine, [cdr], interval_s, seed=seed)
    window = (iso(cdr.ts.min()), iso(cdr.ts.max()))
    return model_mod.fit(data.rows, window=window, seed=seed, highs=data.highs, lows=data.lows)


@dataclass(frozen=True, slots=True)
class Scored:
    flags: list[Flag]
    rigs: list[Rig]


def score(loaded: Loaded, model: model_mod.TrainedModel, policy: Policy, *,
          rig_policy: RigPolicy = RigPolicy(), interval_s: int = SCORING_INTERVAL_S,
          features: FeatureConfig = FeatureConfig(),
          calibration: CalibrationPolicy | None = None) -> Scored:
    engine = features.engine()
    scorer = Scorer(model, policy)
    calibrator = calibrator_for(model, policy, calibration)
    pipe = Pipeline(engine, scorer, interval_s, rigs=RigBook(engine, scorer, rig_policy),
                    calibrator=calibrator)
    if loaded.registrations is not None:
        pipe.register(loaded.registrations)
    flags = pipe.feed(loaded.cdr).flags
    flags += pipe.score_dirty()
    # rigs grow after their first flags: give every flag its rig's final id
    flags = [replace(f, rig_id=pipe.rigs.rig_of(f.imsi)) for f in flags]
    return Scored(sorted(flags, key=lambda f: (f.flagged_at, f.imsi)), pipe.rigs.rigs())


def read_labels(path: Path) -> dict[str, int]:
    """Analysts' verdicts as a CSV with ``imsi`` and ``label`` (``fraud``/``confirm``/``1`` or
    ``benign``/``dismiss``/``0``); a simulated world's labels.csv is one."""
    truth = {"fraud": 1, "confirm": 1, "1": 1, "benign": 0, "dismiss": 0, "0": 0}
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"imsi", "label"} <= set(reader.fieldnames):
            raise model_mod.ModelError(f"{path}: needs the columns imsi and label")
        out = {}
        for n, row in enumerate(reader, start=2):
            if row["label"].strip().lower() not in truth:
                raise model_mod.ModelError(f"{path}:{n}: label {row['label']!r} is not one of "
                                           f"{', '.join(truth)}")
            out[row["imsi"].strip()] = truth[row["label"].strip().lower()]
    return out


def add_reranker(loaded: Loaded, trained: model_mod.TrainedModel, labels: dict[str, int],
                 cfg: Config) -> model_mod.TrainedModel:
    """Fit the supervised layer on the labelled flags that ``trained`` raises on ``loaded``."""
    kw = dict(interval_s=cfg.detector.scoring_interval_s, features=cfg.features)
    flags = [f for f in score(loaded, trained, cfg.detector.policy, rig_policy=cfg.detector.rigs,
                              **kw).flags if f.features and f.imsi in labels]
    values = np.array([[f.features[name] for name in FEATURES] for f in flags]).reshape(-1, len(FEATURES))
    return model_mod.with_reranker(trained, values, np.array([f.score for f in flags]),
                                   np.array([labels[f.imsi] for f in flags]))


def detect(loaded: Loaded, cfg: Config, model_path: Path | None = None, seed: int = 0,
           fit_on_input: bool = False) -> Scored:
    """``goipwatch score``: the model at ``model_path`` (default: the configured one, else the
    shipped one) calibrated to the input's population as it is replayed, as the daemon does;
    or, with ``fit_on_input``, a model fitted on the whole input first. Then the replay, with
    the settings of ``cfg``."""
    kw = dict(interval_s=cfg.detector.scoring_interval_s, features=cfg.features)
    if not len(loaded.cdr):
        raise model_mod.ModelError("no records to score: the input holds none that could be read")
    if fit_on_input:
        return score(loaded, train_on(loaded, seed=seed, **kw), cfg.detector.policy,
                     rig_policy=cfg.detector.rigs, **kw)
    trained = model_mod.load(model_path or model_mod.default_path(cfg.detector.model))
    return score(loaded, trained, cfg.detector.policy, rig_policy=cfg.detector.rigs,
                 calibration=cfg.detector.calibration, **kw)


def write_outputs(scored: Scored, out: Path) -> None:
    """flags.csv (the contract) and, beside it, ``<name>.rigs.jsonl``."""
    write_flags(scored.flags, out)
    write_rigs(scored.rigs, out.with_name(out.stem + ".rigs.jsonl"))


def write_flags(flags: list[Flag], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(FLAGS_HEADER)
        for f in flags:
            w.writerow((f.imsi, f.msisdn, f"{f.score:.4f}", iso(f.flagged_at), f.rig_id,
                        " | ".join(f.reasons)))


def write_rigs(rigs: list[Rig], out: Path) -> None:
    """One JSON object per rig: id, SIMs, devices, cells, window and evidence."""
    with out.open("w") as fh:
        for r in rigs:
            fh.write(json.dumps({"rig_id": r.id, "sims": sorted(r.sims), "devices": sorted(r.devices),
                                 "cells": sorted(r.cells), "first": iso(r.first), "last": iso(r.last),
                                 "evidence": r.summary()}) + "\n")


def write_rejected(rejected: tuple[Rejected, ...], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(REJECTED_HEADER)
        for r in rejected:
            w.writerow((r.source, r.line, r.reason, r.raw))


def reason_kind(reason: str) -> str:
    """A rejection reason without the value it quotes, so that rows refused for the same cause
    count together ("imsi: '8800' must be 15 digits" -> "imsi: … must be 15 digits")."""
    return split_reason(reason)[0]


def report_rejected(rejected: tuple[Rejected, ...], where: Path, read: int | None = None,
                    top: int = 3) -> None:
    """Write the rejected rows with their reasons to ``where`` (always, also when every row was
    refused, so that the reasons are never lost) and say how many and the commonest reasons."""
    write_rejected(rejected, where)
    if not rejected:
        return
    kinds = Counter(reason_kind(r.reason) for r in rejected).most_common(top)
    of = f" of {read + len(rejected)}" if read is not None else ""
    print(f"{counted(len(rejected), 'input row')}{of} rejected; kept with their reasons in {where}; "
          "commonest: " + "; ".join(f"{k} ({n})" for k, n in kinds), file=sys.stderr)
