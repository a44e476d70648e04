"""Credentials reload while serving: an edited credentials file takes effect within a couple of
seconds (a removed client's issued token, its console session and its token requests, and a
removed static token, all refused) while a request in flight completes; a bad file keeps the
last good credentials; SIGHUP reloads at once; every reload is in the audit chain."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time

import pytest

from detector.api import ApiConfig, start_api, verify_audit
from detector.api.auth import Credentials, sha256_hex
from detector.api.credentials import CredentialSource, diff
from tests.detector.api.conftest import BODY, CLIENT_SECRET, audit_rows, auth, credentials_toml

DESK_ID, DESK_SECRET = "fraud-desk", "fraud-desk-secret-0123456789"
DESK = (f'\n[[clients]]\nclient_id = "{DESK_ID}"\nsecret_sha256 = "{sha256_hex(DESK_SECRET)}"\n'
        'identity = "fraud desk"\nrole = "analyst"\n')


def _without(text: str, *entries: str) -> str:
    """``text`` without the TOML array entries that contain any of ``entries``."""
    blocks = re.split(r"\n(?=\[\[)", text)
    return "\n".join(b for b in blocks if not any(e in b for e in entries))


@pytest.fixture
def live_config(tokens_file) -> ApiConfig:
    tokens_file.write_text(credentials_toml(DESK))
    return ApiConfig.from_toml({"tokens_file": str(tokens_file), "rate_per_s": 1000.0,
                                "burst": 1000, "credentials_poll_s": 0.5}, "api")


async def _token(client, client_id="police-platform", secret=CLIENT_SECRET):
    return await client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                   "client_id": client_id, "client_secret": secret})


async def _console_login(client):
    form = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
    resp = await client.post("/console/login", data={"csrf": csrf, "client_id": DESK_ID,
                                                      "secret": DESK_SECRET}, allow_redirects=False)
    assert resp.status == 303, await resp.text()


async def test_removed_credentials_are_refused_within_seconds_and_in_flight_requests_complete(
        pool, live_config, tokens_file, make_client):
    client = await make_client(pool, live_config)
    resp = await _token(client)
    assert resp.status == 200
    issued = (await resp.json())["access_token"]
    bearer = {"Authorization": f"Bearer {issued}"}
    assert (await client.post("/v1/lookups", json=BODY, headers=bearer)).status == 200
    assert (await client.post("/v1/lookups", json=BODY, headers=auth("police"))).status == 200
    await _console_login(client)
    assert (await client.get("/console/rigs", allow_redirects=False)).status == 200

    # a lookup of a credential that stays, its body still on its way while the file changes
    release = asyncio.Event()

    async def slow_body():
        yield json.dumps(BODY)[:10].encode()
        await release.wait()
        yield json.dumps(BODY)[10:].encode()

    in_flight = asyncio.create_task(client.post(
        "/v1/lookups", data=slow_body(), headers={**auth("admin"), "Content-Type": "application/json"}))
    await asyncio.sleep(0.3)
    assert not in_flight.done()

    edited = _without(tokens_file.read_text(), "police-platform", 'client_id = "police-client"',
                      DESK_ID)
    tokens_file.write_text(edited)
    started = time.monotonic()
    while (await client.post("/v1/lookups", json=BODY, headers=bearer)).status != 401:
        assert time.monotonic() - started < 3.0, "the removed client's token still works"
        await asyncio.sleep(0.1)
    assert time.monotonic() - started < 3.0
    assert (await client.post("/v1/lookups", json=BODY, headers=auth("police"))).status == 401
    resp = await client.get("/console/rigs", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    assert (await _token(client)).status == 401
    assert (await client.post("/v1/lookups", json=BODY, headers=auth("analyst"))).status == 200

    release.set()
    answered = await asyncio.wait_for(in_flight, 10)
    assert answered.status == 200 and (await answered.json())["subscribers"]

    # revoked in the store too: the token and the session do not come back with the client
    assert await pool.fetchval("SELECT count(*) FROM api_tokens WHERE client_id = 'police-platform'") == 0
    assert await pool.fetchval("SELECT count(*) FROM console_sessions WHERE client_id = $1", DESK_ID) == 0
    [reload] = [r for r in await audit_rows(pool) if r["action"] == "credentials.reload"]
    query = json.loads(reload["query"])
    assert reload["outcome"] == "applied" and query["trigger"] == "poll"
    assert query["removed"] == [DESK_ID, "police-platform"]
    assert query["revoked_tokens"] == 1 and query["revoked_sessions"] == 1
    assert query["file_sha256"] == sha256_hex(edited.encode())
    assert (await verify_audit(pool)).ok


async def test_a_new_secret_revokes_the_tokens_issued_with_the_old_one(pool, live_config, tokens_file,
                                                                      make_client):
    client = await make_client(pool, live_config)
    issued = (await (await _token(client)).json())["access_token"]
    tokens_file.write_text(tokens_file.read_text().replace(sha256_hex(CLIENT_SECRET),
                                                           sha256_hex("the new secret")))
    await client.server.app[_credentials_key()].check()
    resp = await client.post("/v1/lookups", json=BODY, headers={"Authorization": f"Bearer {issued}"})
    assert resp.status == 401
    assert (await _token(client, secret="the new secret")).status == 200
    [reload] = [r for r in await audit_rows(pool) if r["action"] == "credentials.reload"]
    assert json.loads(reload["query"])["rekeyed"] == ["police-platform"]


def _credentials_key():
    from detector.api.kit import CREDENTIALS
    return CREDENTIALS


async def test_a_bad_file_keeps_the_last_good_credentials_and_is_audited_once(
        pool, live_config, tokens_file, make_client):
    client = await make_client(pool, live_config)
    source = client.server.app[_credentials_key()]
    good = tokens_file.read_text()
    tokens_file.write_text(good + '\n[[tokens]]\nsha256 = "not a digest"\n')
    await asyncio.sleep(1.5)                        # three polls of the broken file
    assert (await client.post("/v1/lookups", json=BODY, headers=auth("police"))).status == 200
    tokens_file.write_text(good.replace('role = "police"', 'role = "polize"', 1))
    await source.check()
    tokens_file.unlink()
    await source.check()
    assert (await client.post("/v1/lookups", json=BODY, headers=auth("police"))).status == 200
    rows = [r for r in await audit_rows(pool) if r["action"] == "credentials.reload"]
    assert [(r["outcome"], r["reason"]) for r in rows] == [("refused", "invalid_credentials")] * 3
    errors = [json.loads(r["query"])["error"] for r in rows]
    assert "tokens[4].sha256" in errors[0] and "role" in errors[1] and "cannot be read" in errors[2]
    assert (await verify_audit(pool)).ok


async def test_sighup_reloads_the_credentials_of_a_serving_api(pool, live_config, tokens_file):
    config = ApiConfig.from_toml({"tokens_file": str(tokens_file), "port": 0,
                                  "credentials_poll_s": 60.0}, "api")     # no poll in time
    runner = await start_api(pool, config)
    try:
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)
        tokens_file.write_text(_without(tokens_file.read_text(), DESK_ID))
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(50):
            rows = [r for r in await audit_rows(pool) if r["action"] == "credentials.reload"]
            if rows:
                break
            await asyncio.sleep(0.05)
        [row] = rows
        assert json.loads(row["query"])["trigger"] == "sighup"
        assert json.loads(row["query"])["removed"] == [DESK_ID]
    finally:
        await runner.cleanup()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL     # released with the API


def test_diff_names_removed_and_rekeyed_clients():
    old = Credentials.parse(credentials_toml(DESK))
    new = Credentials.parse(_without(credentials_toml(DESK), DESK_ID).replace(
        sha256_hex(CLIENT_SECRET), sha256_hex("other")))
    assert diff(old, new) == ({DESK_ID}, {"police-platform"})
    assert diff(old, old) == (frozenset(), frozenset())


async def test_a_file_still_being_written_is_taken_at_the_next_poll(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(credentials_toml())
    source = CredentialSource(path, settle_s=0.2)
    assert await source.check() is None                       # unchanged: nothing read
    path.write_text(credentials_toml(DESK))
    check = asyncio.create_task(source.check())
    await asyncio.sleep(0.05)
    path.write_text(credentials_toml(DESK + "\n"))           # the writer is not done
    assert await check is None and DESK_ID not in source.current.clients
    reload = await source.check()
    assert reload.ok and reload.changed and DESK_ID in source.current.clients
