"""Checkpoints on a real PostgreSQL: what a restart must find again beside the SIM state."""

import json

import pytest

from detector import model as model_mod
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.rigs.book import RigBook
from detector.rigs.policy import RigPolicy
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
    (each SIM's evidence is written when it changes) and the daemon still counts as having
    watched the network since its first start."""
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
        assert pipe.rigs.evidence_by_sim() and pipe.rigs.unsaved_evidence() == {}
        assert await pool.fetchval("SELECT count(DISTINCT imsi) FROM rig_evidence") == len(sims)
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
    from detector.flags import Flag, Rig

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
        streamed = await checkpoint.flag_events_after(pool, 0)
    finally:
        await pool.close()
    assert set(again.flagged) == set(sims)
    assert {f.imsi for f in again.flagged.values()} == set(sims)
    assert [(r.id, r.sims, r.devices) for r in again.rigs.rigs()] == [(rig.id, rig.sims, rig.devices)]
    assert set(again.rigs.evidence_by_sim()) <= set(sims) and again.rigs.evidence_by_sim()
    assert json.loads(stored["members"]) == sorted(sims)
    assert json.loads(stored["devices"]) == sorted(ports)
    assert {e.flag.imsi for e in streamed} == set(sims)


async def test_every_change_of_what_the_stream_carries_is_one_flag_event(pg_dsn, small_model):
    """Flag events follow the flags' rows, whoever writes them: a commit, a rig formed and then
    merged into another, a higher score for the same SIM and kind; a lower score, or a
    verdict (status is not carried by the stream), is none."""
    from detector import feedback
    from detector.flags import Flag, Rig

    pipe = fresh_pipe(small_model)
    a, b, c = (imsi(540 + i) for i in range(3))
    flags = [Flag(x, "8613800000000", 0.7, START, ("why",), "rig") for x in (a, b, c)]
    pool = await connect(pg_dsn)
    try:
        async def events_after(last: int) -> list[tuple[str, str, str, float]]:
            return [(e.event, e.flag.imsi, e.flag.rig_id, round(e.flag.score, 3))
                    for e in await checkpoint.flag_events_after(pool, last)]

        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(flags=flags), 0)
        assert await events_after(0) == [("flag", x, "", 0.7) for x in (a, b, c)]
        last = await pool.fetchval("SELECT max(id) FROM flag_events")
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(
            rigs=[Rig("rig-b", {b, c}, first=START, last=START)]), 0)
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(
            rigs=[Rig("rig-a", {a, b, c}, first=START, last=START)]), 0)
        assert await events_after(last) == [
            ("rig_assigned", b, "rig-b", 0.7), ("rig_assigned", c, "rig-b", 0.7),
            ("rig_assigned", a, "rig-a", 0.7), ("rig_assigned", b, "rig-a", 0.7),
            ("rig_assigned", c, "rig-a", 0.7)]
        last = await pool.fetchval("SELECT max(id) FROM flag_events")
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(flags=[
            Flag(a, "8613800000000", 0.9, START + 60, ("again",), "rig", "rig-a"),
            Flag(b, "8613800000000", 0.5, START + 60, ("again",), "rig", "rig-a")]), 0)
        await feedback.judge(pool, c, "confirm", "desk")
        assert await events_after(last) == [("updated", a, "rig-a", 0.9)]
    finally:
        await pool.close()


async def test_flag_event_ids_follow_commit_order(pg_dsn):
    """A writer of flags waits for another's transaction to end before it draws event ids: a
    reader that has seen an id never later finds a lower one committed (the stream would
    skip it)."""
    import asyncio

    import asyncpg

    pool = await connect(pg_dsn)   # migrated
    await pool.close()
    first, second = await asyncpg.connect(pg_dsn), await asyncpg.connect(pg_dsn)
    insert = ("INSERT INTO flags (imsi, kind, score, flagged_at, reasons) "
              "VALUES ($1, 'sim_anomaly', 0.7, now(), '[]') RETURNING id")
    try:
        early = first.transaction()
        await early.start()
        await first.fetchval(insert, int(imsi(560)))
        late = asyncio.create_task(second.fetchval(insert, int(imsi(561))))
        await asyncio.sleep(0.5)
        assert not late.done()              # waits for the first writer's transaction
        await early.commit()
        await asyncio.wait_for(late, 10)
        rows = await second.fetch("SELECT imsi FROM flag_events ORDER BY id")
    finally:
        await first.close()
        await second.close()
    assert [r["imsi"] for r in rows] == [int(imsi(560)), int(imsi(561))]


class _Marker:
    """A process whose own state is one row of a table of its own; ``fail`` makes its last
    step (the reads after the writes) raise, as a lost connection would."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.refreshed = False

    async def write_state(self, conn) -> None:
        await conn.execute("CREATE TABLE IF NOT EXISTS _uow_marker (n int)")
        await conn.execute("INSERT INTO _uow_marker VALUES (1)")

    async def refresh(self, conn) -> None:
        if self.fail:
            raise ConnectionError("connection lost")
        self.refreshed = True


async def test_one_unit_of_work_commits_state_flags_rigs_and_quarantine_together_or_not_at_all(pg_dsn):
    import pytest

    from detector.flags import Flag, Rig
    from detector.records import Rejected

    a, b = imsi(580), imsi(581)
    outcome = checkpoint.Outcome(
        flags=[Flag(x, "8613800000000", 0.8, START + i, ("why",), "rig") for i, x in enumerate((a, b))],
        rigs=[Rig("rig-u", {a, b}, first=START, last=START + 60)],
        quarantine=[("rig-stage", Rejected("summary seq 3", 3, "bad message: truncated", "00ff"))])
    pool = await connect(pg_dsn)
    try:
        async def stored() -> tuple:
            marker = await pool.fetchval("SELECT count(*) FROM _uow_marker") \
                if await pool.fetchval("SELECT to_regclass('_uow_marker')") else 0
            return (marker, await pool.fetchval("SELECT count(*) FROM flags"),
                    await pool.fetchval("SELECT count(*) FROM rigs"),
                    await pool.fetchval("SELECT count(*) FROM quarantine"),
                    await pool.fetchval("SELECT count(*) FROM flag_history"))

        with pytest.raises(ConnectionError):
            await checkpoint.commit(pool, _Marker(fail=True), outcome)
        assert await stored() == (0, 0, 0, 0, 0)
        process = _Marker()
        ids = await checkpoint.commit(pool, process, outcome)
        assert process.refreshed
        assert await stored() == (1, 2, 1, 1, 2)
        rows = await pool.fetch("SELECT id, imsi, rig_id FROM flags ORDER BY id")
        assert [r["id"] for r in rows] == ids and [str(r["imsi"]) for r in rows] == [a, b]
        assert {r["rig_id"] for r in rows} == {"rig-u"}
        q = await pool.fetchrow("SELECT probe, source, reason, raw_bytes FROM quarantine")
        assert (q["probe"], q["source"], q["reason"]) == ("rig-stage", "summary seq 3", "bad message: truncated")
        assert bytes(q["raw_bytes"]) == b"00ff"
    finally:
        await pool.close()


async def test_each_sims_first_flag_is_the_earliest_whatever_order_they_were_stored_in(pg_dsn):
    """In the scale-out a worker may store a SIM's sim_anomaly flag before the rig stage stores
    its earlier rig flag: a restart must find the earlier one."""
    from detector.flags import Flag

    a, b = imsi(590), imsi(591)
    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await checkpoint.save_flags(conn, [Flag(a, "", 0.6, START + 3600, ("late",), "sim_anomaly"),
                                               Flag(b, "", 0.6, START + 7200, ("later",), "sim_anomaly")])
            await checkpoint.save_flags(conn, [Flag(a, "", 0.9, START, ("early",), "rig")])
            first = await checkpoint.first_flags(conn)
            until = await checkpoint.first_flags(conn, START + 3600)
    finally:
        await pool.close()
    assert (first[a].kind, first[a].flagged_at, first[a].reasons) == ("rig", START, ("early",))
    assert first[b].flagged_at == START + 7200
    assert set(until) == {a}


async def test_a_flag_raised_again_earlier_keeps_one_raise_at_the_earlier_time(pg_dsn):
    """In the scale-out a worker, judging its partition's share of a device, may store a
    SIM's sim_anomaly flag before the rig stage, judging the whole device, stores the same
    SIM's earlier one: the flag and its one raise take the earlier time and the higher
    score; a later raise changes neither time."""
    from detector.flags import Flag

    a = imsi(592)
    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await checkpoint.save_flags(conn, [Flag(a, "", 0.6, START + 3600, ("share",), "sim_anomaly")])
            await checkpoint.save_flags(conn, [Flag(a, "", 0.7, START, ("whole",), "sim_anomaly")])
            await checkpoint.save_flags(conn, [Flag(a, "", 0.5, START + 7200, ("again",), "sim_anomaly")])
            flags = await conn.fetch("SELECT id, score, flagged_at FROM flags WHERE imsi = $1", int(a))
            raises = await conn.fetch("SELECT event_time FROM flag_history WHERE flag_id = $1 AND event = 'raised'",
                                      flags[0]["id"])
    finally:
        await pool.close()
    [flag] = flags
    assert flag["score"] == pytest.approx(0.7) and int(flag["flagged_at"].timestamp()) == START
    assert [int(r["event_time"].timestamp()) for r in raises] == [START]


async def test_a_checkpoint_writes_the_evidence_of_the_sims_whose_evidence_changed(pg_dsn, small_model):
    """Rig evidence grows with the flagged SIMs: a checkpoint writes the rows of the SIMs
    whose words changed, and a restart reads back the whole map."""
    pipe = fresh_pipe(small_model)
    book = pipe.rigs
    book.note("460000000000701", "device", "shares device 86000001…")
    book.note("460000000000702", "cell", "machine-like SIMs active together in cell 460-00-1-1")
    pool = await connect(pg_dsn)
    try:
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(), 0)
        await pool.execute("UPDATE rig_evidence SET words = 'as stored' WHERE imsi = 460000000000702")
        book.note("460000000000701", "power", "SIMs power on together in cell 460-00-1-1")
        assert book.unsaved_evidence() == {"460000000000701": book.evidence_of("460000000000701")}
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(), 0)
        rows = {(r["imsi"], r["kind"]): r["words"] for r in await pool.fetch("SELECT * FROM rig_evidence")}
        assert rows[(460000000000701, "power")].startswith("SIMs power on together")
        assert rows[(460000000000702, "cell")] == "as stored"      # unchanged: not rewritten
        again = fresh_pipe(small_model)
        await checkpoint.restore(pool, again.engine, again)
    finally:
        await pool.close()
    assert again.rigs.evidence_of("460000000000701") == book.evidence_of("460000000000701")
    assert again.rigs.unsaved_evidence() == {}


async def test_evidence_kept_as_one_value_moves_to_its_table(pg_dsn):
    """A store written before rig evidence had a table of its own keeps its evidence."""
    import asyncpg

    from detector.store.db import migrations
    conn = await asyncpg.connect(pg_dsn)
    try:
        for version, _, sql in migrations():
            if version == 15:
                continue
            await conn.execute(sql)
        await conn.execute("INSERT INTO engine_state (key, value) VALUES ('rig_evidence', $1::jsonb)",
                           json.dumps({"460000000000801": {"device": "d", "cell": "c"}}))
        await conn.execute(dict((v, sql) for v, _, sql in migrations())[15])
        rows = sorted(tuple(r) for r in await conn.fetch("SELECT imsi, kind, words FROM rig_evidence"))
        assert rows == [(460000000000801, "cell", "c"), (460000000000801, "device", "d")]
        assert await conn.fetchval("SELECT count(*) FROM engine_state WHERE key = 'rig_evidence'") == 0
    finally:
        await conn.close()


async def test_an_earlier_builds_feature_state_is_carried_into_this_layout_and_rewritten(
        pg_dsn, small_model):
    """A store checkpointed by a build whose SIM records lacked a field (and had one since
    dropped): the restart keeps every SIM with what both layouts hold, starts the new field
    empty, and its first checkpoint rewrites every record in this build's layout. A store
    whose layout has no field list is still refused, naming what to do."""
    import numpy as np
    import pytest

    from detector.features import state as st

    pipe = fresh_pipe(small_model)
    sims = [int(imsi(540 + i)) for i in range(4)]
    ports = [int(imei(540 + i, tac="86000009")) for i in range(4)]
    pipe.feed(cdr_batch(gateway_rows(sims, ports, "460-00-611-1", rotate_s=600)))
    n = len(pipe.engine.sims)
    written = pipe.engine.sim_state[:n].copy()
    older = np.dtype([f for f in st.SIM_STATE.descr if f[0] != "talk_bits"] + [("retired", "<u4")])
    as_older = np.zeros(n, older)
    for name in st.SIM_STATE.names:
        if name != "talk_bits":
            as_older[name] = written[name]
    keys = pipe.engine.sims.keys_by_slot[:n]

    pool = await connect(pg_dsn)
    try:
        await checkpoint.save(pool, pipe.engine, pipe, checkpoint.Pending(), 0)
        async with pool.acquire() as conn:      # the store as the earlier build left it
            await conn.executemany("UPDATE sim_state SET state = $2 WHERE imsi = $1",
                                   [(int(k), as_older[i].tobytes()) for i, k in enumerate(keys)])
            await conn.execute("UPDATE engine_state SET value = $1::jsonb WHERE key = 'layout'",
                               json.dumps("0123456789abcdef"))
            await conn.execute("UPDATE engine_state SET value = $1::jsonb WHERE key = 'layout_fields'",
                               json.dumps({"sim": older.descr, "imei": st.IMEI_STATE.descr}))
        again = fresh_pipe(small_model)
        restored = await checkpoint.restore(pool, again.engine, again)
        assert restored.sims == n
        slots = again.engine.sims.lookup(keys)
        got = again.engine.sim_state[slots]
        for name in st.SIM_STATE.names:
            if name != "talk_bits":
                assert np.array_equal(got[name], written[name]), name
        assert (got["talk_bits"] == 0).all()

        await checkpoint.save(pool, again.engine, again, checkpoint.Pending(), restored.cells)
        assert await pool.fetchval("SELECT value FROM engine_state WHERE key = 'layout'") == \
            json.dumps(checkpoint.STATE_LAYOUT)
        assert await pool.fetchval("SELECT count(*) FROM sim_state WHERE length(state) <> $1",
                                   st.SIM_STATE.itemsize) == 0

        await pool.execute("UPDATE engine_state SET value = '\"0123456789abcdef\"' WHERE key = 'layout'")
        await pool.execute("DELETE FROM engine_state WHERE key = 'layout_fields'")
        with pytest.raises(checkpoint.CheckpointError, match="without its field list"):
            await checkpoint.restore(pool, fresh_pipe(small_model).engine, fresh_pipe(small_model))
    finally:
        await pool.close()
