"""The outbox: written with the flags in one transaction, policy applied, suppression window."""

from __future__ import annotations

import json

import pytest

from detector.flags import Rig
from detector.store import checkpoint as cp
from detector.verify import ActionPolicy, configure, outbox_summary
from detector.verify.outbox import enqueue, idempotency_key

from .conftest import BASE_IMSI, commit, flag


async def rows(pool):
    return await pool.fetch("SELECT * FROM verification_outbox ORDER BY id")


async def test_nothing_is_written_unless_verification_is_configured(pool):
    await commit(pool, [flag(1)])
    assert await pool.fetchval("SELECT count(*) FROM flags") == 1
    assert await rows(pool) == []


async def test_request_is_committed_with_its_flag_and_body_is_complete(pool):
    configure(ActionPolicy())
    ids = await commit(pool, [flag(1)])
    [r] = await rows(pool)
    assert (r["flag_id"], r["action"], r["status"], r["attempts"]) == (ids[0], "reverify", "pending", 0)
    assert r["idempotency_key"] == idempotency_key(str(BASE_IMSI + 1), "reverify", ids[0])
    body = json.loads(r["body"])
    assert body["request_id"] == str(r["request_id"])
    assert body["lines"] == [{"imsi": str(BASE_IMSI + 1), "msisdn": str(8613_900_000_001)}]
    assert body["action"] == "reverify" and body["flag_id"] == ids[0] and body["score"] == 0.7
    assert body["reasons"][0].startswith("143 distinct numbers")
    assert body["flagged_at"] == "2026-10-03T04:00:01Z" and body["rig_id"] is None
    assert r["created_at"] is not None and r["delivered_at"] is None


async def test_a_failing_checkpoint_leaves_neither_flag_nor_request(pool, monkeypatch):
    configure(ActionPolicy())

    async def broken(conn, allow):  # the last step of the checkpoint transaction
        raise RuntimeError("store went away")
    monkeypatch.setattr(cp, "load_allowlist", broken)
    with pytest.raises(RuntimeError):
        await commit(pool, [flag(1), flag(2)])
    assert await pool.fetchval("SELECT count(*) FROM flags") == 0
    assert await rows(pool) == []
    monkeypatch.undo()
    await commit(pool, [flag(1), flag(2)])
    assert await pool.fetchval("SELECT count(*) FROM flags") == 2
    assert len(await rows(pool)) == 2


async def test_rig_members_are_suspended_and_large_rigs_get_one_police_lead(pool):
    configure(ActionPolicy(suspend_min_sims=3, police_lead_min_sims=4))
    big = Rig("rig-aaaaaaaaaa", {str(BASE_IMSI + i) for i in range(5)}, {"35000000000001"},
              {"460-0-1-1", "460-0-1-2"}, 1_791_000_000, 1_791_003_600,
              {"devices": "5 SIMs rotate over 1 shared devices"})
    flags = [flag(i, "rig" if i == 0 else "rig_member", rig_id=big.id) for i in range(5)]
    await commit(pool, flags[:3], [big])
    await commit(pool, flags[3:], [big])    # the rig grows: no second lead within the window
    out = await rows(pool)
    assert [r["action"] for r in out] == ["suspend", "police_lead"] + ["suspend"] * 4
    lead = json.loads(out[1]["body"])
    assert lead["rig_id"] == big.id and lead["rig"]["sims"] == 5
    assert [x["imsi"] for x in lead["lines"]] == [str(BASE_IMSI + i) for i in range(5)]
    assert lead["lines"][0]["msisdn"] == str(8613_900_000_000)       # flagged: MSISDN known
    assert lead["lines"][4]["msisdn"] is None                         # not yet committed then
    assert lead["devices"] == ["35000000000001"] and lead["last_cells"] == ["460-0-1-1", "460-0-1-2"]
    assert out[1]["line_imsi"] is None and out[1]["rig_id"] == big.id


async def test_rig_known_only_to_the_store_is_read_back(pool):
    configure(ActionPolicy(suspend_min_sims=3, police_lead_min_sims=3))
    rig = Rig("rig-bbbbbbbbbb", {str(BASE_IMSI + i) for i in range(3)}, {"35000000000001"},
              {"460-0-1-1"}, 1_791_000_000, 1_791_003_600, {"devices": "3 SIMs rotate over 1 shared devices"})
    await commit(pool, [flag(0, "rig_member", rig_id=rig.id)], [rig])
    await commit(pool, [flag(1, "rig_member", rig_id=rig.id)])         # no rigs passed this time
    assert [r["action"] for r in await rows(pool)] == ["suspend", "police_lead", "suspend"]


async def test_suppression_window_per_line_and_action(pool):
    configure(ActionPolicy(suppress_s=3600))
    await commit(pool, [flag(1)])
    await commit(pool, [flag(1, "bulk_registration")])                 # same line, same action
    await commit(pool, [flag(2, msisdn=str(8613_900_000_001))])        # other IMSI, same MSISDN
    assert len(await rows(pool)) == 1
    # a different action for the same line is not suppressed
    rig = Rig("rig-cccccccccc", {str(BASE_IMSI + i) for i in (1, 3, 4)}, set(), set(), 1, 2,
              {"cell": "3 machine-like SIMs active together in cell 460-0-1-1"})
    await commit(pool, [flag(1, "rig", rig_id=rig.id)], [rig])
    assert [r["action"] for r in await rows(pool)] == ["reverify", "suspend"]
    # once the window has passed, the line may be asked again
    await pool.execute("UPDATE verification_outbox SET created_at = created_at - interval '2 hours'")
    await commit(pool, [flag(1, "rig_member")], [rig])
    assert [r["action"] for r in await rows(pool)] == ["reverify", "suspend", "suspend"]
    # a dead letter does not hold back a new request
    await pool.execute("UPDATE verification_outbox SET status = 'dead' WHERE action = 'reverify'")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO flags (id, imsi, kind, score, flagged_at, reasons) "
                           "VALUES (999, $1, 'x', 0.9, now(), '[]')", BASE_IMSI + 1)
        assert len(await enqueue(conn, [flag(1)], [999])) == 1


async def test_one_batch_asks_once_per_line(pool):
    configure(ActionPolicy())
    await commit(pool, [flag(1), flag(1, "bulk_registration")])
    assert len(await rows(pool)) == 1


async def test_summary_for_operators(pool):
    configure(ActionPolicy())
    await commit(pool, [flag(i) for i in range(4)])
    await pool.execute("UPDATE verification_outbox SET status = 'dead', attempts = 12, "
                       "last_error = 'HTTP 503', last_status = 503 WHERE id = 1")
    await pool.execute("UPDATE verification_outbox SET status = 'delivered', delivered_at = "
                       "created_at + interval '3 seconds' WHERE id = 2")
    s = await outbox_summary(pool)
    assert s["depth"] == {"pending": 2, "sending": 0, "delivered": 1, "dead": 1}
    assert s["oldest_pending_age_s"] >= 0 and s["delivery_p99_s_24h"] == 3.0
    [d] = s["dead_letters"]
    assert d["last_error"] == "HTTP 503" and d["attempts"] == 12 and d["action"] == "reverify"
    assert str(BASE_IMSI) [:9] not in json.dumps(s)               # no subscriber identifiers
