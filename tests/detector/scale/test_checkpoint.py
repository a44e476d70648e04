"""A worker partition's checkpoint in the real PostgreSQL: what it saves is what a restarted
partition goes on from (here: the recent attaches of synchronised power-on)."""

import numpy as np

from detector import config as config_mod
from detector import model as model_mod
from detector.records import RecordType
from detector.scale import checkpoint as scp, codec
from detector.scale.publisher import record_stream, split
from detector.scale.worker import make_partition
from detector.scoring import Scorer
from detector.store.db import connect
from detector.testing import START, cdr_batch, imei, imsi
from tests.detector.scale.conftest import write_scale_config

CELL = "460-00-777-9"


def attaches(sims: range) -> bytes:
    b = cdr_batch([(START + 3 * i, int(imsi(i)), int(imei(i)), CELL, 0, 0, int(RecordType.ATTACH), 0, 0)
                   for i in sims])
    piece = split(b, 1)[0]
    return codec.encode("cdr", {"source": "sig.csv", "cells": piece["cells"], "watermark": int(b.ts.max())},
                        piece["columns"])


async def test_a_power_on_burst_cut_by_a_restart_is_seen_whole(small_model, pg_dsn, tmp_path):
    cfg = config_mod.load(write_scale_config(tmp_path, pg_dsn, small_model, "S", "s", partitions=1))
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    pool = await connect(pg_dsn)
    try:
        await record_stream(pool, cfg.scale)
        calm, crashed = make_partition(cfg, scorer, 0), make_partition(cfg, scorer, 0)
        await scp.restore(pool, "S", crashed)
        crashed.apply(1, attaches(range(0, 4)))     # the first modules of a box attach ...
        await scp.save(pool, "S", crashed)
        restarted = make_partition(cfg, scorer, 0)
        await scp.restore(pool, "S", restarted)        # ... the worker restarts ...
        assert restarted.engine.attaches.tolist() == crashed.engine.attaches.tolist()
        calm.apply(1, attaches(range(0, 4)))
        for part in (calm, restarted):                 # ... and the rest attach
            part.apply(2, attaches(range(4, 8)))
        late = np.array([int(imsi(i)) for i in range(4, 8)], np.int64)

        def burst(part):
            return part.engine.sim_state["sync_n"][part.engine.sims.lookup(late)].tolist()

        assert burst(calm) == [7] * 4
        assert burst(restarted) == burst(calm)
    finally:
        await pool.close()


async def test_flags_are_read_once_and_each_partition_keeps_its_own(small_model, pg_dsn, tmp_path):
    from detector.flags import Flag
    from detector.scale.partition import partition_of
    from detector.store.checkpoint import save_flags

    cfg = config_mod.load(write_scale_config(tmp_path, pg_dsn, small_model, "S", "s", partitions=2))
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    sims = [imsi(i) for i in range(10)]
    pool = await connect(pg_dsn)
    try:
        await record_stream(pool, cfg.scale)
        async with pool.acquire() as conn:
            await save_flags(conn, [Flag(imsi=s, msisdn="", score=0.9, flagged_at=START, reasons=("x",))
                                     for s in sims])
        flags = await scp.sim_flags(pool)
        await pool.execute("TRUNCATE flags CASCADE")   # restore takes the list read before
        owner = partition_of(np.array(sims, np.int64), 2)
        for p in (0, 1):
            part = make_partition(cfg, scorer, p)
            await scp.restore(pool, "S", part, flags)
            assert set(part.pipe.flagged) == {s for s, o in zip(sims, owner) if o == p}
    finally:
        await pool.close()


async def test_device_uses_awaiting_a_summary_survive_a_restart(small_model, pg_dsn, tmp_path):
    """The (device, SIM, hour) a partition applied since its last summary are in its
    checkpoint: a worker restarted between two ticks sends the rig stage the same summary."""
    cfg = config_mod.load(write_scale_config(tmp_path, pg_dsn, small_model, "S", "s", partitions=1))
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    port = int(imei(50, tac="86000003"))
    b = cdr_batch([(START + 60 * i, int(imsi(i % 3)), port, CELL, 8613500000000 + i, 0, 0, 1, 0)
                   for i in range(9)])
    piece = split(b, 1)[0]
    cdr = codec.encode("cdr", {"source": "cdr.csv", "cells": piece["cells"], "watermark": int(b.ts.max())},
                       piece["columns"])
    pool = await connect(pg_dsn)
    try:
        await record_stream(pool, cfg.scale)
        calm, crashed = make_partition(cfg, scorer, 0), make_partition(cfg, scorer, 0)
        await scp.restore(pool, "S", crashed)
        for part in (calm, crashed):
            part.apply(1, cdr)
        await scp.save(pool, "S", crashed)
        restarted = make_partition(cfg, scorer, 0)
        await scp.restore(pool, "S", restarted)
        for part in (calm, restarted):
            part.apply(2, codec.encode("tick", {"at": START + 3600}))
        sent = [codec.decode(p.outbox[-1]).columns for p in (calm, restarted)]
        assert sorted(sent[0]["device_imsi"].tolist()) == [int(imsi(i)) for i in range(3)]
        for k in ("device_imei", "device_imsi", "device_hour"):
            assert sent[1][k].tolist() == sent[0][k].tolist()
    finally:
        await pool.close()


async def test_a_partition_written_by_an_earlier_build_is_carried_into_this_layout(
        small_model, pg_dsn, tmp_path):
    """A partition checkpointed by a build whose SIM records lacked a field (and had one since
    dropped) restarts with every SIM's fields that both layouts hold, the new field empty, and
    its next checkpoint rewrites every record in this build's layout. Without a field list it
    is refused, naming the partition."""
    import json

    import pytest

    from detector.features import state as st
    from detector.store.checkpoint import STATE_LAYOUT, CheckpointError

    cfg = config_mod.load(write_scale_config(tmp_path, pg_dsn, small_model, "S", "s", partitions=1))
    scorer = Scorer(model_mod.load(cfg.detector.model), cfg.detector.policy)
    pool = await connect(pg_dsn)
    try:
        await record_stream(pool, cfg.scale)
        part = make_partition(cfg, scorer, 0)
        await scp.restore(pool, "S", part)
        part.apply(1, attaches(range(0, 6)))
        await scp.save(pool, "S", part)
        n = len(part.engine.sims)
        written, keys = part.engine.sim_state[:n].copy(), part.engine.sims.keys_by_slot[:n].copy()
        older = np.dtype([f for f in st.SIM_STATE.descr if f[0] != "talk_bits"] + [("retired", "<u4")])
        as_older = np.zeros(n, older)
        for name in st.SIM_STATE.names:
            if name != "talk_bits":
                as_older[name] = written[name]
        async with pool.acquire() as conn:        # the partition as the earlier build left it
            await conn.executemany(
                "UPDATE scale_state SET state = $2 WHERE stream = 'S' AND kind = 's' AND key = $1",
                [(int(k), as_older[i].tobytes()) for i, k in enumerate(keys)])
            await conn.execute(
                "UPDATE scale_partitions SET layout = '\"0123456789abcdef\"', layout_fields = $1::jsonb "
                "WHERE stream = 'S'", json.dumps({"sim": older.descr, "imei": st.IMEI_STATE.descr}))

        again = make_partition(cfg, scorer, 0)
        await scp.restore(pool, "S", again)
        got = again.engine.sim_state[again.engine.sims.lookup(keys)]
        for name in st.SIM_STATE.names:
            if name != "talk_bits":
                assert np.array_equal(got[name], written[name]), name
        assert (got["talk_bits"] == 0).all()
        await scp.save(pool, "S", again)
        row = await pool.fetchrow("SELECT layout, layout_fields FROM scale_partitions WHERE stream = 'S'")
        assert json.loads(row["layout"]) == STATE_LAYOUT and row["layout_fields"] is not None
        assert await pool.fetchval("SELECT count(*) FROM scale_state WHERE kind = 's' "
                                   "AND length(state) <> $1", st.SIM_STATE.itemsize) == 0

        await pool.execute("UPDATE scale_partitions SET layout = '\"0123456789abcdef\"', "
                           "layout_fields = NULL WHERE stream = 'S'")
        with pytest.raises(CheckpointError, match="partition 0 of S .*without its field list"):
            await scp.restore(pool, "S", make_partition(cfg, scorer, 0))
    finally:
        await pool.close()
