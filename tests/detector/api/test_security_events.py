"""Every security event is a row of the hash-chained audit log (tokens issued, failed
authentication, status callbacks, verification runs; reloads and lockouts are in
test_credentials and test_lockout), and the chain still verifies. Also: the check order of a
lookup, callback errors in the API's problem format, no version in ``Server``."""

from __future__ import annotations

import json
import time
import uuid

from detector.api import verify_audit
from detector.verify import signed_headers, status_routes
from tests.detector.api.conftest import BODY, CLIENT_SECRET, audit_rows, auth

SECRET = "callback-secret-0123456789"


async def test_security_events_are_chained(pool, api_config, make_client):
    client = await make_client(pool, api_config, routes=[status_routes(pool, SECRET)])
    form = {"grant_type": "client_credentials", "client_id": "police-platform"}
    issued = await client.post("/oauth/token", data={**form, "client_secret": CLIENT_SECRET})
    assert issued.status == 200
    assert (await client.post("/oauth/token", data={**form, "client_secret": "wrong"})).status == 401
    assert (await client.get("/v1/audit/verify", headers=auth("admin"))).status == 200
    assert (await client.get("/v1/audit/verify", headers=auth("analyst"))).status == 403

    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, body, "
            "status, created_at) VALUES ($1, 'k', 0, 'reverify', '{\"lines\": []}'::jsonb, "
            "'delivered', now())", uuid.UUID(int=7))
    body = json.dumps({"request_id": str(uuid.UUID(int=7)), "outcome": "reverified",
                       "time": "2026-10-05T08:30:00Z"}).encode()
    ok = await client.post("/v1/verification/status", data=body,
                           headers={**signed_headers(SECRET, int(time.time()), body),
                                    "Content-Type": "application/json"})
    assert ok.status == 200
    forged = await client.post("/v1/verification/status", data=body,
                               headers={**signed_headers("not the secret", int(time.time()), body),
                                        "Content-Type": "application/json"})
    assert forged.status == 401 and forged.content_type == "application/problem+json"
    problem = await forged.json(content_type=None)
    assert problem["instance"] == forged.headers["X-Request-Id"] and problem["reason"] == "bad-signature"
    assert problem["title"] == "Unauthorized" and problem["detail"]

    rows = await audit_rows(pool)
    events = [(r["action"], r["outcome"], r["reason"]) for r in rows]
    assert events == [
        ("token.issue", "applied", ""), ("token.issue", "refused", "invalid_client"),
        ("audit.verify", "answered", ""), ("audit.verify", "refused", "role_forbidden"),
        ("verification.status", "applied", ""), ("verification.status", "refused", "bad-signature")]
    issued_row = rows[0]
    assert (issued_row["client_id"], issued_row["role"], issued_row["status"]) == (
        "police-platform", "police", 200)
    token = (await issued.json())["access_token"]
    assert token not in json.dumps([dict(r) for r in rows], default=str)   # never the token
    assert json.loads(rows[1]["query"])["client_id"] == "police-platform"
    assert json.loads(rows[2]["query"])["ok"] is True
    assert json.loads(rows[4]["query"])["outcome"] == "reverified"
    assert (rows[4]["auth"], rows[5]["auth"]) == ("signature", "none")
    assert (await verify_audit(pool)).ok


async def test_a_regulator_is_refused_before_its_body_is_judged(client, pool):
    resp = await client.post("/v1/lookups", data=b"{not json",
                             headers={**auth("regulator"), "Content-Type": "application/json"})
    assert resp.status == 403 and (await resp.json(content_type=None))["reason"] == "role_forbidden"
    resp = await client.post("/v1/lookups", json=BODY, headers=auth("regulator"))
    assert resp.status == 403
    rows = await audit_rows(pool)
    assert [r["reason"] for r in rows] == ["role_forbidden"] * 2
    assert rows[1]["case_ref"] == BODY["case_ref"]          # what was asked is still kept


async def test_the_server_header_names_no_versions(client):
    for resp in (await client.get("/v1/health"), await client.get("/nowhere"),
                 await client.post("/v1/lookups", json=BODY)):
        assert resp.headers["Server"] == "goipwatch"
