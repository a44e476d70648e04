"""POST /v1/lookups: every role's fields and refusals, validation, audit rows, rate limits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from aiohttp import web

from detector.api import ApiConfig, verify_audit
from tests.detector.api.conftest import (BODY, CELL_BEFORE, CELL_NOW, CLIENT_SECRET, ID_HASH, IMEI_A,
                                         IMEI_B, IMSI, MSISDN, OTHER_IMSI, RIG, ZERO_IMSI, ZERO_OTHER,
                                         ZERO_RIG, audit_rows, auth, credentials_toml,
                                         seed_test_plmn)

PROBLEM = "application/problem+json"


async def _problem(resp, status: int, reason: str) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    doc = await resp.json(content_type=None)
    assert doc["status"] == status and doc["reason"] == reason and doc["title"] and doc["detail"]
    assert doc["instance"] == resp.headers["X-Request-Id"]
    return doc


async def test_police_lookup_answers_registration_flags_rig_devices_cells(client, pool):
    resp = await client.post("/v1/lookups", json=BODY, headers=auth("police"))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    raw = await resp.read()
    doc = json.loads(raw)
    assert doc["number"] == MSISDN and doc["case_ref"] == BODY["case_ref"] and doc["role"] == "police"
    [sub] = doc["subscribers"]
    assert sub["imsi"] == IMSI and sub["msisdn"] == MSISDN
    assert sub["registration"] == {"activated_at": "2026-10-01T09:30:00Z", "channel": "agent",
                                   "carrier": "China Mobile", "id_hash": ID_HASH}
    assert sub["devices"] == [{"imei": IMEI_A, "last_seen": "2026-10-05T08:00:00Z"},
                              {"imei": IMEI_B, "last_seen": "2026-10-05T05:00:00Z"}]
    assert sub["cells"] == [{"cell_id": CELL_NOW, "hour": "2026-10-05T08:00:00Z"},
                            {"cell_id": CELL_BEFORE, "hour": "2026-10-05T06:00:00Z"}]
    assert {f["kind"] for f in sub["flags"]} == {"sim_anomaly", "rig"}
    anomaly = next(f for f in sub["flags"] if f["kind"] == "sim_anomaly")
    assert anomaly["reasons"][0].startswith("143 distinct numbers") and anomaly["rig_id"] == RIG
    assert sub["rig"]["id"] == RIG and sub["rig"]["members"] == [IMSI, OTHER_IMSI]
    assert sub["rig"]["devices"] == [IMEI_A, IMEI_B]
    assert sub["evidence"]["features"]["distinct_callees_24h"] == 143.0

    [row] = await audit_rows(pool)
    assert row["action"] == "lookup" and row["outcome"] == "answered" and row["status"] == 200
    assert row["client_id"] == "police-client" and row["role"] == "police" and row["auth"] == "bearer"
    assert row["case_ref"] == BODY["case_ref"] and row["legal_basis"] == BODY["legal_basis"]
    assert row["officer"] == BODY["officer"]
    assert json.loads(row["query"]) == {"number_type": "msisdn", "number": MSISDN}
    assert row["answer_sha256"] == hashlib.sha256(raw).hexdigest()
    fields = json.loads(row["fields"])
    assert "subscribers[].registration.id_hash" in fields and "subscribers[].devices[].imei" in fields
    assert row["request_id"] == resp.headers["X-Request-Id"]


async def test_analyst_sees_flags_and_rig_but_no_id_hash_devices_or_cells(client, pool):
    resp = await client.post("/v1/lookups", json={**BODY, "number_type": "imsi", "number": IMSI},
                             headers=auth("analyst"))
    assert resp.status == 200
    [sub] = (await resp.json())["subscribers"]
    assert sub["registration"] == {"activated_at": "2026-10-01T09:30:00Z", "channel": "agent",
                                   "carrier": "China Mobile"}
    assert "devices" not in sub and "cells" not in sub and "state_as_of" not in sub
    assert sub["flags"] and sub["rig"]["id"] == RIG
    assert ID_HASH not in await resp.text()
    [row] = await audit_rows(pool)
    assert not any("id_hash" in f or "devices[]" in f for f in json.loads(row["fields"]))


async def test_admin_sees_everything(client):
    resp = await client.post("/v1/lookups", json=BODY, headers=auth("admin"))
    [sub] = (await resp.json())["subscribers"]
    assert sub["registration"]["id_hash"] == ID_HASH and sub["devices"] and sub["cells"]


async def test_regulator_is_refused_and_the_refusal_audited(client, pool):
    await _problem(await client.post("/v1/lookups", json=BODY, headers=auth("regulator")),
                   403, "role_forbidden")
    [row] = await audit_rows(pool)
    assert (row["outcome"], row["reason"], row["status"], row["role"]) == \
        ("refused", "role_forbidden", 403, "regulator")
    assert json.loads(row["fields"]) == [] and row["case_ref"] == BODY["case_ref"]


async def test_imei_lookup_finds_the_sims_of_the_rig(client):
    resp = await client.post("/v1/lookups", json={**BODY, "number_type": "imei", "number": IMEI_B},
                             headers=auth("police"))
    assert resp.status == 200
    subs = (await resp.json())["subscribers"]
    assert [s["imsi"] for s in subs] == [IMSI, OTHER_IMSI]
    assert subs[1]["flags"][0]["kind"] == "rig_member" and subs[1]["devices"] == []


async def test_unknown_number_is_404_and_audited(client, pool):
    await _problem(await client.post("/v1/lookups", json={**BODY, "number": "8613900000000"},
                                     headers=auth("police")), 404, "no_subscriber")
    [row] = await audit_rows(pool)
    assert row["outcome"] == "not_found" and row["reason"] == "no_subscriber"


async def test_case_ref_and_legal_basis_are_required(client, pool):
    for missing in ("case_ref", "legal_basis", "officer"):
        body = {k: v for k, v in BODY.items() if k != missing}
        await _problem(await client.post("/v1/lookups", json=body, headers=auth("police")),
                       400, f"missing_{missing}")
    await _problem(await client.post("/v1/lookups", json={**BODY, "case_ref": "  "},
                                     headers=auth("police")), 400, "missing_case_ref")
    rows = await audit_rows(pool)
    assert [r["reason"] for r in rows] == ["missing_case_ref", "missing_legal_basis",
                                           "missing_officer", "missing_case_ref"]
    assert all(r["outcome"] == "refused" and r["status"] == 400 for r in rows)
    assert rows[0]["legal_basis"] == BODY["legal_basis"]      # what was asked is kept


async def test_malformed_requests_get_clear_problems(client, pool):
    h = {**auth("police"), "Content-Type": "application/json"}
    await _problem(await client.post("/v1/lookups", data=b'{"number": ', headers=h), 400, "malformed_json")
    await _problem(await client.post("/v1/lookups", data=b'\xff\xfe', headers=h), 400, "malformed_json")
    await _problem(await client.post("/v1/lookups", data=b"[1, 2]", headers=h), 400, "invalid_body")
    doc = await _problem(await client.post("/v1/lookups", json={**BODY, "case_ref": 42},
                                           headers=auth("police")), 400, "invalid_type")
    assert doc["field"] == "case_ref"
    doc = await _problem(await client.post("/v1/lookups", json={**BODY, "number": 8613800138000},
                                           headers=auth("police")), 400, "invalid_type")
    assert doc["field"] == "number"
    await _problem(await client.post("/v1/lookups", json={**BODY, "number_type": "iccid"},
                                     headers=auth("police")), 400, "invalid_number_type")
    await _problem(await client.post("/v1/lookups", json={**BODY, "number_type": "imsi", "number": "12"},
                                     headers=auth("police")), 400, "invalid_number")
    await _problem(await client.post("/v1/lookups", json={**BODY, "number_type": "imei",
                                                          "number": IMEI_A[:14] + "0"},
                                     headers=auth("police")), 400, "invalid_number")
    doc = await _problem(await client.post("/v1/lookups", json={**BODY, "name": "x"},
                                           headers=auth("police")), 400, "unknown_field")
    assert doc["field"] == "name"
    await _problem(await client.post("/v1/lookups", json={**BODY, "officer": "a\nb"},
                                     headers=auth("police")), 400, "invalid_value")
    await _problem(await client.post("/v1/lookups", data="number=1", headers={
        **auth("police"), "Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type")
    await _problem(await client.post("/v1/lookups", data=b"{" + b" " * 20000 + b"}", headers=h),
                   413, "body_too_large")
    rows = await audit_rows(pool)
    assert len(rows) == 12 and all(r["outcome"] == "refused" for r in rows)
    assert (await verify_audit(pool)).ok


async def test_unauthenticated_and_bad_tokens_are_401_and_audited(client, pool):
    doc = await _problem(await client.post("/v1/lookups", json=BODY), 401, "missing_credentials")
    assert doc["type"] == "urn:goipwatch:problem:missing_credentials"
    resp = await client.post("/v1/lookups", json=BODY, headers={"Authorization": "Bearer nope"})
    await _problem(resp, 401, "invalid_token")
    assert "invalid_token" in resp.headers["WWW-Authenticate"]
    await _problem(await client.post("/v1/lookups", json=BODY, headers={"Authorization": "Basic eDp5"}),
                   401, "invalid_token")
    rows = await audit_rows(pool)
    assert [r["status"] for r in rows] == [401, 401, 401]
    assert all(r["client_id"] == "" and r["auth"] == "none" and r["remote"] == "127.0.0.1" for r in rows)


async def test_rate_limit_per_client_with_retry_after(pool, tokens_file, make_client):
    config = ApiConfig.from_toml({"tokens_file": str(tokens_file), "rate_per_s": 0.5, "burst": 2}, "api")
    client = await make_client(pool, config)
    statuses = [(await client.post("/v1/lookups", json=BODY, headers=auth("police"))).status
                for _ in range(2)]
    assert statuses == [200, 200]
    resp = await client.post("/v1/lookups", json=BODY, headers=auth("police"))
    await _problem(resp, 429, "rate_limited")
    assert resp.headers["Retry-After"] == "2"
    # another client has its own bucket
    assert (await client.post("/v1/lookups", json=BODY, headers=auth("analyst"))).status == 200
    rows = await audit_rows(pool)
    assert [r["status"] for r in rows] == [200, 200, 429, 200]
    assert rows[2]["reason"] == "rate_limited" and rows[2]["client_id"] == "police-client"


async def test_a_client_with_its_own_rate_is_limited_by_it_not_the_default(pool, tmp_path,
                                                                         make_client):
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml().replace(
        'client_id = "police-client"', 'client_id = "police-client"\nrate_per_s = 0.5\nburst = 1'))
    config = ApiConfig.from_toml({"tokens_file": str(creds), "rate_per_s": 100.0, "burst": 100},
                                 "api")
    client = await make_client(pool, config)
    statuses = [(await client.post("/v1/lookups", json=BODY, headers=auth(role))).status
                for role in ("police", "police", "analyst", "analyst")]
    assert statuses == [200, 429, 200, 200]          # the analyst keeps the default bucket


async def test_client_credentials_grant_issues_short_lived_tokens(pool, client, api_config, make_client):
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                   "client_id": "police-platform",
                                                   "client_secret": CLIENT_SECRET})
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    tok = await resp.json()
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == api_config.token_ttl_s
    assert await pool.fetchval("SELECT count(*) FROM api_tokens WHERE sha256 = $1",
                               hashlib.sha256(tok["access_token"].encode()).hexdigest()) == 1
    bearer = {"Authorization": f"Bearer {tok['access_token']}"}
    assert (await client.post("/v1/lookups", json=BODY, headers=bearer)).status == 200
    # a second process on the same store accepts it too
    other = await make_client(pool, api_config)
    assert (await other.post("/v1/lookups", json=BODY, headers=bearer)).status == 200
    rows = await audit_rows(pool)
    assert {r["client_id"] for r in rows} == {"police-platform"}
    # HTTP Basic client authentication
    import base64
    basic = base64.b64encode(f"police-platform:{CLIENT_SECRET}".encode()).decode()
    resp = await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             headers={"Authorization": f"Basic {basic}"})
    assert resp.status == 200
    # refusals
    doc = await _problem(await client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "police-platform", "client_secret": "wrong"}),
        401, "invalid_client")
    assert doc["error"] == "invalid_client"
    await _problem(await client.post("/oauth/token", data={
        "grant_type": "password", "client_id": "police-platform", "client_secret": CLIENT_SECRET}),
        400, "unsupported_grant_type")
    await _problem(await client.post("/oauth/token", json={}), 415, "unsupported_media_type")
    # expired tokens are refused
    await pool.execute("UPDATE api_tokens SET expires_at = now() - interval '1 s'")
    third = await make_client(pool, api_config)
    await _problem(await third.post("/v1/lookups", json=BODY, headers=bearer), 401, "invalid_token")


async def test_unknown_routes_and_methods_are_problems(client):
    await _problem(await client.get("/v1/nothing"), 404, "not_found")
    resp = await client.get("/v1/lookups")
    await _problem(resp, 405, "method_not_allowed")
    assert "POST" in resp.headers["Allow"]


async def test_extra_routes_are_mounted(pool, api_config, make_client):
    routes = web.RouteTableDef()

    @routes.post("/v1/platform/status")
    async def status(request):
        return web.json_response({"stored": True})

    client = await make_client(pool, api_config, [routes])
    assert (await (await client.post("/v1/platform/status", json={})).json()) == {"stored": True}
    assert (await client.get("/v1/health")).status == 200


async def test_logs_carry_no_subscriber_data(client, caplog):
    caplog.set_level(logging.DEBUG)
    await client.post("/v1/lookups", json=BODY, headers=auth("police"))
    await client.post("/v1/lookups", json={**BODY, "case_ref": ""}, headers=auth("police"))
    await client.post("/v1/lookups", json={**BODY, "number": "+86 139 0000 0000"}, headers=auth("police"))
    records = [r for r in caplog.records if r.name.startswith("goipwatch.api")]
    assert len(records) == 3
    for r in records:
        text = json.dumps(vars(r), default=str)
        for secret in (MSISDN, "13800138000", "13900000000", IMSI, BODY["case_ref"], BODY["officer"],
                       ID_HASH, "token-of-"):
            assert secret not in text
        assert {"request_id", "client_id", "status", "latency_ms"} <= set(vars(r))


async def test_concurrent_lookups_keep_the_chain_intact(client, pool):
    answers = await asyncio.gather(*[client.post("/v1/lookups", json=BODY, headers=auth("police"))
                                     for _ in range(30)])
    assert all(a.status == 200 for a in answers)
    report = await verify_audit(pool)
    assert report.ok and report.rows == 30 and report.head_seq == 30


async def test_sims_and_devices_with_leading_zeros_are_answered_by_their_15_digits(client, pool):
    await seed_test_plmn(pool)
    resp = await client.post("/v1/lookups", json={**BODY, "number_type": "imsi", "number": ZERO_IMSI},
                             headers=auth("police"))
    assert resp.status == 200, await resp.text()
    [sub] = (await resp.json())["subscribers"]
    assert sub["imsi"] == ZERO_IMSI and sub["registration"]["carrier"] == "001-01"
    assert sub["devices"] == [{"imei": IMEI_B, "last_seen": "2026-10-05T08:00:00Z"}]
    assert sub["rig"]["id"] == ZERO_RIG and sub["rig"]["members"] == [ZERO_IMSI, ZERO_OTHER]
    assert sub["rig"]["devices"] == [IMEI_B]

    resp = await client.post("/v1/lookups", json={**BODY, "number_type": "imei", "number": IMEI_B},
                             headers=auth("police"))
    assert [s["imsi"] for s in (await resp.json())["subscribers"]] == [ZERO_IMSI, ZERO_OTHER, IMSI, OTHER_IMSI]


async def test_concurrent_lookups_are_audited_one_row_each_with_the_body_sent(client, pool):
    bodies = ([BODY] * 12 + [{**BODY, "number": "8613900000000"}] * 4      # answered, unknown
              + [{**BODY, "case_ref": "x"}] * 4)                            # refused
    responses = await asyncio.gather(*[client.post("/v1/lookups", json=b, headers=auth("police"))
                                       for b in bodies])
    sent = {r.headers["X-Request-Id"]: (r.status, hashlib.sha256(await r.read()).hexdigest())
            for r in responses}
    assert sorted(s for s, _ in sent.values()) == [200] * 12 + [400] * 4 + [404] * 4
    rows = await audit_rows(pool)
    assert len(rows) == len(bodies)
    assert {r["request_id"]: (r["status"], r["answer_sha256"]) for r in rows} == sent
    assert (await verify_audit(pool)).ok


async def test_evidence_features_carry_their_units_and_the_audit_row_the_stores_event_time(client, pool):
    """A lookup on a store whose data reach 2026-10-05 08:00 (event time) is audited with that
    time, answered or not, so the report counts it in the month of its data."""
    await pool.execute("INSERT INTO engine_state (key, value) VALUES ('clock', $1::jsonb) "
                       "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                       json.dumps({"watermark": 1_791_187_200, "next_tick": 0}))
    resp = await client.post("/v1/lookups", json=BODY, headers=auth("police"))
    assert resp.status == 200, await resp.text()
    [sub] = (await resp.json())["subscribers"]
    assert sub["evidence"]["units"]["distinct_callees_24h"] == "numbers"
    assert set(sub["evidence"]["units"]) == set(sub["evidence"]["features"])
    await _problem(await client.post("/v1/lookups", json={**BODY, "number": "+8613999999999"},
                                     headers=auth("police")), 404, "no_subscriber")
    rows = await audit_rows(pool)
    assert [json.loads(r["query"])["event_time"] for r in rows] == ["2026-10-05T08:00:00Z"] * 2
    assert "subscribers[].evidence.units.distinct_callees_24h" in json.loads(rows[0]["fields"])
    assert (await verify_audit(pool)).ok
