"""Status callbacks from the platform: signed, validated, stored, and used as labels."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest

from detector.verify import ActionPolicy, configure, handle_status, outbox_summary, signed_headers, \
    status_routes

from .conftest import BASE_IMSI, SECRET, commit, flag, serve


def signed(doc, secret=SECRET, at=None) -> tuple[dict, bytes]:
    body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    return signed_headers(secret, int(time.time() if at is None else at), body), body


async def request_id(pool, i: int = 1) -> str:
    configure(ActionPolicy())
    await commit(pool, [flag(i)])
    return str(await pool.fetchval("SELECT request_id FROM verification_outbox WHERE line_imsi = $1",
                                   BASE_IMSI + i))


@pytest.mark.parametrize("outcome, verdict, status", [
    ("failed", "confirm", "confirmed"), ("suspended", "confirm", "confirmed"),
    ("police_confirmed", "confirm", "confirmed"), ("reverified", "dismiss", "dismissed")])
async def test_outcome_is_stored_in_history_and_as_a_label(pool, outcome, verdict, status):
    rid = await request_id(pool)
    code, doc = await handle_status(pool, SECRET, *signed(
        {"request_id": rid, "outcome": outcome, "time": "2026-10-05T08:30:00Z", "note": "ok"}))
    assert (code, doc["label"], doc["duplicate"]) == (200, verdict, False)
    row = await pool.fetchrow("SELECT outcome, outcome_at, detail FROM verification_outcomes")
    assert row["outcome"] == outcome and row["outcome_at"].isoformat() == "2026-10-05T08:30:00+00:00"
    fb = await pool.fetchrow("SELECT imsi, verdict, actor FROM feedback")
    assert (fb["imsi"], fb["verdict"], fb["actor"]) == (BASE_IMSI + 1, verdict, "platform")
    hist = await pool.fetchrow("SELECT event, actor, detail FROM flag_history WHERE actor = 'platform'")
    assert hist["event"] == f"verification_{outcome}" and json.loads(hist["detail"])["request_id"] == rid
    assert await pool.fetchval("SELECT status FROM flags") == status
    # the platform repeats itself: stored once
    code, doc = await handle_status(pool, SECRET, *signed(
        {"request_id": rid, "outcome": outcome, "time": "2026-10-05T08:30:00Z"}))
    assert (code, doc["duplicate"]) == (200, True)
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 1
    assert (await outbox_summary(pool))["outcomes"] == {outcome: 1}


async def test_bad_callbacks_are_refused_with_problem_details(pool):
    rid = await request_id(pool)
    good = {"request_id": rid, "outcome": "suspended", "time": 1_791_000_000}
    headers, body = signed(good)
    cases = [
        (headers, body.replace(b"suspended", b"reverified"), 401),              # tampered body
        (signed(good, secret=b"not-the-secret-0123456789")[0], body, 401),      # wrong secret
        (signed(good, at=time.time() - 3600)[0], body, 401),                    # replayed, stale
        ({}, body, 401),                                                         # unsigned
        (*signed(b"{not json"), 400),
        (*signed([1, 2]), 400),
        (*signed({**good, "request_id": "nope"}), 400),
        (*signed({**good, "outcome": "maybe"}), 400),
        (*signed({**good, "time": "yesterday"}), 400),
        (*signed({**good, "time": "2026-10-05T08:30:00"}), 400),                # no zone
        (*signed({**good, "note": 5}), 400),
        (*signed({**good, "request_id": str(uuid.uuid4())}), 404),
        (*signed(b"x" * 20000), 413),
    ]
    for h, b, want in cases:
        code, doc = await handle_status(pool, SECRET, h, b)
        assert code == want, (b[:60], doc)
        assert doc["status"] == want and doc["title"] and doc["type"].startswith("urn:goipwatch:problem:")
    assert await pool.fetchval("SELECT count(*) FROM verification_outcomes") == 0
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0


async def test_status_route_on_an_aiohttp_app(pool):
    rid = await request_id(pool)
    async with asyncio.timeout(20), serve(status_routes(pool, SECRET)) as base, \
            aiohttp.ClientSession() as http:
        headers, body = signed({"request_id": rid, "outcome": "police_confirmed",
                                "time": "2026-10-05T08:30:00+08:00"})
        async with http.post(base + "/v1/verification/status", data=body, headers=headers) as r:
            assert r.status == 200 and (await r.json())["label"] == "confirm"
        async with http.post(base + "/v1/verification/status", data=body + b" ", headers=headers) as r:
            assert r.status == 401 and r.content_type == "application/problem+json"


async def test_police_confirmation_of_a_rig_labels_every_line(pool):
    from detector.flags import Rig
    configure(ActionPolicy(suspend_min_sims=3, police_lead_min_sims=3))
    rig = Rig("rig-dddddddddd", {str(BASE_IMSI + i) for i in range(3)}, set(), set(), 1, 2,
              {"devices": "3 SIMs rotate over 1 shared devices"})
    await commit(pool, [flag(i, "rig_member", rig_id=rig.id) for i in range(3)], [rig])
    rid = str(await pool.fetchval("SELECT request_id FROM verification_outbox WHERE action = 'police_lead'"))
    code, doc = await handle_status(pool, SECRET, *signed(
        {"request_id": rid, "outcome": "police_confirmed", "time": 1_791_100_000}))
    assert (code, doc["flags"]) == (200, 3)
    assert sorted(r["imsi"] for r in await pool.fetch(
        "SELECT imsi FROM feedback WHERE verdict = 'confirm' AND actor = 'platform'")) == \
        [BASE_IMSI + i for i in range(3)]
