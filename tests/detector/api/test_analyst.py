"""The analysts' endpoints: flags, rigs, a SIM's timeline, verdicts, allow-list entries and the
outbox; every role's refusals, bad input, and the audit rows of all of them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import jsonschema
import pytest

from detector.api import verify_audit
from detector.api.kit import AUDIT
from tests.detector.api.conftest import (
    CELL_NOW,
    ID_HASH,
    IMEI_A,
    IMEI_B,
    IMSI,
    OTHER_IMSI,
    RIG,
    ZERO_IMSI,
    ZERO_OTHER,
    ZERO_RIG,
    audit_rows,
    auth,
    seed_test_plmn,
)
from tests.detector.api.test_lookups import _problem

FLAGGED = datetime(2026, 10, 5, 7, 40, tzinfo=UTC)
ANALYST_ACTOR = "the analyst desk (analyst-client)"
VERDICT = f"/v1/flags/{IMSI}/verdict"
DEAD, PENDING = uuid.UUID(int=1), uuid.UUID(int=2)

# (method, path, json body) of every endpoint, with a valid request
ENDPOINTS = [
    ("GET", "/v1/flags", None),
    ("GET", "/v1/rigs", None),
    ("GET", f"/v1/rigs/{RIG}", None),
    ("GET", f"/v1/sims/{IMSI}/timeline", None),
    ("POST", VERDICT, {"verdict": "confirm", "note": "seen at the site"}),
    ("POST", "/v1/allowlist", {"kind": "imsi", "value": OTHER_IMSI, "reason": "IoT meter"}),
    ("GET", "/v1/outbox", None),
    ("POST", "/v1/outbox/requeue", {}),
]


@pytest.fixture
async def history(pool):
    """The 'raised' history of the seeded flags, and a verification request of IMSI's
    anomaly flag answered by the platform, plus a dead letter."""
    async with pool.acquire() as conn:
        flags = await conn.fetch("SELECT id, imsi, kind, score, reasons FROM flags ORDER BY id")
        for f in flags:
            await conn.execute(
                "INSERT INTO flag_history (flag_id, event, score, event_time, detail) "
                "VALUES ($1, 'raised', $2, $3, jsonb_build_object('reasons', $4::jsonb))",
                f["id"], f["score"], FLAGGED, f["reasons"])
        anomaly = next(f["id"] for f in flags if str(f["imsi"]) == IMSI and f["kind"] == "sim_anomaly")
        for request_id, status, created in ((PENDING, "delivered", datetime(2026, 10, 5, 7, 45, tzinfo=UTC)),
                                            (DEAD, "dead", datetime(2026, 10, 5, 7, 46, tzinfo=UTC))):
            await conn.execute(
                "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, line_imsi, "
                "rig_id, body, status, attempts, last_status, last_error, created_at) "
                "VALUES ($1, $2, $3, 'reverify', $4, $5, $6::jsonb, $7, 3, 503, 'unavailable', $8)",
                request_id, request_id.hex, anomaly, int(IMSI), RIG,
                json.dumps({"lines": [{"imsi": IMSI, "msisdn": None}]}), status, created)
        await conn.execute(
            "INSERT INTO verification_outcomes (request_id, outcome, outcome_at) VALUES ($1, 'failed', $2)",
            PENDING, datetime(2026, 10, 5, 9, 0, tzinfo=UTC))


async def _send(client, method: str, path: str, body, role: str | None):
    headers = auth(role) if role else {}
    if method == "GET":
        return await client.get(path, headers=headers)
    return await client.post(path, json=body, headers=headers)


async def test_open_flags_for_analysts_without_id_hash(client, pool):
    resp = await client.get("/v1/flags", headers=auth("analyst"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    doc = await resp.json()
    assert doc["status"] == "open" and doc["truncated"] is False
    assert {(f["imsi"], f["kind"]) for f in doc["flags"]} == {
        (IMSI, "sim_anomaly"), (IMSI, "rig"), (OTHER_IMSI, "rig_member")}
    f = next(f for f in doc["flags"] if f["kind"] == "sim_anomaly")
    assert f["score"] == pytest.approx(0.91) and f["flagged_at"] == "2026-10-05T07:40:00Z"
    assert f["rig_id"] == RIG and f["status"] == "open" and f["reasons"][0].startswith("143 distinct")
    assert ID_HASH not in await resp.text() and "id_hash" not in await resp.text()

    resp = await client.get("/v1/flags?status=any&limit=1", headers=auth("admin"))
    doc = await resp.json()
    assert len(doc["flags"]) == 1 and doc["truncated"] is True
    await pool.execute("UPDATE flags SET status = 'dismissed' WHERE imsi = $1", int(OTHER_IMSI))
    doc = await (await client.get("/v1/flags?status=dismissed", headers=auth("analyst"))).json()
    assert [f["imsi"] for f in doc["flags"]] == [OTHER_IMSI]

    rows = await audit_rows(pool)
    assert [(r["action"], r["role"], r["outcome"], r["status"]) for r in rows] == [
        ("flags.list", "analyst", "answered", 200), ("flags.list", "admin", "answered", 200),
        ("flags.list", "analyst", "answered", 200)]
    assert json.loads(rows[1]["query"]) == {"method": "GET", "path": "/v1/flags",
                                            "params": {"status": "any", "limit": "1"}}
    assert "flags[].reasons" in json.loads(rows[0]["fields"])
    assert rows[0]["identity"] == "the analyst desk" and rows[0]["client_id"] == "analyst-client"


async def test_flag_query_parameters_are_checked(client, pool):
    for query, field in (("status=closed", "status"), ("limit=0", "limit"), ("limit=1001", "limit"),
                         ("limit=ten", "limit"), ("limit=%EF%BC%91", "limit"), ("sort=score", "sort"),
                         ("status=open&status=any", "status")):
        doc = await _problem(await client.get(f"/v1/flags?{query}", headers=auth("analyst")), 400,
                             "unknown_field" if field == "sort" else "invalid_value")
        assert doc["field"] == field
    rows = await audit_rows(pool)
    assert len(rows) == 7 and all(r["outcome"] == "refused" and r["status"] == 400 for r in rows)


async def test_rigs_list_and_one_rig(client, pool):
    doc = await (await client.get("/v1/rigs", headers=auth("analyst"))).json()
    [rig] = doc["rigs"]
    assert rig == {"id": RIG, "sims": 2, "members": [IMSI, OTHER_IMSI], "devices": [IMEI_A, IMEI_B],
                   "cells": [CELL_NOW], "first_at": "2026-10-05T07:40:00Z",
                   "last_at": "2026-10-05T08:50:00Z", "evidence": "2 SIMs; 2 devices; 1 cell; 2 shared devices"}
    assert doc["truncated"] is False

    resp = await client.get(f"/v1/rigs/{RIG}", headers=auth("admin"))
    assert resp.status == 200
    one = await resp.json()
    assert one["rig"] == rig
    assert [(f["imsi"], f["kind"]) for f in one["flags"]] == [
        (IMSI, "rig"), (IMSI, "sim_anomaly"), (OTHER_IMSI, "rig_member")]

    await _problem(await client.get("/v1/rigs/rig-nothing", headers=auth("analyst")), 404, "no_rig")
    rows = await audit_rows(pool)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("rigs.list", "answered"), ("rigs.get", "answered"), ("rigs.get", "not_found")]
    assert json.loads(rows[2]["query"])["rig_id"] == "rig-nothing"


async def test_timeline_in_time_order(client, pool, history):
    resp = await client.get(f"/v1/sims/{IMSI}/timeline", headers=auth("analyst"))
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert doc["imsi"] == IMSI and {f["kind"] for f in doc["flags"]} == {"sim_anomaly", "rig"}
    events = doc["events"]
    assert [(e["source"], e["event"]) for e in events] == [
        ("flag_history", "raised"), ("flag_history", "raised"),
        ("verification", "verification_requested"), ("verification", "verification_requested"),
        ("verification", "verification_failed")]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert events[0]["actor"] == "detector" and events[0]["detail"]["reasons"]
    assert {e["status"] for e in events[2:4]} == {"delivered", "dead"}
    assert events[4]["request_id"] == str(PENDING) and events[4]["outcome"] == "failed"

    # the verification request names IMSI's line only
    other = await (await client.get(f"/v1/sims/{OTHER_IMSI}/timeline", headers=auth("admin"))).json()
    assert [e["event"] for e in other["events"]] == ["raised"]
    await _problem(await client.get("/v1/sims/460009999999999/timeline", headers=auth("analyst")),
                   404, "no_flag")
    doc = await _problem(await client.get("/v1/sims/12345/timeline", headers=auth("analyst")),
                         400, "invalid_number")
    assert doc["field"] == "imsi"


async def test_verdict_is_stored_by_the_caller_and_shows_in_the_timeline(client, pool, history):
    resp = await client.post(VERDICT, json={"verdict": "confirm", "note": "GoIP box found\nat the site"},
                             headers=auth("analyst"))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"imsi": IMSI, "verdict": "confirm", "status": "confirmed", "flags": 2,
                                 "actor": ANALYST_ACTOR}
    assert {r["status"] for r in await pool.fetch("SELECT status FROM flags WHERE imsi = $1", int(IMSI))} \
        == {"confirmed"}
    fb = await pool.fetchrow("SELECT verdict, actor, note FROM feedback WHERE imsi = $1", int(IMSI))
    assert tuple(fb) == ("confirm", ANALYST_ACTOR, "GoIP box found\nat the site")

    events = (await (await client.get(f"/v1/sims/{IMSI}/timeline", headers=auth("analyst"))).json())["events"]
    mine = [e for e in events if e.get("actor") == ANALYST_ACTOR]
    assert sorted((e["source"], e["event"]) for e in mine) == [
        ("feedback", "confirm"), ("flag_history", "confirmed"), ("flag_history", "confirmed")]
    assert next(e for e in mine if e["source"] == "feedback")["note"] == "GoIP box found\nat the site"
    assert events[-1]["actor"] == ANALYST_ACTOR      # the newest events are the verdict's
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)

    resp = await client.post(VERDICT, json={"verdict": "dismiss"}, headers=auth("admin"))
    assert (await resp.json())["status"] == "dismissed"
    [row1, _, row3] = await audit_rows(pool)
    assert (row1["action"], row1["outcome"], row1["role"], row1["identity"]) == \
        ("flags.verdict", "applied", "analyst", "the analyst desk")
    assert json.loads(row1["query"]) == {"method": "POST", "path": VERDICT, "imsi": IMSI,
                                         "verdict": "confirm", "note": "GoIP box found\nat the site"}
    assert row3["client_id"] == "admin-client" and json.loads(row3["query"])["verdict"] == "dismiss"


async def test_verdict_refusals(client, pool):
    await _problem(await client.post("/v1/flags/460009999999999/verdict", json={"verdict": "confirm"},
                                     headers=auth("analyst")), 404, "no_flag")
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    h = auth("analyst")
    cases = [
        ({"verdict": "maybe"}, "invalid_value", "verdict"),
        ({}, "missing_verdict", "verdict"),
        ({"verdict": 1}, "invalid_type", "verdict"),
        ({"verdict": "confirm", "note": 5}, "invalid_type", "note"),
        ({"verdict": "confirm", "note": "a\x00b"}, "invalid_value", "note"),
        ({"verdict": "confirm", "note": "x" * 1001}, "invalid_value", "note"),
        ({"verdict": "confirm", "by": "someone else"}, "unknown_field", "by"),
    ]
    for body, reason, field in cases:
        doc = await _problem(await client.post(VERDICT, json=body, headers=h), 400, reason)
        assert doc["field"] == field
    await _problem(await client.post(VERDICT, json=[1], headers=h), 400, "invalid_body")
    await _problem(await client.post(VERDICT, data=b"{", headers={**h, "Content-Type": "application/json"}),
                   400, "malformed_json")
    await _problem(await client.post(VERDICT, data="verdict=confirm", headers={
        **h, "Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type")
    doc = await _problem(await client.post("/v1/flags/46000123/verdict", json={"verdict": "confirm"},
                                           headers=h), 400, "invalid_number")
    assert doc["field"] == "imsi"
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    assert await pool.fetchval("SELECT count(*) FROM flags WHERE status <> 'open'") == 0
    rows = await audit_rows(pool)
    assert len(rows) == 12 and rows[0]["outcome"] == "not_found"
    assert all(r["outcome"] == "refused" and r["action"] == "flags.verdict" for r in rows[1:])


async def test_allowlist_entries_are_stored_by_the_caller(client, pool):
    h = auth("analyst")
    for kind, value, stored in (("imsi", OTHER_IMSI, OTHER_IMSI), ("cell", "460-00-4101-1234", CELL_NOW),
                                ("id_hash", ID_HASH, ID_HASH)):
        resp = await client.post("/v1/allowlist", json={"kind": kind, "value": value,
                                                        "reason": "known call centre of Acme Ltd"}, headers=h)
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"kind": kind, "value": stored, "reason": "known call centre of Acme Ltd",
                                     "actor": ANALYST_ACTOR}
    rows = await pool.fetch("SELECT kind, value, actor FROM allowlist ORDER BY id")
    assert [tuple(r) for r in rows] == [("imsi", OTHER_IMSI, ANALYST_ACTOR), ("cell", CELL_NOW, ANALYST_ACTOR),
                                        ("id_hash", ID_HASH, ANALYST_ACTOR)]
    good = {"kind": "imsi", "value": OTHER_IMSI, "reason": "IoT meters"}
    for body, reason, field in (
            ({**good, "kind": "msisdn"}, "invalid_value", "kind"),
            ({**good, "value": "123"}, "invalid_value", "value"),
            ({**good, "kind": "id_hash", "value": "short"}, "invalid_value", "value"),
            ({**good, "reason": "  "}, "missing_reason", "reason"),
            ({**good, "reason": "a\tb"}, "invalid_value", "reason"),
            ({"kind": "imsi", "value": OTHER_IMSI}, "missing_reason", "reason"),
            ({**good, "value": 460001234567891}, "invalid_type", "value"),
            ({**good, "actor": "x"}, "unknown_field", "actor")):
        doc = await _problem(await client.post("/v1/allowlist", json=body, headers=h), 400, reason)
        assert doc["field"] == field
    assert await pool.fetchval("SELECT count(*) FROM allowlist") == 3
    audit = await audit_rows(pool)
    assert [r["outcome"] for r in audit] == ["applied"] * 3 + ["refused"] * 8
    assert json.loads(audit[1]["query"])["value"] == CELL_NOW


async def test_outbox_summary_and_requeue(client, pool, history):
    resp = await client.get("/v1/outbox", headers=auth("analyst"))
    assert resp.status == 200
    doc = await resp.json()
    assert doc["depth"]["dead"] == 1 and doc["depth"]["delivered"] == 1
    assert [d["request_id"] for d in doc["dead_letters"]] == [str(DEAD)]
    assert doc["outcomes"] == {"failed": 1}
    assert IMSI not in await resp.text()
    assert (await (await client.get("/v1/outbox?dead_limit=1", headers=auth("admin"))).json())["dead_letters"]
    await _problem(await client.get("/v1/outbox?dead_limit=0", headers=auth("admin")), 400, "invalid_value")

    await _problem(await client.post("/v1/outbox/requeue", json={}, headers=auth("analyst")),
                   403, "role_forbidden")
    for body in ({"request_ids": ["nope"]}, {"request_ids": [1]}):
        await _problem(await client.post("/v1/outbox/requeue", json=body, headers=auth("admin")),
                       400, "invalid_value")
    await _problem(await client.post("/v1/outbox/requeue", json={"request_ids": "all"},
                                     headers=auth("admin")), 400, "invalid_type")
    resp = await client.post("/v1/outbox/requeue", json={"request_ids": [str(PENDING)]}, headers=auth("admin"))
    assert await resp.json() == {"requeued": 0}
    resp = await client.post("/v1/outbox/requeue", headers=auth("admin"))      # no body: all
    assert await resp.json() == {"requeued": 1}
    assert await pool.fetchval("SELECT status FROM verification_outbox WHERE request_id = $1", DEAD) == "pending"
    rows = await audit_rows(pool)
    assert [(r["action"], r["outcome"]) for r in rows][-2:] == [("outbox.requeue", "applied")] * 2
    assert json.loads(rows[-1]["query"])["request_ids"] == "all"
    assert json.loads(rows[-2]["query"])["request_ids"] == [str(PENDING)]


async def test_police_and_regulator_are_refused_everywhere_and_audited(client, pool):
    for method, path, body in ENDPOINTS:
        for role in ("police", "regulator"):
            await _problem(await _send(client, method, path, body, role), 403, "role_forbidden")
        await _problem(await _send(client, method, path, body, None), 401, "missing_credentials")
    rows = await audit_rows(pool)
    assert len(rows) == 3 * len(ENDPOINTS)
    assert [r["role"] for r in rows] == ["police", "regulator", ""] * len(ENDPOINTS)
    assert all(r["outcome"] == "refused" and r["fields"] == "[]" for r in rows)
    assert [r["action"] for r in rows[::3]] == ["flags.list", "rigs.list", "rigs.get", "sims.timeline",
                                                "flags.verdict", "allowlist.add", "outbox.summary",
                                                "outbox.requeue"]
    # nothing was changed
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    assert await pool.fetchval("SELECT count(*) FROM allowlist") == 0
    assert (await verify_audit(pool)).ok


async def test_every_endpoint_answers_analyst_and_admin(client, pool, history):
    for role in ("analyst", "admin"):
        for method, path, body in ENDPOINTS:
            resp = await _send(client, method, path, body, role)
            expected = 403 if (role, path) == ("analyst", "/v1/outbox/requeue") else 200
            assert resp.status == expected, (role, path, await resp.text())
    rows = await audit_rows(pool)
    assert len(rows) == 2 * len(ENDPOINTS)
    assert (await verify_audit(pool)).ok


async def test_an_action_that_cannot_be_audited_is_not_applied(client, pool):
    writer = client.server.app[AUDIT]
    real = writer.append

    async def failing(entry, attempts=20, conn=None):
        if conn is not None:
            raise asyncpg.PostgresConnectionError("audit store unavailable")
        return await real(entry, attempts, conn)

    writer.append = failing
    await _problem(await client.post(VERDICT, json={"verdict": "dismiss"}, headers=auth("analyst")),
                   503, "audit_unavailable")
    await _problem(await client.get("/v1/flags", headers=auth("analyst")), 503, "audit_unavailable")
    assert await pool.fetchval("SELECT count(*) FROM flags WHERE status <> 'open'") == 0
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    writer.append = real
    assert (await client.post(VERDICT, json={"verdict": "dismiss"}, headers=auth("analyst"))).status == 200
    assert [r["action"] for r in await audit_rows(pool)] == ["flags.verdict"]
    assert (await verify_audit(pool)).ok


async def test_concurrent_actions_keep_the_chain_intact(client, pool):
    import asyncio
    answers = await asyncio.gather(*[
        client.post(VERDICT, json={"verdict": "confirm" if i % 2 else "dismiss"}, headers=auth("analyst"))
        if i % 3 else client.get("/v1/flags", headers=auth("admin")) for i in range(24)])
    assert all(a.status == 200 for a in answers)
    report = await verify_audit(pool)
    assert report.ok and report.rows == 24


async def test_answers_match_the_openapi_schemas(client, history):
    spec = await (await client.get("/openapi.json")).json()

    def check(instance, name):
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)

    for path, name in (("/v1/flags", "FlagList"), ("/v1/rigs", "RigList"), (f"/v1/rigs/{RIG}", "RigDetail"),
                       (f"/v1/sims/{IMSI}/timeline", "Timeline"), ("/v1/outbox", "OutboxSummary")):
        check(await (await client.get(path, headers=auth("admin"))).json(), name)
    check({"verdict": "confirm", "note": "x"}, "VerdictRequest")
    check(await (await client.post(VERDICT, json={"verdict": "confirm"}, headers=auth("admin"))).json(),
          "VerdictAnswer")
    check(await (await client.get(f"/v1/sims/{IMSI}/timeline", headers=auth("admin"))).json(), "Timeline")
    body = {"kind": "cell", "value": CELL_NOW, "reason": "IoT site"}
    check(body, "AllowlistRequest")
    check(await (await client.post("/v1/allowlist", json=body, headers=auth("admin"))).json(), "AllowlistAnswer")
    check(await (await client.post("/v1/outbox/requeue", json={}, headers=auth("admin"))).json(), "RequeueAnswer")
    check(await (await client.get("/v1/flags", headers=auth("police"))).json(content_type=None), "Problem")
    for p in ("/v1/flags", "/v1/flags/{imsi}/verdict", "/v1/rigs", "/v1/rigs/{id}",
              "/v1/sims/{imsi}/timeline", "/v1/allowlist", "/v1/outbox", "/v1/outbox/requeue"):
        assert p in spec["paths"], p


async def test_nul_characters_are_refused_and_still_audited(client, pool):
    from tests.detector.api.conftest import BODY
    await _problem(await client.post("/v1/allowlist", json={"kind": "cell", "value": CELL_NOW,
                                                            "reason": "a\x00b"}, headers=auth("analyst")),
                   400, "invalid_value")
    await _problem(await client.get("/v1/rigs/rig%00x", headers=auth("analyst")), 404, "no_rig")
    await _problem(await client.post("/v1/lookups", json={**BODY, "case_ref": "C\x001"},
                                     headers=auth("police")), 400, "invalid_value")
    rows = await audit_rows(pool)
    assert [r["action"] for r in rows] == ["allowlist.add", "rigs.get", "lookup"]
    assert json.loads(rows[0]["query"])["reason"] == "a\ufffdb"
    assert json.loads(rows[1]["query"])["rig_id"] == "rig\ufffdx"
    assert rows[2]["case_ref"] == "C\ufffd1"


async def test_events_of_many_sims_are_those_of_each_sim(pool, history):
    """The batched timelines (the console's rig page) equal the per-SIM ones, with a police
    lead naming both SIMs in its body (no line), answered once, and verdicts."""
    from detector import feedback
    from detector.api.queries import sim_events, sim_events_many

    lead = uuid.UUID(int=3)
    async with pool.acquire() as conn:
        rig_flag = await conn.fetchval("SELECT id FROM flags WHERE kind = 'rig'")
        await conn.execute(
            "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, rig_id, "
            "body, status, created_at) VALUES ($1, 'lead', $2, 'police_lead', $3, $4::jsonb, "
            "'delivered', $5)", lead, rig_flag, RIG,
            json.dumps({"lines": [{"imsi": OTHER_IMSI}, {"imsi": IMSI}]}),
            datetime(2026, 10, 5, 7, 45, tzinfo=UTC))     # the same time as a request of IMSI
        await conn.execute(
            "INSERT INTO verification_outcomes (request_id, outcome, outcome_at, detail) "
            "VALUES ($1, 'police_confirmed', $2, '{\"case\": \"x\"}'::jsonb)", lead,
            datetime(2026, 10, 6, 9, 0, tzinfo=UTC))
    await feedback.judge(pool, OTHER_IMSI, "dismiss", "desk", "an IoT meter")
    await feedback.judge(pool, IMSI, "confirm", "desk")
    nobody = "460001111111111"
    async with pool.acquire() as conn:
        one_by_one = {i: await sim_events(conn, i) for i in (IMSI, OTHER_IMSI, nobody)}
        many = await sim_events_many(conn, [OTHER_IMSI, nobody, IMSI, OTHER_IMSI])
    assert one_by_one[nobody] is None and one_by_one[IMSI] and one_by_one[OTHER_IMSI]
    assert many == {IMSI: one_by_one[IMSI], OTHER_IMSI: one_by_one[OTHER_IMSI]}
    sources = {(e["source"], e["event"]) for e in many[OTHER_IMSI]["events"]}
    assert {("verification", "verification_requested"), ("verification", "verification_police_confirmed"),
            ("feedback", "dismiss"), ("flag_history", "raised")} <= sources
    assert await sim_events_many(pool, []) == {}


async def test_flags_rigs_and_timelines_name_sims_with_leading_zeros_by_their_15_digits(client, pool):
    from detector.api.queries import sim_events, sim_events_many

    await seed_test_plmn(pool)
    doc = await (await client.get("/v1/flags", headers=auth("analyst"))).json()
    assert {ZERO_IMSI, ZERO_OTHER} <= {f["imsi"] for f in doc["flags"]}
    one = await (await client.get(f"/v1/rigs/{ZERO_RIG}", headers=auth("analyst"))).json()
    assert one["rig"]["members"] == [ZERO_IMSI, ZERO_OTHER] and one["rig"]["devices"] == [IMEI_B]
    assert [f["imsi"] for f in one["flags"]] == [ZERO_IMSI, ZERO_OTHER]
    resp = await client.get(f"/v1/sims/{ZERO_OTHER}/timeline", headers=auth("analyst"))
    assert resp.status == 200, await resp.text()
    timeline = await resp.json()
    assert timeline["imsi"] == ZERO_OTHER
    # the police lead names the SIM in its body only (no line, another flag)
    assert [e["action"] for e in timeline["events"] if e["source"] == "verification"] == ["police_lead"]
    async with pool.acquire() as conn:
        many = await sim_events_many(conn, [ZERO_IMSI, ZERO_OTHER])
        assert many == {i: await sim_events(conn, i) for i in (ZERO_IMSI, ZERO_OTHER)}
