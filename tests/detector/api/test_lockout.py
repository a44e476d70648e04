"""Failed authentication is limited per source address and per client named, apart from the
clients' working rate limits: a flood of wrong secrets naming the police platform locks the
flooding address out (429) and leaves the platform's lookups and token requests answered."""

from __future__ import annotations

import json

import aiohttp
import pytest

from detector.api import ApiConfig, verify_audit
from detector.api.lockout import FailureGuard
from detector.metrics import AUTH_LOCKOUTS, LOCKOUT_SCOPES
from tests.detector.api.conftest import BODY, CLIENT_SECRET, audit_rows


@pytest.fixture
def tight_config(tokens_file) -> ApiConfig:
    # a small working bucket: had failures spent it, the platform's lookups would get 429
    return ApiConfig.from_toml({"tokens_file": str(tokens_file), "rate_per_s": 1.0, "burst": 8,
                                "failed_auth_per_min": 6.0, "failed_auth_burst": 10}, "api")


def _from(address: str) -> aiohttp.ClientSession:
    """A client session whose connections come from ``address`` (a loopback address)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def _token(http, url, secret, client_id="police-platform"):
    async with http.post(url + "/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret}) as r:
        return r.status, await r.json(content_type=None)


async def test_a_wrong_secret_flood_locks_out_the_flooder_not_the_platform(pool, tight_config,
                                                                          make_client):
    client = await make_client(pool, tight_config)
    url = str(client.make_url("")).rstrip("/")
    before = {s: AUTH_LOCKOUTS.count(scope=s) for s in ("address", "client")}
    async with _from("127.0.0.1") as platform, _from("127.0.0.2") as flooder, \
            _from("127.0.0.3") as stranger:
        status, doc = await _token(platform, url, CLIENT_SECRET)
        assert status == 200
        bearer = {"Authorization": f"Bearer {doc['access_token']}"}

        answers = [await _token(flooder, url, f"guess-{i}") for i in range(60)]
        assert [s for s, _ in answers[:10]] == [401] * 10
        assert {(s, d["reason"]) for s, d in answers[10:]} == {(429, "too_many_failures")}

        for _ in range(5):      # the platform's valid lookups: answered, not slowed
            async with platform.post(url + "/v1/lookups", json=BODY, headers=bearer) as r:
                assert r.status == 200, await r.text()
        # and it still gets tokens from its own address, though its client is locked out
        assert (await _token(platform, url, CLIENT_SECRET))[0] == 200
        # another address may not try the locked-out client's secret, right or wrong
        assert (await _token(stranger, url, CLIENT_SECRET))[1]["reason"] == "too_many_failures"
        # the flooder's bearer guesses are refused as well
        async with flooder.post(url + "/v1/lookups", json=BODY,
                                headers={"Authorization": "Bearer guessed"}) as r:
            assert r.status == 429 and r.headers["Retry-After"]

    rows = await audit_rows(pool)
    tokens = [r for r in rows if r["action"] == "token.issue"]
    assert [r["outcome"] for r in tokens].count("applied") == 2
    refused = [r for r in tokens if r["outcome"] == "refused"]
    assert len(refused) == 10 and {r["reason"] for r in refused} == {"invalid_client"}
    assert {json.loads(r["query"])["client_id"] for r in refused} == {"police-platform"}
    assert {r["remote"] for r in refused} == {"127.0.0.2"}
    lockouts = [(json.loads(r["query"])["scope"], r["remote"]) for r in rows
                if r["action"] == "auth.lockout"]
    assert lockouts == [("address", "127.0.0.2"), ("client", "127.0.0.2")]
    assert (await verify_audit(pool)).ok
    # each lockout is counted for /metrics by its scope, once (not each refusal during it)
    assert {s: AUTH_LOCKOUTS.count(scope=s) - before[s] for s in before} == {"address": 1, "client": 1}


async def test_guesses_over_many_client_ids_from_one_address_are_limited(pool, tight_config,
                                                                        make_client):
    client = await make_client(pool, tight_config)
    url = str(client.make_url("")).rstrip("/")
    before = AUTH_LOCKOUTS.count(scope="address"), AUTH_LOCKOUTS.count(scope="client")
    async with _from("127.0.0.4") as guesser:
        answers = [(await _token(guesser, url, "x", client_id=f"client-{i}"))[0] for i in range(40)]
    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    [lockout] = [r for r in await audit_rows(pool) if r["action"] == "auth.lockout"]
    assert json.loads(lockout["query"])["scope"] == "address"
    assert (AUTH_LOCKOUTS.count(scope="address"), AUTH_LOCKOUTS.count(scope="client")) == \
        (before[0] + 1, before[1])


def test_lockouts_are_exposed_per_scope_from_the_start():
    from detector.metrics import Counter

    counter = Counter()
    text = "\n".join(counter.exposition("goipwatch_auth_lockouts_total", "lockouts", LOCKOUT_SCOPES))
    assert 'goipwatch_auth_lockouts_total{scope="address"} 0' in text
    assert 'goipwatch_auth_lockouts_total{scope="client"} 0' in text
    assert "# TYPE goipwatch_auth_lockouts_total counter" in text
    counter.inc(scope="client")
    counter.inc(scope="client")
    text = "\n".join(counter.exposition("goipwatch_auth_lockouts_total", "lockouts", LOCKOUT_SCOPES))
    assert 'goipwatch_auth_lockouts_total{scope="client"} 2' in text


async def test_console_logins_are_limited_like_the_token_endpoint(pool, tight_config, make_client):
    import re

    client = await make_client(pool, tight_config)
    statuses = []
    for i in range(12):
        form = await client.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
        resp = await client.post("/console/login", data={"csrf": csrf, "client_id": "police-platform",
                                                          "secret": f"guess-{i}"})
        statuses.append(resp.status)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


def test_the_guard_refills_and_lets_the_known_address_through():
    now = [0.0]
    guard = FailureGuard(rate_per_s=0.1, burst=2, clock=lambda: now[0])
    guard.succeeded("10.0.0.1", "platform")
    assert guard.failed("10.0.0.9", "platform") == []
    started = guard.failed("10.0.0.9", "platform")
    assert [(x.scope, x.key) for x in started] == [("address", "10.0.0.9"), ("client", "platform")]
    assert guard.blocked("10.0.0.9") > 0 and guard.blocked("10.0.0.8", "platform") > 0
    assert guard.blocked("10.0.0.1", "platform") == 0        # the platform's own address
    assert guard.blocked("10.0.0.8") == 0                    # another address, no client named
    now[0] = 10.0                                            # one failure's worth refilled
    assert guard.blocked("10.0.0.9", "platform") == 0
    address, client = guard.failed("10.0.0.9", "platform")
    # each lockout row tells how many attempts the one before refused
    assert (address.refused_before, client.refused_before) == (1, 1) and guard.lockouts == 4
