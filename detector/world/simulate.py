"""Deterministic, vectorised simulator of a mobile carrier with ground truth.

``simulate_world(WorldParams(...), out_dir)`` writes ``cdr.csv``, ``subscribers.csv``,
``labels.csv`` and ``world.json`` (formats in docs/simulator.md). The same parameters give
byte-identical files: every random draw comes from ``numpy.random.Generator(PCG64)`` streams
derived from the seed, and no wall-clock time or hash randomisation reaches the output.

Modules: ``core`` (time, cells, devices, records), ``population`` (benign classes),
``scenarios`` (fraud), ``registration`` (IMSI/MSISDN/ICCID/owner/channel), ``encoding``
(identifiers, CSV formatting).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from detector.world.core import (
    DIRECTIONS,
    RECORD_TYPES,
    RESULTS,
    Cells,
    Ctx,
    Devices,
)
from detector.world.encoding import (
    NUL,
    bytes_column,
    csv_rows,
    fixed_digits,
    iso_scalar,
    iso_seconds,
    str_table,
    var_digits,
)
from detector.world.population import BENIGN_ORDER, GROUPS, World, generate_benign, plan_benign, setup_benign
from detector.world.registration import BRANDS, NET_MNC, register
from detector.world.profile import DEFAULT_PROFILE, random_draw
from detector.world.scenarios import FRAUD_ORDER, generate_fraud, plan_fraud
from detector.world.signalling import ATTACH, CALL, UPDATE, Signalling, world_signalling, write_pcap

CDR_HEADER = "record_type,direction,start_time,duration_s,imsi,msisdn,imei,peer,cell_id,result"
SUBSCRIBERS_HEADER = "imsi,msisdn,iccid,activated_at,id_hash,channel,carrier"
LABELS_HEADER = "imsi,label,scenario,rig_id,first_active,already_running"

BENIGN_MIX_KEYS = tuple(k for k in BENIGN_ORDER if k != "ordinary")
FRAUD_MIX_KEYS = FRAUD_ORDER

# Mix fractions are shares of ``subscribers``. Benign keys split the subscribers (ordinary = rest);
# fraud keys add fraud SIMs on top (at least 2 per scenario whose fraction is > 0).
MIX_PRESETS: dict[str, dict[str, float]] = {
    "default": {
        "elderly": 0.10, "traveller": 0.03, "dual_sim": 0.04, "phone_changer": 0.02,
        "call_centre": 0.004, "courier": 0.006, "taxi": 0.004, "iot_meter": 0.01, "enterprise": 0.008, "shop": 0.006,
        "goip_rotating": 0.0010, "goip_fixed": 0.0008, "goip_evasive": 0.0006, "mobile_rig": 0.0004,
        "sim_bank": 0.0004, "sms_farm": 0.0006, "bulk_cards": 0.0006, "sleeping_card": 0.0003,
    },
    "hard": {
        "elderly": 0.10, "traveller": 0.05, "dual_sim": 0.05, "phone_changer": 0.03,
        "call_centre": 0.02, "courier": 0.025, "taxi": 0.015, "iot_meter": 0.03, "enterprise": 0.025, "shop": 0.02,
        "goip_rotating": 0.0003, "goip_fixed": 0.0005, "goip_evasive": 0.0020, "mobile_rig": 0.0008,
        "sim_bank": 0.0008, "sms_farm": 0.0005, "bulk_cards": 0.0008, "sleeping_card": 0.0006,
    },
}
MIN_FRAUD_SIMS = 2
CDR_CHUNK = 1_000_000


@dataclass(frozen=True, slots=True)
class WorldParams:
    subscribers: int = 10_000  # ordinary + hard-negative subscribers (fraud SIMs come on top, sized by the mix)
    days: int = 2
    seed: int = 1
    mix: str = "default"  # "default" | "hard" | "key=value,..." overrides (a preset name may lead)
    start: str = "2026-10-05T00:00:00Z"  # world start, UTC
    pcap: bool = False  # also write signalling.pcap (GTPv2-C attaches)
    # the hours before ``start`` in archive.csv (and archive.pcap): what mediation and the
    # capture host keep, and a daemon deployed at ``start`` reads first. The world runs from
    # start - archive_hours (rigs may start in it); cdr.csv, signalling.pcap and the labels'
    # first_active begin at ``start``.
    archive_hours: int = 0


@dataclass(frozen=True, slots=True)
class WorldSummary:
    out_dir: Path
    records: int
    subscribers: int  # SIMs in subscribers.csv
    counts: dict[str, int]  # SIMs per scenario/class
    seconds: float


RANDOM = "random"


def resolve_mix(spec: str, seed: int | None = None) -> dict[str, float]:
    """Mix fractions from a preset name and/or ``key=value`` overrides, e.g. ``hard,courier=0.05``.
    ``random`` draws the fractions from the seed (``profile.random_draw``), which it needs."""
    mix = dict(MIX_PRESETS["default"])
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if "=" not in token:
            if token == RANDOM:
                if seed is None:
                    raise ValueError("mix 'random' is drawn from the world's seed; give one")
                mix = dict(random_draw(seed, MIX_PRESETS["default"]).mix)
                continue
            if token not in MIX_PRESETS:
                raise ValueError(f"unknown mix preset {token!r}; presets: "
                                 f"{', '.join((*MIX_PRESETS, RANDOM))}")
            mix = dict(MIX_PRESETS[token])
            continue
        key, _, value = token.partition("=")
        key = key.strip()
        if key not in mix:
            raise ValueError(f"unknown mix key {key!r}; keys: {', '.join(mix)}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"mix value for {key!r} is not a number: {value!r}") from None
        if not 0 <= v <= 1:
            raise ValueError(f"mix value for {key!r} must be in [0, 1], got {v}")
        mix[key] = v
    if sum(mix[k] for k in BENIGN_MIX_KEYS) >= 1:
        raise ValueError("benign mix fractions must sum to less than 1 (ordinary subscribers are the rest)")
    return mix


def mix_counts(mix: dict[str, float], subscribers: int) -> dict[str, int]:
    counts = {k: int(round(mix[k] * subscribers)) for k in BENIGN_MIX_KEYS}
    counts["dual_sim"] -= counts["dual_sim"] % 2  # pairs
    counts["ordinary"] = subscribers - sum(counts.values())
    if counts["ordinary"] < 0:
        raise ValueError("mix leaves no ordinary subscribers")
    for k in FRAUD_MIX_KEYS:
        counts[k] = max(MIN_FRAUD_SIMS, int(round(mix[k] * subscribers))) if mix[k] > 0 else 0
    return {k: counts[k] for k in (*BENIGN_ORDER, *FRAUD_ORDER)}


def _is_random(spec: str) -> bool:
    return RANDOM in (t.strip() for t in spec.split(","))


def _parse_start(start: str) -> int:
    ts = dt.datetime.fromisoformat(start)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone.utc)
    return int(ts.timestamp())


def _service_pool(ctx: Ctx) -> dict[str, np.ndarray]:
    rng = ctx.rng("service-codes")
    return {
        "carrier": np.array([10086, 10010, 10000], dtype=np.int64),
        "bank": np.array([95588, 95599, 95533, 95555, 95566, 95559, 95568, 95595, 95528, 95580, 95561, 95577]),
        "verification": np.concatenate([
            10690000 + rng.choice(10_000, 100, replace=False),
            106900000000 + rng.choice(100_000_000, 300, replace=False),
        ]).astype(np.int64),
        "marketing": (1065500000 + rng.choice(100_000, 50, replace=False)).astype(np.int64),
    }


def simulate_world(params: WorldParams, out_dir: Path) -> WorldSummary:
    t_begin = time.perf_counter()
    if params.subscribers < 10:
        raise ValueError("subscribers must be at least 10")
    if params.days < 1:
        raise ValueError("days must be at least 1")
    if params.archive_hours < 0:
        raise ValueError("archive_hours must not be negative")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = _parse_start(params.start)
    ctx = Ctx(params.seed, start - params.archive_hours * 3600, start + params.days * 86400)
    mix = resolve_mix(params.mix, params.seed)
    counts = mix_counts(mix, params.subscribers)
    drawn = random_draw(params.seed, MIX_PRESETS["default"]) if _is_random(params.mix) else None
    profile = drawn.profile if drawn else DEFAULT_PROFILE

    # ---- who exists
    bplan = plan_benign(ctx, counts, group_base=0, groups=profile.groups)
    fplan = plan_fraud(ctx, counts, first_sim=bplan.n, run_base=1_000_000, scenarios=profile.scenarios)
    n = bplan.n + fplan.n
    fraud = np.zeros(n, dtype=bool)
    fraud[bplan.n :] = True
    n_channels = int(np.clip(params.subscribers // 2000, 20, 800))
    complicit = ctx.rng("channels").choice(n_channels, 3, replace=False)
    reg = register(
        ctx,
        fraud,
        np.concatenate([bplan.owner, fplan.owner]),
        np.concatenate([bplan.owner_is_company, np.zeros(fplan.n, dtype=bool)]),
        np.concatenate([bplan.channel, fplan.channel]),
        np.concatenate([bplan.iccid_run, fplan.iccid_run]),
        n_channels,
        complicit,
    )
    activated = np.concatenate([bplan.activated, fplan.activated])

    # ---- what they do
    cells = Cells.build(ctx.rng("cells"), int(np.clip(params.subscribers // 4, 500, 5000)))
    devices = Devices(ctx.rng("devices"))
    world = World(ctx, bplan, cells, devices, reg.msisdn, _service_pool(ctx), profile)
    setup_benign(world)
    generate_benign(world)
    generate_fraud(world, fplan)
    rec = world.records.concat()
    missing = ctx.rng("imei-missing").random(len(rec["t"])) < GROUPS.imei_missing
    rec["dev"][missing] = -1

    # ---- write
    order = np.argsort(rec["t"], kind="stable")
    imei = devices.imei
    in_world = rec["t"] >= start      # cdr.csv's records; the rest is the archive
    archived = int(len(order) - in_world.sum())   # records before the start lead ``order``
    if params.archive_hours:
        _write_cdr(out_dir / "archive.csv", rec, order[:archived], reg, imei, cells)
    _write_cdr(out_dir / "cdr.csv", rec, order[archived:], reg, imei, cells)
    signalling = _write_signalling(out_dir, ctx, rec, order, bplan, fplan, reg, imei, cells,
                                   since=start, archive=params.archive_hours > 0) if params.pcap else None

    # first fraudulent record per fraud SIM in the world (all records of a fraud SIM are
    # fraudulent activity; those of the archive come before the daemon could see them live)
    first = np.full(n, -1, dtype=np.int64)
    fr = (rec["sim"] >= bplan.n) & in_world
    if fr.any():
        fsim, ft = rec["sim"][fr].astype(np.int64), rec["t"][fr]
        first_t = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_t, fsim, ft)
        seen = first_t < np.iinfo(np.int64).max
        first[seen] = first_t[seen]

    scenario_names = list(BENIGN_ORDER) + list(FRAUD_ORDER)
    scen = np.concatenate([bplan.cls.astype(np.int64), fplan.scenario.astype(np.int64) + len(BENIGN_ORDER)])
    rig_names = [""] + [r.rig_id for r in fplan.rigs]
    rig_code = np.concatenate([np.zeros(bplan.n, dtype=np.int64), fplan.rig + 1])
    _write_subscribers(out_dir / "subscribers.csv", reg, activated)
    # 0/1 per fraud SIM: its rig was already at work when the world starts (no power-on,
    # registration or start of its own is in the world, at most in the archive); 2: benign
    running = np.concatenate([np.full(bplan.n, 2, np.int64),
                              np.array([int(r.start <= start) for r in fplan.rigs], np.int64)[fplan.rig]
                              if len(fplan.rigs) else np.zeros(0, np.int64)])
    _write_labels(out_dir / "labels.csv", reg, fraud, scen, scenario_names, rig_code, rig_names, first,
                  running)

    sim_counts = {name: int((scen == k).sum()) for k, name in enumerate(scenario_names)}
    records_total = int(in_world.sum())
    by_kind: dict[str, int] = {}
    for ti, tname in enumerate(RECORD_TYPES):
        for di, dname in enumerate(DIRECTIONS):
            c = int(((rec["rtype"] == ti) & (rec["direction"] == di) & in_world).sum())
            if c:
                by_kind[f"{tname}_{dname}"] = c
    fraud_records = int(fr.sum())
    meta = {
        "generator": "goipwatch detector.world.simulate",
        "params": {**asdict(params)},
        "seed": params.seed,
        "mix": mix,
        **({"draw": drawn.record} if drawn else {}),
        "counts": sim_counts,
        "sims": {"total": n, "benign": int(bplan.n), "fraud": int(fplan.n),
                 "fraud_share": round(fplan.n / n, 6)},
        "records": {"total": records_total, "fraud": fraud_records, "by_type_direction": by_kind,
                    "archive": archived},
        "span": {
            "start": iso_scalar(start),
            "archive_from": iso_scalar(ctx.start) if params.archive_hours else None,
            "end": iso_scalar(ctx.end),
            "first_record": iso_scalar(int(rec["t"][order[archived]])) if records_total else None,
            "last_record": iso_scalar(int(rec["t"][order[-1]])) if records_total else None,
            "timezone_local": "Asia/Shanghai (UTC+8)",
        },
        "cells": cells.n,
        "channels": n_channels,
        "complicit_channels": [f"CH{int(c):04d}" for c in sorted(complicit)],
        "rigs": [
            {"rig_id": r.rig_id, "scenario": r.scenario, "sims": int(len(r.sims)), "used": int(r.used.sum()),
             "start": iso_scalar(r.start)}
            for r in fplan.rigs
        ],
        "signalling": signalling,
        "files": ["cdr.csv", "subscribers.csv", "labels.csv", "world.json"]
                 + (["signalling.pcap"] if params.pcap else [])
                 + (["archive.csv"] if params.archive_hours else [])
                 + (["archive.pcap"] if params.archive_hours and params.pcap else []),
    }
    (out_dir / "world.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return WorldSummary(out_dir, records_total, n, sim_counts, time.perf_counter() - t_begin)


# --------------------------------------------------------------------------- writers


def _cell_table(cells: Cells) -> np.ndarray:
    """Byte rows ``460-MNC-LAC-CI`` for every (host network, cell): row = net * n + cell."""
    lac = var_digits(cells.lac, 5)
    ci = var_digits(cells.ci, 9)
    dash = np.full((cells.n, 1), ord("-"), dtype=np.uint8)
    rows = []
    for mnc in NET_MNC:
        head = np.frombuffer(f"460-{mnc}-".encode(), dtype=np.uint8)
        rows.append(np.concatenate([np.broadcast_to(head, (cells.n, len(head))), lac, dash, ci], axis=1))
    return np.concatenate(rows, axis=0)


def _write_cdr(path: Path, rec: dict[str, np.ndarray], order: np.ndarray, reg, imei: np.ndarray, cells: Cells) -> None:
    rtypes = str_table(RECORD_TYPES)
    dirs = str_table(DIRECTIONS)
    results = str_table(RESULTS)
    imsi_b = fixed_digits(reg.imsi, 15)
    msisdn_b = fixed_digits(reg.msisdn, 13)
    imei_b = np.concatenate([fixed_digits(imei, 15), np.zeros((1, 15), dtype=np.uint8)])  # last row: empty
    cell_b = _cell_table(cells)
    net = reg.net.astype(np.int64)
    with open(path, "wb") as f:
        f.write((CDR_HEADER + "\n").encode())
        for i in range(0, len(order), CDR_CHUNK):
            idx = order[i : i + CDR_CHUNK]
            sim = rec["sim"][idx].astype(np.int64)
            dev = rec["dev"][idx].astype(np.int64)
            dev = np.where(dev < 0, len(imei), dev)
            cols = [
                rtypes[rec["rtype"][idx]],
                dirs[rec["direction"][idx]],
                iso_seconds(rec["t"][idx]),
                var_digits(rec["dur"][idx], 6),
                imsi_b[sim],
                msisdn_b[sim],
                imei_b[dev],
                var_digits(rec["peer"][idx], 13),
                cell_b[net[sim] * cells.n + rec["cell"][idx]],
                results[rec["result"][idx]],
            ]
            f.write(csv_rows(cols))


def _write_signalling(out_dir: Path, ctx: Ctx, rec, order, bplan, fplan, reg, imei: np.ndarray,
                      cells: Cells, since: int, archive: bool) -> dict:
    """signalling.pcap from ``since`` on and, with an archive, archive.pcap before it (the
    capture host's ring buffer of rotated files); the counts are signalling.pcap's."""
    row = reg.net.astype(np.int64)[rec["sim"]] * cells.n + rec["cell"]
    used, inv = np.unique(row, return_inverse=True)
    names = [bytes(r).replace(b"\0", b"").decode() for r in _cell_table(cells)[used]]
    sig = world_signalling(ctx, {**rec, "cell": inv}, order, bplan, fplan)
    live = sig.t_us >= since * 1_000_000

    def part(mask: np.ndarray) -> Signalling:
        return Signalling(*(getattr(sig, f.name)[mask] for f in dataclasses.fields(Signalling)))

    out = {}
    if archive:
        out["archive_frames"] = write_pcap(out_dir / "archive.pcap", part(~live), reg.imsi,
                                           reg.msisdn, imei, names)
    sig = part(live)
    frames = write_pcap(out_dir / "signalling.pcap", sig, reg.imsi, reg.msisdn, imei, names)
    counts = np.bincount(sig.what, minlength=3)
    return {"file": "signalling.pcap", "frames": frames, "attaches": int(counts[ATTACH]),
            "imei_checks": int(((sig.what == ATTACH) & (sig.dev >= 0)).sum()),
            "location_updates": int(counts[UPDATE]), "call_setups": int(counts[CALL]), **out}


def _write_subscribers(path: Path, reg, activated: np.ndarray) -> None:
    n = len(reg.imsi)
    ch = np.concatenate([np.broadcast_to(np.frombuffer(b"CH", dtype=np.uint8), (n, 2)),
                         fixed_digits(reg.channel, 4)], axis=1)
    cols = [
        fixed_digits(reg.imsi, 15),
        fixed_digits(reg.msisdn, 13),
        np.concatenate([var_digits(reg.iccid_body, 19), fixed_digits(reg.iccid_check, 1)], axis=1),
        iso_seconds(activated),
        bytes_column(reg.id_hash),
        ch,
        str_table(BRANDS)[reg.brand],
    ]
    with open(path, "wb") as f:
        f.write((SUBSCRIBERS_HEADER + "\n").encode())
        f.write(csv_rows(cols))


def _write_labels(path: Path, reg, fraud, scen, scenario_names, rig_code, rig_names, first,
                  running) -> None:
    labels = str_table(["benign", "fraud"])[fraud.astype(np.int64)]
    fa = iso_seconds(np.maximum(first, 0))
    fa[first < 0] = NUL
    cols = [
        fixed_digits(reg.imsi, 15),
        labels,
        str_table(scenario_names)[scen],
        str_table(rig_names)[rig_code],
        fa,
        str_table(["0", "1", ""])[running],
    ]
    with open(path, "wb") as f:
        f.write((LABELS_HEADER + "\n").encode())
        f.write(csv_rows(cols))
