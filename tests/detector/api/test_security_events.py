"""Every security event is a row of the hash-chained audit log (tokens issued, failed
authentication, status callbacks, verification runs; reloads and lockouts are in
test_credentials and test_lockout), and the chain still verifies. Also: the check order of a
lookup, callback errors in the API's problem format, no version in ``Server``."""

from __future__ import annotations

import json
import time
import uuid

from detector.api import verify_audit
from detector.api.kit import AUDIT
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
    assert problem["instance"] == forged.headers["X-Request-Id"] and problem["reason"] == "bad_signature"
    assert problem["title"] == "Unauthorized" and problem["detail"]

    rows = await audit_rows(pool)
    events = [(r["action"], r["outcome"], r["reason"]) for r in rows]
    assert events == [
        ("token.issue", "applied", ""), ("token.issue", "refused", "invalid_client"),
        ("audit.verify", "answered", ""), ("audit.verify", "refused", "role_forbidden"),
        ("verification.status", "applied", ""), ("verification.status", "refused", "bad_signature")]
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


async def _callback(client, body: bytes, secret: str = SECRET):
    return await client.post("/v1/verification/status", data=body,
                             headers={**signed_headers(secret, int(time.time()), body),
                                      "Content-Type": "application/json"})


async def test_a_callbacks_outcome_and_its_audit_row_commit_together(pool, api_config, make_client):
    """When the audit row cannot be appended, the outcome is not stored either (503, the
    platform sends it again); sent again, both are written, and the row's digest is that of
    the body sent."""
    import hashlib

    client = await make_client(pool, api_config, routes=[status_routes(pool, SECRET)])
    await pool.execute(
        "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, body, "
        "status, created_at) VALUES ($1, 'k', 0, 'reverify', '{\"lines\": []}'::jsonb, "
        "'delivered', now())", uuid.UUID(int=8))
    body = json.dumps({"request_id": str(uuid.UUID(int=8)), "outcome": "failed",
                       "time": "2026-10-05T08:30:00Z"}).encode()
    writer = client.server.app[AUDIT]
    real = writer.append

    async def broken(entry, conn=None):
        if conn is not None:           # the row of the outcome's transaction
            await conn.execute("SELECT 1")
            raise OSError("audit store unreachable")
        return await real(entry, conn)

    writer.append = broken
    failed = await _callback(client, body)
    assert failed.status == 503 and failed.content_type == "application/problem+json"
    problem = await failed.json(content_type=None)
    assert (problem["reason"], problem["instance"]) == ("audit_unavailable", failed.headers["X-Request-Id"])
    assert await pool.fetchval("SELECT count(*) FROM verification_outcomes") == 0
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    writer.append = real

    ok = await _callback(client, body)
    assert ok.status == 200
    raw = await ok.read()
    assert json.loads(raw)["outcome"] == "failed"
    [row] = [r for r in await audit_rows(pool) if r["action"] == "verification.status"]
    assert (row["outcome"], row["status"], row["auth"]) == ("applied", 200, "signature")
    assert row["answer_sha256"] == hashlib.sha256(raw).hexdigest()
    assert await pool.fetchval("SELECT count(*) FROM verification_outcomes") == 1
    # an unknown request is answered in the store's transaction too, in the problem format
    unknown = await _callback(client, body.replace(b"00000000-0000-0000-0000-000000000008",
                                                   b"00000000-0000-0000-0000-000000000009"))
    doc = await unknown.json(content_type=None)
    assert unknown.status == 404 and doc["reason"] == "unknown_request"
    assert doc["instance"] == unknown.headers["X-Request-Id"] and doc["title"] == "Not found"
    assert doc["type"] == "urn:goipwatch:problem:unknown_request"
    rows = [r for r in await audit_rows(pool) if r["action"] == "verification.status"]
    assert [(r["outcome"], r["reason"]) for r in rows] == [("applied", ""), ("not_found", "unknown_request")]
    assert rows[1]["answer_sha256"] == hashlib.sha256(await unknown.read()).hexdigest()
    # a malformed body: refused before the store, audited on its own, same format
    bad = await _callback(client, b"{not json")
    doc = await bad.json(content_type=None)
    assert (bad.status, doc["reason"], doc["instance"]) == (400, "malformed_body", bad.headers["X-Request-Id"])
    assert (await verify_audit(pool)).ok
