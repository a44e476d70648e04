"""Checkpoints on a real PostgreSQL: what a restart must find again beside the SIM state."""

import json

from detector import model as model_mod
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.rigs import RigBook, RigPolicy
from detector.scoring import Policy, Scorer
from detector.store import checkpoint
from detector.store.db import connect
from detector.testing import START, cdr_batch, gateway_rows, imei, imsi


def fresh_pipe(model_path) -> Pipeline:
    engine = FeatureEngine()
    scorer = Scorer(model_mod.load(model_path), Policy())
    return Pipeline(engine, scorer, 900, rigs=RigBook(engine, scorer, RigPolicy()))


async def test_rig_evidence_and_the_watching_clock_survive_a_restart(pg_dsn, small_model):
    """Machine-like SIMs flagged together in one cell: after a restart the rig still says why
    (its evidence summary is rewritten at every checkpoint) and the daemon still counts as
    having watched the network since its first start."""
    pipe = fresh_pipe(small_model)
    pipe.engine.observed_from = START - 86400     # the daemon has watched the network a day
    sims = [int(imsi(500 + i)) for i in range(4)]
    ports = [int(imei(500 + i, tac="86000009")) for i in range(4)]
    fed = pipe.feed(cdr_batch(gateway_rows(sims, ports, "460-00-610-1", rotate_s=10**6)))
    flags = fed.flags + pipe.score_dirty()
    assert {f.imsi for f in flags} == {str(s) for s in sims}
    before = pipe.rigs.rigs()
    assert "machine-like SIMs active together in cell 460-00-610-1" in before[0].summary()

    pool = await connect(pg_dsn)
    try:
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(flags=flags, rigs=before), 0)
        assert pipe.rigs.saved_evidence_version == pipe.rigs.evidence_version > 0
        again = fresh_pipe(small_model)
        await checkpoint.restore(pool, again.engine, again)
    finally:
        await pool.close()
    assert again.engine.observed_from == START - 86400
    assert again.rigs.evidence_by_sim() == pipe.rigs.evidence_by_sim()
    assert [r.summary() for r in again.rigs.rigs()] == [r.summary() for r in before]


async def test_rigs_merged_into_one_leave_one_row_and_a_rig_at_work_is_rewritten(pg_dsn, small_model):
    """Two rigs found apart, then one (a SIM links them): the store keeps the one, its flags
    point to it. A rig saved again later, with no new flag, shows its newer activity."""
    from detector.rigs import Rig
    from detector.scoring import Flag

    pipe = fresh_pipe(small_model)
    sims = [str(imsi(520 + i)) for i in range(4)]
    flags = [Flag(s, "8613800000000", 0.7, START, ("why",), "rig", "rig-a" if i < 2 else "rig-b")
             for i, s in enumerate(sims)]
    apart = [Rig("rig-a", set(sims[:2]), first=START, last=START + 60),
             Rig("rig-b", set(sims[2:]), first=START, last=START + 60)]
    joined = Rig("rig-a", set(sims), first=START, last=START + 3600)
    pool = await connect(pg_dsn)
    try:
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(flags=flags, rigs=apart), 0)
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(rigs=[joined]), 0)
        rows = await pool.fetch("SELECT id, sims, last_at FROM rigs ORDER BY id")
        rig_ids = {r["rig_id"] for r in await pool.fetch("SELECT rig_id FROM flags")}
    finally:
        await pool.close()
    assert [(r["id"], r["sims"], int(r["last_at"].timestamp())) for r in rows] == [("rig-a", 4, START + 3600)]
    assert rig_ids == {"rig-a"}


async def test_imsis_and_imeis_with_leading_zeros_keep_their_15_digits_across_a_restart(
        pg_dsn, small_model):
    """A gateway of test-PLMN SIMs (001-01) in devices of a TAC beginning with 0: the store
    holds them as bigint, and what a restart reads back names them by their 15 digits, as the
    flags did before it (flags, rigs, the rig evidence kept by SIM)."""
    pipe = fresh_pipe(small_model)
    pipe.engine.observed_from = START - 86400
    sims = [imsi(700 + i, plmn="00101") for i in range(4)]
    ports = [imei(700 + i, tac="01000009") for i in range(4)]
    fed = pipe.feed(cdr_batch(gateway_rows([int(s) for s in sims], [int(p) for p in ports],
                                           "001-01-610-1", rotate_s=10**6)))
    flags = fed.flags + pipe.score_dirty()
    assert {f.imsi for f in flags} == set(sims)
    [rig] = pipe.rigs.rigs()
    assert rig.sims == set(sims) and rig.devices == set(ports)

    pool = await connect(pg_dsn)
    try:
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(flags=flags, rigs=[rig]), 0)
        again = fresh_pipe(small_model)
        await checkpoint.restore(pool, again.engine, again)
        stored = await pool.fetchrow("SELECT members, devices FROM rigs")
        streamed = await checkpoint.flags_after(pool, 0)
    finally:
        await pool.close()
    assert set(again.flagged) == set(sims)
    assert {f.imsi for f in again.flagged.values()} == set(sims)
    assert [(r.id, r.sims, r.devices) for r in again.rigs.rigs()] == [(rig.id, rig.sims, rig.devices)]
    assert set(again.rigs.evidence_by_sim()) <= set(sims) and again.rigs.evidence_by_sim()
    assert json.loads(stored["members"]) == sorted(sims)
    assert json.loads(stored["devices"]) == sorted(ports)
    assert {f.imsi for _, f in streamed} == set(sims)
