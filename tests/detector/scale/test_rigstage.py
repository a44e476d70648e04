"""The rig stage on summaries made by a real worker partition (the worker's pipeline, codec
and the rig stage's RigBook, in this process; no stream needed): cell indices of the SIM
records are renamed into the stage's table, and a worker's flags keep what the rig book
reads from them."""

import numpy as np
import pytest

from detector import config as config_mod
from detector import model as model_mod
from detector.features.engine import FeatureEngine
from detector.records import RecordType
from detector.rigs.common import watched_s
from detector.rigs.hot_cells import absence_is_evidence
from detector.scale import codec
from detector.scale.partition import partition_of
from detector.scale.publisher import Clock, cut, split
from detector.scale.rigstage import RigStage
from detector.scale.worker import make_partition
from detector.scoring import Scorer
from detector.testing import START, cdr_batch, gateway_rows, imei, imsi
from tests.detector.rigs.cases import registrations
from tests.detector.scale.conftest import write_scale_config

GATEWAY_CELL, BURST_CELL = "460-00-500-2", "460-00-777-9"


@pytest.fixture
def cfg(small_model, tmp_path):
    return config_mod.load(write_scale_config(tmp_path, "postgresql://unused/none", small_model,
                                              "S", "s", partitions=1))


def run(cfg, rows, regs=None):
    """Rows through one worker partition (as the publisher would send them), its summaries
    through the rig stage; returns (partition, stage, the worker's flags, the stage's)."""
    [part], stage, worker_flags, rig_flags = run_partitions(cfg, rows, regs)
    return part, stage, worker_flags, rig_flags


def run_partitions(cfg, rows, regs=None):
    """Rows through every partition of ``cfg`` (split as the publisher splits them), their
    summaries through the rig stage; returns (partitions, stage, the workers' flags, the
    stage's)."""
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    parts = [make_partition(cfg, scorer, p) for p in range(cfg.scale.partitions)]
    stage = RigStage(cfg)
    msgs = [[] for _ in parts]
    if regs is not None:
        stage.book.register(regs)   # the stage reads them from the store; the worker gets a reg message
        owner = partition_of(regs.imsi, len(parts))
        for p in np.unique(owner):
            mine = owner == p
            msgs[p].append(codec.encode("reg", {"source": "subs.csv"}, {
                "imsi": regs.imsi[mine], "msisdn": regs.msisdn[mine], "activated_at": regs.activated_at[mine],
                "id_cards": np.full(int(mine.sum()), len(regs), np.int32),
                "id_key": np.array([FeatureEngine.id_key(h) for h in regs.id_hash[mine]], np.int64)}))
    clock = Clock()
    for step, value in cut(cdr_batch(rows), clock, cfg.detector.scoring_interval_s,
                           cfg.features.lateness_s):
        if step == "tick":
            for m in msgs:
                m.append(codec.encode("tick", {"at": value}))
            continue
        for p, piece in split(value[0], len(parts)).items():
            msgs[p].append(codec.encode("cdr", {"source": "cdr.csv", "cells": piece["cells"],
                                                "watermark": clock.watermark}, piece["columns"]))
    for part, mine in zip(parts, msgs):
        mine.append(codec.encode("flush", {"watermark": clock.watermark}))
        for seq, data in enumerate(mine, 1):
            part.apply(seq, data)
        assert part.counters.get("bad_messages", 0) == 0
    rig_flags = []
    summaries = [data for part in parts for data in part.outbox]   # one partition after another
    for seq, data in enumerate(summaries, 1):
        stage.offer(seq, data)
        while (key := stage.ready()) is not None:
            rig_flags += stage.step(key)[0]
    assert not stage.quarantine and not stage.pending
    return parts, stage, [f for part in parts for f in part.pending.flags], rig_flags


def test_the_power_on_cell_is_renamed_into_the_stage_table(cfg):
    sims = [int(imsi(100 + i)) for i in range(8)]
    ports = [int(imei(900 + p, tac="86000001")) for p in range(4)]
    # other SIMs first, so that the partition's cell table differs from any summary's
    rows = [(START - 3000 + 60 * k, int(imsi(50 + k)), int(imei(50 + k)), f"460-00-1-{k}",
             8613900000000 + k, 0, 0, 0, 30) for k in range(5)]
    rows += gateway_rows(sims, ports, GATEWAY_CELL)
    for burst in (START + 600, START + 2 * 3600 + 600):   # the box powers on twice
        rows += [(burst + 3 * i, s, ports[i % 4], BURST_CELL, 0, 0, int(RecordType.ATTACH), 0, 0)
                 for i, s in enumerate(sims)]
    part, stage, _, _ = run(cfg, rows)
    worker_state = part.engine.sim_state[part.engine.sims.lookup(np.array(sims, np.int64))]
    assert (worker_state["sync_ts"] > 0).all()
    assert part.engine.cells[BURST_CELL] not in (0, 1), "partition index differs from the stage's"
    names = list(stage.engine.cells)
    slots = stage.engine.sims.lookup(np.array(sims, np.int64))
    assert (slots >= 0).all(), "the gateway's SIMs reached the rig stage"
    assert [names[c] for c in stage.engine.sim_state["sync_cell"][slots]] == [BURST_CELL] * len(sims)


def test_a_worker_flagged_card_brings_its_bulk_run_in_the_rig_stage(cfg):
    cards = [int(imsi(400 + i)) for i in range(10)]
    regs = registrations(cards, "bad5eed" * 3, 898600200000000000, "CH0666", START - 3 * 3600)
    # one card in use, alone in its cell: only its worker flags it (no co-located peers)
    rows = gateway_rows(cards[:1], [int(imei(800, tac="86000003"))], GATEWAY_CELL)
    _, _, worker_flags, rig_flags = run(cfg, rows, regs)
    assert [(f.imsi, f.kind) for f in worker_flags] == [(str(cards[0]), "sim_anomaly")]
    assert worker_flags[0].features
    assert {f.kind for f in rig_flags} == {"bulk_registration"}
    assert {f.imsi for f in rig_flags} == {str(c) for c in cards[1:]}
    assert "10 cards on one ID document" in rig_flags[0].reasons[0]


def test_the_stage_watches_the_network_from_its_first_step(cfg):
    """Rules that wait until the network has been watched a while (absence of data and
    calls, callers so far) wait in the rig stage too at a first start: its clock starts with
    its first step, not at the epoch."""
    rows = [(START + 600 * k, int(imsi(60 + k % 3)), int(imei(60 + k % 3)), "460-00-1-1",
             8613900000000 + k, 0, 0, 0, 30) for k in range(12)]
    _, stage, _, _ = run(cfg, rows)
    watched = watched_s(stage.engine)
    assert 0 < watched <= 2 * 3600 < cfg.detector.rigs.absence_after_s
    assert not absence_is_evidence(stage.engine, stage.book.policy)


@pytest.mark.parametrize("damage, reason", [
    (dict(top=2), "top_cell index outside its table of 2 cells"),
    (dict(sync=(850, 9)), "sync_cell index outside its table of 2 cells"),
    (dict(flags=[{"imsi": "460000000000001"}]), "flag 0: keys"),
])
def test_a_malformed_summary_is_quarantined_and_the_stage_goes_on(cfg, damage, reason):
    from tests.detector.scale.test_codec import _sum

    stage = RigStage(cfg)
    stage.offer(1, _sum(**damage)[0])
    stage.offer(2, _sum(sync=(850, 1))[0])       # the same step, intact
    [bad] = stage.quarantine
    assert bad.source == "summary seq 1" and reason in bad.reason
    key = stage.ready()
    assert key == (900, 0)
    stage.step(key)
    assert stage.counters["steps"] == 1 and stage.counters["bad_messages"] == 1
    names = list(stage.engine.cells)
    slot = stage.engine.sims.lookup(np.array([460000000000001], np.int64))[0]
    assert names[stage.engine.sim_state["sync_cell"][slot]] == "c1"


async def test_a_restarted_rig_stage_writes_the_same_rigs_as_an_uninterrupted_one(cfg, pg_dsn):
    """A box that powers on twice: the rig stage flags its SIMs first (``rig``), their workers
    flag them too a few minutes later (``sim_anomaly``) and, running ahead, commit those
    first. A rig stage restarted mid-stream takes up each SIM's earlier flag again: the
    rig's first activity, and so its evidence text, is the uninterrupted stage's."""
    from detector.scale.publisher import record_stream
    from detector.store.checkpoint import save_flags
    from detector.store.db import connect

    sims = [int(imsi(100 + i)) for i in range(8)]
    ports = [int(imei(900 + p, tac="86000001")) for p in range(4)]
    rows = gateway_rows(sims, ports, GATEWAY_CELL)
    for burst in (START + 600, START + 2 * 3600 + 600):
        rows += [(burst + 3 * i, s, ports[i % 4], BURST_CELL, 0, 0, int(RecordType.ATTACH), 0, 0)
                 for i, s in enumerate(sims)]
    part, calm, worker_flags, rig_flags = run(cfg, rows)
    expected = [r.summary() for r in calm.book.rigs()]
    first_by_stage = {f.imsi for f in rig_flags if f.kind == "rig"}
    later_by_worker = [f.flagged_at for f in worker_flags if f.imsi in first_by_stage]
    assert later_by_worker, "SIMs flagged by the rig stage first, then by their worker"
    summaries = list(enumerate(part.outbox, 1))

    pool = await connect(pg_dsn)
    try:
        await record_stream(pool, cfg.scale)
        async with pool.acquire() as conn:
            await save_flags(conn, worker_flags)       # the workers ran ahead
        stage = RigStage(cfg)
        await stage.restore(pool)
        restarted_at = None
        for seq, data in summaries:
            if restarted_at is None and stage.done[0] >= max(later_by_worker):
                restarted_at = seq       # a restart once the store holds both flags of those SIMs
                stage = RigStage(cfg)
                await stage.restore(pool)
                assert stage.handled_seq == seq - 1
            stage.offer(seq, data)
            while (key := stage.ready()) is not None:
                await stage.save(pool, *stage.step(key))
        stored = [r["evidence"] for r in await pool.fetch("SELECT evidence FROM rigs ORDER BY first_at, id")]
        flags = {(str(r["imsi"]), r["kind"]): int(r["flagged_at"].timestamp())
                 for r in await pool.fetch("SELECT imsi, kind, flagged_at FROM flags")}
    finally:
        await pool.close()
    assert restarted_at is not None and restarted_at < len(summaries)
    assert [r.summary() for r in stage.book.rigs()] == expected
    assert stored == expected
    assert {k: v for k, v in flags.items() if k[1] != "sim_anomaly"} == \
        {(f.imsi, f.kind): f.flagged_at for f in rig_flags}


def first_flags(flags):
    out = {}
    for f in sorted(flags, key=lambda f: f.flagged_at):
        out.setdefault(f.imsi, f)
    return {imsi: (f.flagged_at, f.kind, f.reasons[0]) for imsi, f in out.items()}


def test_a_modem_pool_across_partitions_is_found_as_the_daemon_finds_it(small_model, tmp_path):
    """Four modems of one model in one cell that take verification codes and nothing else,
    their SIMs in different partitions, beside people who keep a second SIM for codes: the
    rig stage counts the whole pool (a worker summarises every SIM that took a code, with or
    without evidence of its own) and keeps the daemon's clock, so it flags the pool at the
    daemon's time with the daemon's words."""
    from detector.pipeline import Pipeline
    from detector.rigs.book import RigBook

    cfg = config_mod.load(write_scale_config(tmp_path, "postgresql://unused/none", small_model,
                                             "S", "s", partitions=3))
    pool = [int(imsi(700 + i)) for i in range(4)]
    devs = [int(imei(700 + i, tac="86104542")) for i in range(4)]
    people = [int(imsi(720 + i)) for i in range(3)]
    people_devs = [int(imei(720 + i, tac=f"3533{i:04d}")) for i in range(3)]
    assert len(set(partition_of(np.array(pool, np.int64), 3))) >= 2, "the pool spans partitions"
    wait = cfg.detector.rigs.absence_after_s // len(pool)
    rows = [(t0 + 600 * k + 60 * i, s, d, "460-00-530-1", 10690000 + k, 1, 1, 4, 0)
            for t0 in (START - 6 * 3600, START - 6 * 3600 + wait)
            for i, (s, d) in enumerate(zip(pool + people, devs + people_devs)) for k in range(3)]
    engine = cfg.features.engine()
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    daemon = Pipeline(engine, scorer, cfg.detector.scoring_interval_s,
                      rigs=RigBook(engine, scorer, cfg.detector.rigs))   # as goipwatch score runs it
    expected = first_flags(daemon.feed(cdr_batch(rows)).flags + daemon.score_dirty())
    assert set(expected) == {str(s) for s in pool}
    assert all("devices of one model" in why for _, _, why in expected.values())
    _, stage, worker_flags, rig_flags = run_partitions(cfg, rows)
    assert first_flags(worker_flags + rig_flags) == expected
    assert stage.engine.watermark == daemon.engine.watermark
    assert stage.engine.observed_from == daemon.engine.observed_from


def _box_calling_across_partitions(small_model, tmp_path):
    """A box imitating people (human-like days in one cell, its SIMs calling and texting
    each other, a fourth SIM on another carrier's cell calling two of them), each of its
    SIMs in a partition of its own (8 partitions), beside people calling each other from
    cells of their own, a family on one ID document and friends called by others
    (tests/detector/rigs/test_calling_groups.py); returns (config, rows, registrations,
    the box's IMSIs)."""
    from tests.detector.rigs.test_calling_groups import _called_by_others, _calling_circle, _people_days

    cfg = config_mod.load(write_scale_config(tmp_path, "postgresql://unused/none", small_model,
                                             "S", "s", partitions=8))
    rng = np.random.default_rng(5)
    day0 = START - 9 * 3600
    box = [int(imsi(800 + i)) for i in range(4)]
    apart = [int(imsi(820 + i)) for i in range(3)]
    family = [int(imsi(840 + i)) for i in range(3)]
    friends = [int(imsi(850 + i)) for i in range(3)]
    everyone = box + apart + family + friends
    assert len(set(partition_of(np.array(box, np.int64), 8))) == 4, "each of the box's SIMs in a partition of its own"
    devs = {s: int(imei(s % 1000, tac="35209900")) for s in everyone}
    number = {s: 8613000000000 + s % 10**11 for s in everyone}
    regs = registrations(family, "family-id", 898600000000840, "CH0001", START - 400 * 86400)
    home = {s: "460-00-530-1" for s in box[:3]} | {box[3]: "460-11-535-1"} | \
        {s: f"460-00-540-{i}" for i, s in enumerate(apart)} | {s: "460-00-550-1" for s in family} | \
        {s: "460-00-545-1" for s in friends}
    rows = _people_days(everyone, box, devs, home, day0, rng, 8613830000000)
    rows += _called_by_others(friends, devs, home, day0 + 10 * 3600, 8613890000000)
    for group in (box[:3], apart, family, friends):
        rows += _calling_circle(group, [devs[s] for s in group], [home[s] for s in group],
                                day0 + 9 * 3600, number)
    rows += _calling_circle([box[3], box[0], box[1]], [devs[box[3]], devs[box[0]], devs[box[1]]],
                            [home[box[3]], home[box[0]], home[box[1]]], day0 + 13 * 3600, number)
    return cfg, rows, regs, box


@pytest.mark.parametrize("chunk", [None, (1, 2)])
def test_a_calling_group_across_partitions_is_found_as_the_daemon_finds_it(small_model, tmp_path, monkeypatch,
                                                                           chunk):
    """No worker sees a contact between two of the box's partitions; the rig stage joins
    them by number, so the box is flagged SIM by SIM at the daemon's times with the
    daemon's words, and no one else is. The same when each summary is cut into chunks of
    one SIM and two contacts (the rig stage waits for every chunk of a step)."""
    from detector.pipeline import Pipeline
    from detector.rigs.book import RigBook
    from detector.scale import summaries

    if chunk is not None:
        monkeypatch.setattr(summaries, "CHUNK_SIMS", chunk[0])
        monkeypatch.setattr(summaries, "CHUNK_CONTACTS", chunk[1])

    cfg, rows, regs, box = _box_calling_across_partitions(small_model, tmp_path)
    engine = cfg.features.engine()
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    daemon = Pipeline(engine, scorer, cfg.detector.scoring_interval_s,
                      rigs=RigBook(engine, scorer, cfg.detector.rigs))   # as goipwatch score runs it
    daemon.register(regs)
    expected = first_flags(daemon.feed(cdr_batch(rows)).flags + daemon.score_dirty())
    assert set(expected) == {str(s) for s in box}
    assert all("call and text each other from the same cells" in why for _, _, why in expected.values())
    parts, stage, worker_flags, rig_flags = run_partitions(cfg, rows, regs)
    if chunk is not None:
        assert max(codec.decode(d).fields["chunks"] for p in parts for d in p.outbox) > 2
    assert first_flags(worker_flags + rig_flags) == expected
    [rig] = stage.book.rigs()
    assert rig.sims == {str(s) for s in box}


def test_without_calling_groups_the_stage_gets_no_callers_nor_contacts(small_model, tmp_path):
    """``[scale] calling_groups = false``: the workers send neither their callers nor their
    contacts with other partitions, and the box whose SIMs are in four partitions is not
    found (its SIMs have no evidence of their own)."""
    from dataclasses import replace

    cfg, rows, regs, box = _box_calling_across_partitions(small_model, tmp_path)
    cfg = replace(cfg, scale=replace(cfg.scale, calling_groups=False))
    parts, stage, worker_flags, rig_flags = run_partitions(cfg, rows, regs)
    msgs = [codec.decode(d) for p in parts for d in p.outbox]
    assert not any(len(m.columns["contact_imsi"]) for m in msgs)
    assert len(stage.engine.sims) < len(set(r[1] for r in rows)) / 2
    assert not {f.imsi for f in worker_flags + rig_flags} & {str(s) for s in box}


async def _replayed_with_restarts(pool, cfg, parts, every: int, regs=None):
    """The partitions' summaries through a rig stage that saves each step and is restarted
    from its checkpoint every ``every`` steps (between two steps), as the stream delivers
    them: step by step, the partitions' summaries of a step together. The last stage and
    how many were started."""
    from detector.scale.publisher import record_stream

    summaries = sorted((data for part in parts for data in part.outbox),
                       key=lambda d: (codec.decode(d).fields["at"], codec.decode(d).fields["step"] == "flush"))
    await record_stream(pool, cfg.scale)
    restarts, stage, steps = 0, None, 0
    for seq, data in enumerate(summaries, 1):
        if stage is None or steps >= every and not stage.pending:
            stage = RigStage(cfg)
            await stage.restore(pool)
            assert stage.handled_seq == seq - 1
            if regs is not None:
                stage.book.register(regs)   # the store's registrations, as the publisher puts them
            restarts, steps = restarts + 1, 0
        stage.offer(seq, data)
        while (key := stage.ready()) is not None:
            await stage.save(pool, *stage.step(key))
            steps += 1
    return stage, restarts


async def test_a_restarted_rig_stage_keeps_the_contacts_between_partitions(small_model, tmp_path, pg_dsn):
    """The rig stage restarted every few steps (its checkpoint: the contacts of the day, and
    the SIMs it holds by their number) finds the calling group across partitions with the
    flags and rig evidence of a stage that never stopped."""
    from detector.store.db import connect

    cfg, rows, regs, box = _box_calling_across_partitions(small_model, tmp_path)
    parts, calm, _, rig_flags = run_partitions(cfg, rows, regs)
    expected = [r.summary() for r in calm.book.rigs()]
    assert {f.imsi for f in rig_flags} == {str(s) for s in box}
    pool = await connect(pg_dsn)
    try:
        stage, restarts = await _replayed_with_restarts(pool, cfg, parts, every=7, regs=regs)
        stored = [r["evidence"] for r in await pool.fetch("SELECT evidence FROM rigs ORDER BY first_at, id")]
        flags = {(str(r["imsi"]), r["kind"]): int(r["flagged_at"].timestamp())
                 for r in await pool.fetch("SELECT imsi, kind, flagged_at FROM flags")}
    finally:
        await pool.close()
    assert restarts > 5
    assert [r.summary() for r in stage.book.rigs()] == expected
    assert stored == expected
    assert flags == {(f.imsi, f.kind): f.flagged_at for f in rig_flags}


def _bank_across_partitions(small_model, tmp_path):
    """A SIM bank: two ports, each rotating four SIMs of its own through the day (each SIM
    is only ever in its one port; the port is the device), the SIMs of each port in at least
    two of 4 partitions; beside people calling from phones of their own and a family phone
    that two SIMs in two partitions take turns in. Returns (config, rows, the bank's
    IMSIs, the family's)."""
    cfg = config_mod.load(write_scale_config(tmp_path, "postgresql://unused/none", small_model,
                                             "S", "s", partitions=4))
    bank = [int(imsi(600 + i)) for i in range(8)]
    ports = [int(imei(600 + p, tac="86000003")) for p in range(2)]
    owner = partition_of(np.array(bank, np.int64), 4)
    assert all(len(set(owner[4 * p:4 * p + 4])) >= 2 for p in range(2)), "each port's SIMs span partitions"
    rows = []
    for p, dev in enumerate(ports):
        rows += gateway_rows(bank[4 * p:4 * p + 4], [dev], "460-00-600-1", hours=6, gap_s=90,
                             rotate_s=1800, victim0=8613500000000 + p * 10**6)
    rng = np.random.default_rng(3)
    for i in range(30):     # people: a few calls and texts a day from their own phones
        s, d = int(imsi(900 + i)), int(imei(900 + i))
        rows += [(START + int(rng.integers(0, 6 * 3600)), s, d, f"460-00-7{i:02d}-1",
                  8613600000000 + 100 * i + k, 0, int(k % 3 == 0), 0, 60) for k in range(12)]
    family = [int(imsi(960)), int(imsi(961))]
    assert len(set(partition_of(np.array(family, np.int64), 4))) == 2
    phone = int(imei(960))
    rows += [(START + 1800 * k + 60 * j, family[k % 2], phone, "460-00-790-1", 8613690000000 + 10 * k + j,
              0, 0, 0, 90) for k in range(12) for j in range(2)]
    return cfg, rows, bank, family


def _daemon_flags(cfg, rows):
    from detector.pipeline import Pipeline
    from detector.rigs.book import RigBook

    engine = cfg.features.engine()
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    daemon = Pipeline(engine, scorer, cfg.detector.scoring_interval_s,
                      rigs=RigBook(engine, scorer, cfg.detector.rigs))   # as goipwatch score runs it
    return first_flags(daemon.feed(cdr_batch(rows)).flags + daemon.score_dirty()), daemon


@pytest.mark.parametrize("chunk", [None, 1])
def test_a_sim_bank_across_partitions_is_flagged_as_the_daemon_flags_it(small_model, tmp_path, monkeypatch, chunk):
    """No worker sees more than its partition's share of a port's SIMs; the rig stage adds
    every partition's (device, SIM, hour) to its devices and scores the rows whose
    ``sims_per_imei`` grew again, so the bank is flagged SIM by SIM at the daemon's times
    with the daemon's kinds and words, and the family phone is not. The same when each
    summary's device uses are cut into chunks of one."""
    from detector.scale import summaries

    if chunk is not None:
        monkeypatch.setattr(summaries, "CHUNK_DEVICES", chunk)
    cfg, rows, bank, family = _bank_across_partitions(small_model, tmp_path)
    expected, daemon = _daemon_flags(cfg, rows)
    assert set(expected) == {str(s) for s in bank}
    assert any("SIMs seen in the same device" in why for _, _, why in expected.values())
    parts, stage, worker_flags, rig_flags = run_partitions(cfg, rows)
    assert first_flags(worker_flags + rig_flags) == expected
    assert sorted(r.sims for r in stage.book.rigs()) == sorted(r.sims for r in daemon.rigs.rigs())
    # a port's SIMs as the stage counts them (every partition's) and as their worker does
    sims = np.array(bank, np.int64)
    at_stage = stage.engine.sims_per_imei(stage.engine.sims.lookup(sims))
    at_worker = [parts[p].engine.sims_per_imei(parts[p].engine.sims.lookup(sims[i:i + 1]))[0]
                 for i, p in enumerate(partition_of(sims, 4))]
    assert (at_stage > at_worker).all()
    if chunk is not None:
        assert max(codec.decode(d).fields["chunks"] for p in parts for d in p.outbox) > 1


async def test_a_restarted_rig_stage_keeps_the_devices_of_every_partition(small_model, tmp_path, pg_dsn):
    """The rig stage restarted every few steps (its checkpoint: the SIM bitmaps of the
    devices that changed) flags the SIM bank across partitions at the times and with the
    kinds of a stage that never stopped, and stores the flags it made itself."""
    from detector.store.db import connect

    cfg, rows, bank, _ = _bank_across_partitions(small_model, tmp_path)
    parts, calm, worker_flags, rig_flags = run_partitions(cfg, rows)
    expected = [r.summary() for r in calm.book.rigs()]
    assert {f.imsi for f in rig_flags if f.kind == "sim_anomaly"}, "the stage flags some of the bank itself"
    pool = await connect(pg_dsn)
    try:
        stage, restarts = await _replayed_with_restarts(pool, cfg, parts, every=5)
        flags = {(str(r["imsi"]), r["kind"]): int(r["flagged_at"].timestamp())
                 for r in await pool.fetch("SELECT imsi, kind, flagged_at FROM flags")}
    finally:
        await pool.close()
    assert restarts > 5
    assert [r.summary() for r in stage.book.rigs()] == expected
    assert flags == {(f.imsi, f.kind): f.flagged_at for f in rig_flags}


async def test_a_rig_stage_written_by_an_earlier_build_is_carried_into_this_layout(cfg, pg_dsn):
    """The rig stage restarted on SIM records an earlier build wrote (a field missing, one
    since dropped) holds what a restart in this build's layout holds, but the new field,
    rewrites every record at its next step (those of SIMs it is not sent again included) and
    goes on to the rigs of that restart, which are those of a stage that never stopped."""
    import json

    from detector.features import state as st
    from detector.scale.publisher import record_stream
    from detector.scale.rigstage import RIG_PARTITION
    from detector.store.checkpoint import STATE_LAYOUT, save_flags
    from detector.store.db import connect

    sims = [int(imsi(300 + i)) for i in range(8)]
    ports = [int(imei(700 + p, tac="86000001")) for p in range(4)]
    rows = gateway_rows(sims, ports, GATEWAY_CELL)
    rows += [(START + 600 + 3 * i, s, ports[i % 4], BURST_CELL, 0, 0, int(RecordType.ATTACH), 0, 0)
             for i, s in enumerate(sims)]
    # a second box, silent after its first hour: the stage is not sent its SIMs' records
    # again after the restart, yet rewrites them with the others
    rows += gateway_rows([int(imsi(320 + i)) for i in range(4)],
                         [int(imei(720 + p, tac="86000002")) for p in range(2)], GATEWAY_CELL,
                         hours=1, victim0=8613600000000)
    rows.sort()
    part, calm, worker_flags, _ = run(cfg, rows)
    summaries = list(enumerate(part.outbox, 1))
    half = len(summaries) // 2
    older = np.dtype([f for f in st.SIM_STATE.descr if f[0] != "talk_bits"] + [("retired", "<u4")])

    pool = await connect(pg_dsn)
    try:
        await record_stream(pool, cfg.scale)
        async with pool.acquire() as conn:
            await save_flags(conn, worker_flags)       # the workers commit their own flags
        stage = RigStage(cfg)
        await stage.restore(pool)
        for seq, data in summaries[:half]:
            stage.offer(seq, data)
            while (key := stage.ready()) is not None:
                await stage.save(pool, *stage.step(key))
        plain = RigStage(cfg)                  # restarted in this build's layout
        await plain.restore(pool)
        stored = await pool.fetch("SELECT key, state FROM scale_state WHERE partition = $1 "
                                  "AND kind = 's'", RIG_PARTITION)
        as_older = []
        for r in stored:
            now = np.frombuffer(r["state"], st.SIM_STATE)
            was = np.zeros(1, older)
            for name in st.SIM_STATE.names:
                if name != "talk_bits":
                    was[name] = now[name]
            as_older.append((r["key"], was.tobytes()))
        await pool.executemany("UPDATE scale_state SET state = $2 WHERE partition = -1 "
                               "AND kind = 's' AND key = $1", as_older)
        await pool.execute("UPDATE scale_partitions SET layout = '\"0123456789abcdef\"', "
                           "layout_fields = $1::jsonb WHERE partition = -1",
                           json.dumps({"sim": older.descr, "imei": st.IMEI_STATE.descr}))
        carried = RigStage(cfg)                # restarted on the earlier build's records
        await carried.restore(pool)
        keys = np.array([r["key"] for r in stored], np.int64)
        assert len(keys) > 8
        a = plain.engine.sim_state[plain.engine.sims.lookup(keys)]
        b = carried.engine.sim_state[carried.engine.sims.lookup(keys)]
        for name in st.SIM_STATE.names:
            if name != "talk_bits":
                assert np.array_equal(a[name], b[name]), name
        assert (b["talk_bits"] == 0).all()
        for seq, data in summaries[half:]:
            plain.offer(seq, data)
            while (key := plain.ready()) is not None:
                plain.step(key)
            carried.offer(seq, data)
            while (key := carried.ready()) is not None:
                await carried.save(pool, *carried.step(key))
        layout = await pool.fetchval("SELECT layout FROM scale_partitions WHERE partition = -1")
        stale = await pool.fetchval("SELECT count(*) FROM scale_state WHERE partition = -1 AND "
                                    "kind = 's' AND length(state) <> $1", st.SIM_STATE.itemsize)
    finally:
        await pool.close()
    assert json.loads(layout) == STATE_LAYOUT and stale == 0
    assert [r.summary() for r in carried.book.rigs()] == [r.summary() for r in plain.book.rigs()] \
        == [r.summary() for r in calm.book.rigs()]
