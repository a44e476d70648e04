"""Mutual TLS on a real loopback server: mapped certificates are accepted (by subject CN or
fingerprint) with their role; unmapped or untrusted ones and missing ones are refused. A
personal certificate names the officer of its lookups: its subject."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import pytest

from detector.api import ApiConfig, start_api
from tests.detector.api.certs import Ca, fingerprint, write_pair
from tests.detector.api.conftest import BODY, TOKENS, audit_rows, credentials_toml


@pytest.fixture
def pki(tmp_path):
    ca, rogue = Ca("goipwatch test client CA"), Ca("rogue CA")
    out = {"dir": tmp_path, "ca": ca.write(tmp_path / "ca.crt")}
    out["server"] = write_pair(*ca.issue("localhost", server=True), tmp_path, "server")
    police_cert, police_key = ca.issue("psb-gz-officer-12345")
    out["police"] = write_pair(police_cert, police_key, tmp_path, "police")
    reg_cert, reg_key = ca.issue("miit-report")
    out["regulator"] = write_pair(reg_cert, reg_key, tmp_path, "regulator")
    out["unmapped"] = write_pair(*ca.issue("somebody"), tmp_path, "unmapped")
    out["rogue"] = write_pair(*rogue.issue("psb-gz-officer-12345"), tmp_path, "rogue")
    extra = ('\n[[certificates]]\nsubject_cn = "psb-gz-officer-12345"\nclient_id = "psb-gz"\n'
             'identity = "officer 12345, Guangzhou PSB"\nrole = "police"\n'
             f'\n[[certificates]]\nfingerprint_sha256 = "{fingerprint(reg_cert)}"\n'
             'client_id = "miit"\nidentity = "MIIT"\nrole = "regulator"\n')
    out["tokens"] = tmp_path / "credentials.toml"
    out["tokens"].write_text(credentials_toml(extra))
    return out


def _config(pki, **kw) -> ApiConfig:
    cert, key = pki["server"]
    return ApiConfig.from_toml({"host": "127.0.0.1", "port": 0, "tls_cert": str(cert),
                                "tls_key": str(key), "client_ca": str(pki["ca"]),
                                "tokens_file": str(pki["tokens"]), **kw}, "api")


def _client_ctx(pki, who: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))   # the server's cert is from the same CA
    if who:
        ctx.load_cert_chain(*map(str, pki[who]))
    return ctx


# a personal certificate: the officer is its subject, the request need not name one
CERT_BODY = {k: v for k, v in BODY.items() if k != "officer"}


async def _post(url, ctx, headers=None, body=CERT_BODY):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.post(url + "/v1/lookups", json=body, ssl=ctx, headers=headers) as r:
            return r.status, await r.json(content_type=None)


async def _serve(pool, config):
    runner = await start_api(pool, config)
    host, port = runner.addresses[0][:2]
    return runner, f"https://{host}:{port}"


async def test_mutual_tls_maps_certificates_to_identities(pool, pki):
    runner, url = await _serve(pool, _config(pki))
    try:
        status, doc = await _post(url, _client_ctx(pki, "police"))
        assert status == 200 and doc["subscribers"][0]["registration"]["id_hash"]
        # the certificate's holder cannot state another officer
        status, doc = await _post(url, _client_ctx(pki, "police"), body=BODY)
        assert (status, doc["reason"], doc["field"]) == (403, "unregistered_officer", "officer")
        status, doc = await _post(url, _client_ctx(pki, "regulator"))
        assert (status, doc["reason"]) == (403, "role_forbidden")
        status, doc = await _post(url, _client_ctx(pki, "unmapped"))
        assert (status, doc["reason"]) == (401, "unknown_certificate")
        status, doc = await _post(url, _client_ctx(pki, None))
        assert (status, doc["reason"]) == (401, "missing_credentials")
        # a bearer token still works over TLS without a client certificate
        status, _ = await _post(url, _client_ctx(pki, None), {"Authorization": f"Bearer {TOKENS['analyst']}"},
                                BODY)
        assert status == 200
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await _post(url, _client_ctx(pki, "rogue"))
    finally:
        await runner.cleanup()
    rows = await audit_rows(pool)
    assert [(r["client_id"], r["auth"], r["status"]) for r in rows] == [
        ("psb-gz", "mtls", 200), ("psb-gz", "mtls", 403), ("miit", "mtls", 403),
        ("", "none", 401), ("", "none", 401), ("analyst-client", "bearer", 200)]
    assert rows[0]["officer"] == "psb-gz-officer-12345"     # the certificate's subject
    assert rows[1]["officer"] == BODY["officer"] and rows[1]["reason"] == "unregistered_officer"


async def test_required_client_certificate_refuses_the_handshake(pool, pki):
    runner, url = await _serve(pool, _config(pki, require_client_cert=True))
    try:
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(_post(url, _client_ctx(pki, None)), 10)
        status, _ = await _post(url, _client_ctx(pki, "police"))
        assert status == 200
    finally:
        await runner.cleanup()
    assert len(await audit_rows(pool)) == 1
