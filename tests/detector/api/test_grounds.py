"""The grounds of a lookup: a case reference of the configured form, a configured legal
basis, an officer registered with the credential; refused with the field named, and audited."""

from __future__ import annotations

import pytest

from detector.api import ApiConfig
from detector.api.auth import Identity
from detector.api.grounds import DEFAULT_LEGAL_BASES, GroundsError, GroundsPolicy
from tests.detector.api.conftest import BODY, OFFICER, TOKENS, audit_rows, auth, credentials_toml

PROBLEM = "application/problem+json"
PLATFORM = Identity("police-platform", "platform", "police", "bearer", ("GZ044123",))


async def test_dots_for_every_ground_get_nothing(client, pool):
    for field, status, reason in (("case_ref", 400, "invalid_case_ref"),
                                  ("legal_basis", 400, "invalid_legal_basis"),
                                  ("officer", 403, "unregistered_officer")):
        resp = await client.post("/v1/lookups", json={**BODY, field: "."}, headers=auth("police"))
        assert resp.status == status and resp.content_type == PROBLEM
        doc = await resp.json(content_type=None)
        assert (doc["reason"], doc["field"]) == (reason, field)
        assert "subscribers" not in doc and "id_hash" not in await resp.text()
    rows = await audit_rows(pool)
    assert [(r["reason"], r["outcome"], r["fields"]) for r in rows] == [
        ("invalid_case_ref", "refused", "[]"), ("invalid_legal_basis", "refused", "[]"),
        ("unregistered_officer", "refused", "[]")]


async def test_the_audit_records_the_validated_grounds(client, pool):
    body = {**BODY, "legal_basis": "  anti-telecom and ONLINE fraud law   art. 14 "}
    assert (await client.post("/v1/lookups", json=body, headers=auth("police"))).status == 200
    [row] = await audit_rows(pool)
    assert row["legal_basis"] == "Anti-Telecom and Online Fraud Law Art. 14"   # as configured
    assert (row["officer"], row["case_ref"]) == (OFFICER, BODY["case_ref"])


async def test_a_credential_without_registered_officers_cannot_look_up(pool, tmp_path, make_client):
    path = tmp_path / "credentials.toml"
    path.write_text(credentials_toml().replace(f'officers = ["{OFFICER}"]\n', "", 1))  # police token
    client = await make_client(pool, ApiConfig.from_toml({"tokens_file": str(path)}, "api"))
    resp = await client.post("/v1/lookups", json=BODY, headers={"Authorization": f"Bearer {TOKENS['police']}"})
    doc = await resp.json(content_type=None)
    assert (resp.status, doc["reason"], doc["field"]) == (403, "unregistered_officer", "officer")


async def test_the_configured_grounds_are_the_accepted_ones(pool, tokens_file, make_client):
    config = ApiConfig.from_toml({"tokens_file": str(tokens_file),
                                  "legal_bases": ["Criminal Procedure Law Art. 54"],
                                  "case_ref_pattern": r"KM\d{6}"}, "api")
    client = await make_client(pool, config)
    ok = {**BODY, "case_ref": "KM202642", "legal_basis": "Criminal Procedure Law Art. 54"}
    assert (await client.post("/v1/lookups", json=ok, headers=auth("police"))).status == 200
    resp = await client.post("/v1/lookups", json=BODY, headers=auth("police"))
    assert (await resp.json(content_type=None))["field"] == "case_ref"
    resp = await client.post("/v1/lookups", json={**ok, "legal_basis": BODY["legal_basis"]},
                             headers=auth("police"))
    doc = await resp.json(content_type=None)
    assert doc["field"] == "legal_basis" and "Criminal Procedure Law Art. 54" in doc["detail"]


@pytest.mark.parametrize("case_ref, ok", [
    ("GZ-2026-0042", True), ("A4401010000002026100042", True), ("KM/2026/17", True),
    (".", False), ("-", False), ("x", False), ("CASE", False), ("GZ-2026-", False),
    ("GZ 2026 0042", False), ("a" * 70 + "1", False)])
def test_default_case_reference_form(case_ref, ok):
    policy = GroundsPolicy()
    try:
        policy.check(PLATFORM, case_ref, DEFAULT_LEGAL_BASES[0], "GZ044123")
    except GroundsError as e:
        assert not ok and e.field == "case_ref"
    else:
        assert ok


def test_the_officer_is_tied_to_the_credential():
    policy = GroundsPolicy()
    basis = DEFAULT_LEGAL_BASES[0]
    assert policy.check(PLATFORM, "GZ-1", basis, " GZ044123 ").officer == "GZ044123"
    with pytest.raises(GroundsError, match="registered"):
        policy.check(PLATFORM, "GZ-1", basis, "GZ099999")
    personal = Identity("psb", "officer", "police", "mtls", (), "psb-gz-officer-12345")
    assert not policy.officer_required(personal)
    assert policy.check(personal, "GZ-1", basis, "").officer == "psb-gz-officer-12345"
    with pytest.raises(GroundsError) as e:
        policy.check(personal, "GZ-1", basis, "someone else")
    assert (e.value.status, e.value.field) == (403, "officer")
    shared = Identity("desk", "desk", "police", "bearer")
    with pytest.raises(GroundsError, match="no registered officers"):
        policy.check(shared, "GZ-1", basis, "anyone")


@pytest.mark.parametrize("table, key", [
    ({"legal_bases": []}, "legal_bases"), ({"legal_bases": ["ok", ""]}, "legal_bases"),
    ({"case_ref_pattern": ".*"}, "case_ref_pattern"), ({"case_ref_pattern": "("}, "case_ref_pattern")])
def test_unusable_grounds_settings_are_refused(table, key):
    with pytest.raises(ValueError, match=f"api.{key}"):
        ApiConfig.from_toml(table, "api")
