"""Analyst feedback: confirm / dismiss stored with who and when; allow-listed subscribers are
not flagged again."""

import asyncio
import json

import asyncpg
import numpy as np
import pytest

from detector import model as model_mod
from detector.cli import main
from detector.feedback import AllowList
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.rigs.book import RigBook
from detector.scoring import Policy, Scorer
from detector.store.db import connect
from detector.testing import cdr_batch, gateway_rows, imei, imsi

SIMS = [int(imsi(100 + i)) for i in range(8)]
PORTS = [int(imei(900 + p, tac="86000001")) for p in range(4)]


def gateway_pipe(small_model, allow: AllowList) -> Pipeline:
    engine = FeatureEngine()
    scorer = Scorer(model_mod.load(small_model), Policy())
    return Pipeline(engine, scorer, 900, rigs=RigBook(engine, scorer), allow=allow)


def flagged(pipe) -> set[str]:
    flags = pipe.feed(cdr_batch(gateway_rows(SIMS, PORTS, "460-00-200-7"))).flags + pipe.score_dirty()
    return {f.imsi for f in flags}


@pytest.mark.parametrize("kind, value, left", [
    ("imsi", str(SIMS[0]), 7),
    ("cell", "460-00-200-7", 0),
    ("cell", "460-11-200-7", 0),     # the same shared cell, under another network's id
    ("cell", "460-00-200-8", 8),
])
def test_allow_listed_subscribers_are_not_flagged(small_model, kind, value, left):
    assert len(flagged(gateway_pipe(small_model, AllowList()))) == 8
    allow = AllowList()
    allow.add(kind, value)
    got = flagged(gateway_pipe(small_model, allow))
    assert len(got) == left and (str(SIMS[0]) in got) == (left == 8)   # 8: the allow-list matched none


def cfg(tmp_path, dsn):
    p = tmp_path / "c.toml"
    p.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n[store]\ndsn = "{dsn}"\n')
    return str(p)


async def _seed_flag(dsn: str) -> None:
    pool = await connect(dsn)
    try:
        await pool.execute("INSERT INTO flags (imsi, msisdn, kind, score, flagged_at, reasons) "
                           "VALUES ($1, 8613800000001, 'sim_anomaly', 0.7, now(), '[]')", SIMS[0])
    finally:
        await pool.close()


async def _stored(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        return {"status": await conn.fetchval("SELECT status FROM flags"),
                "history": await conn.fetchrow("SELECT event, actor, detail FROM flag_history"),
                "feedback": await conn.fetchrow("SELECT imsi, verdict, actor FROM feedback"),
                "allow": await conn.fetchrow("SELECT kind, value, reason, actor FROM allowlist")}
    finally:
        await conn.close()


def test_confirm_dismiss_and_allow_are_recorded_with_who(tmp_path, pg_dsn, capsys):
    asyncio.run(_seed_flag(pg_dsn))
    c = cfg(tmp_path, pg_dsn)
    assert main(["feedback", "confirm", "--config", c, "--imsi", str(SIMS[0]), "--by", "alice",
                 "--note", "line verified as gateway"]) == 0
    assert main(["feedback", "dismiss", "--config", c, "--imsi", str(SIMS[1]), "--by", "bob"]) == 2
    assert "no flag for IMSI" in capsys.readouterr().err
    assert main(["feedback", "allow", "--config", c, "--id-hash", "acme0000callcentre", "--by",
                 "carol", "--reason", "Acme Ltd call centre"]) == 0
    assert main(["feedback", "allow", "--config", c, "--cell", "460-00-7", "--by", "carol",
                 "--reason", "x"]) == 2
    assert "cell_id" in capsys.readouterr().err
    got = asyncio.run(_stored(pg_dsn))
    assert got["status"] == "confirmed"
    assert (got["history"]["event"], got["history"]["actor"]) == ("confirmed", "alice")
    assert json.loads(got["history"]["detail"])["note"] == "line verified as gateway"
    assert tuple(got["feedback"]) == (SIMS[0], "confirm", "alice")
    assert tuple(got["allow"]) == ("id_hash", "acme0000callcentre", "Acme Ltd call centre", "carol")


def test_allow_by_account_matches_the_registration_key():
    from detector.feedback import id_key
    from detector.records import RegistrationBatch
    engine = FeatureEngine()
    engine.apply_registrations(RegistrationBatch(
        imsi=np.array([SIMS[0]]), msisdn=np.array([1]), iccid=np.array(["8986000000000000001"], object),
        activated_at=np.array([0]), id_hash=np.array(["acme0000callcentre"], object),
        channel=np.array(["CH1"], object), carrier=np.array(["China Mobile"], object),
        line=np.array([2])))
    assert int(engine.sim_state["id_key"][0]) == id_key("acme0000callcentre")


async def _verdicts(dsn: str) -> dict:
    from detector.feedback import verdicts
    pool = await connect(dsn)
    try:
        await pool.executemany("INSERT INTO feedback (imsi, verdict, actor) VALUES ($1, $2, $3)",
                               [(SIMS[0], "dismiss", "alice"), (SIMS[0], "confirm", "platform"),
                                (SIMS[1], "dismiss", "bob")])
        return await verdicts(pool)
    finally:
        await pool.close()


def test_the_latest_verdict_of_each_sim_is_its_label(pg_dsn):
    assert asyncio.run(_verdicts(pg_dsn)) == {str(SIMS[0]): 1, str(SIMS[1]): 0}


def test_outbox_command_shows_and_requeues(tmp_path, pg_dsn, capsys):
    asyncio.run(_seed_flag(pg_dsn))  # migrates the store
    c = cfg(tmp_path, pg_dsn)
    assert main(["outbox", "show", "--config", c]) == 0
    assert '"pending": 0' in capsys.readouterr().out
    assert main(["outbox", "requeue", "--config", c]) == 0
    assert "0 dead letters queued again" in capsys.readouterr().out
