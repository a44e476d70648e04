"""Fixtures of the API tests: a migrated store seeded with one flagged SIM in a rig, the
credentials of every role, and a client on a loopback test server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector import ids
from detector.api import ApiConfig, Credentials, make_app
from detector.api.auth import sha256_hex
from detector.features import state as st
from detector.store.checkpoint import STATE_LAYOUT
from detector.testing import store_pool

IMSI = "460001234567890"
MSISDN = "8613800138000"
ID_HASH = "a3f1c2d4e5b6a7980011223344556677"
IMEI_A = "35693803564380" + str(ids.luhn_check_digit("35693803564380"))
IMEI_B = "01234567890123" + str(ids.luhn_check_digit("01234567890123"))  # leading zero
OTHER_IMSI = "460001234567891"
RIG = "rig-0a1b2c3d4e"
CELL_NOW, CELL_BEFORE = "460-00-4101-1234", "460-00-4101-99"
LAST_HOUR = int(datetime(2026, 10, 5, 8, tzinfo=UTC).timestamp()) // 3600

ROLES = ("police", "analyst", "regulator", "admin")
TOKENS = {role: f"token-of-{role}-0123456789abcdef" for role in ROLES}
CLIENT_SECRET = "s3cret-of-the-police-platform"
OFFICER = "GZ044123"          # an officer id registered with every credential below
BODY = {"number": "+86 138 0013 8000", "number_type": "msisdn", "case_ref": "GZ-2026-0042",
        "legal_basis": "Anti-Telecom and Online Fraud Law Art. 14", "officer": OFFICER}


def credentials_toml(extra: str = "") -> str:
    parts = []
    for role, token in TOKENS.items():
        parts.append(f'[[tokens]]\nsha256 = "{sha256_hex(token)}"\nclient_id = "{role}-client"\n'
                     f'identity = "the {role} desk"\nrole = "{role}"\nofficers = ["{OFFICER}"]\n')
    parts.append(f'[[clients]]\nclient_id = "police-platform"\nsecret_sha256 = "{sha256_hex(CLIENT_SECRET)}"\n'
                 f'identity = "carrier-police platform"\nrole = "police"\n'
                 f'officers = ["{OFFICER}", "GZ044187"]\n')
    return "\n".join(parts) + extra


def auth(role: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def seed(pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO registrations (imsi, msisdn, iccid, activated_at, id_hash, channel, carrier, source) "
            "VALUES ($1, $2, '8986001234567890123', $3, $4, 'agent', 'China Mobile', 'test'), "
            "($5, 8613800138001, '8986001234567890124', $3, $4, 'agent', 'China Mobile', 'test')",
            int(IMSI), int(MSISDN), datetime(2026, 10, 1, 9, 30, tzinfo=UTC), ID_HASH, int(OTHER_IMSI))
        flagged = datetime(2026, 10, 5, 7, 40, tzinfo=UTC)
        for imsi, kind, score, reasons in (
                (IMSI, "sim_anomaly", 0.91, ["143 distinct numbers contacted in 24 h; 99th percentile of subscribers: 19"]),
                (IMSI, "rig", 0.88, ["co-located with 5 machine-like SIMs"]),
                (OTHER_IMSI, "rig_member", 0.7, ["shares a device with a flagged SIM"])):
            await conn.execute(
                "INSERT INTO flags (imsi, msisdn, kind, score, flagged_at, rig_id, reasons) "
                "VALUES ($1, NULL, $2, $3, $4, $5, $6::jsonb)", int(imsi), kind, score, flagged, RIG,
                json.dumps(reasons))
        await conn.execute(
            "INSERT INTO rigs (id, sims, members, devices, cells, first_at, last_at, evidence) "
            "VALUES ($1, 2, $2::jsonb, $3::jsonb, $4::jsonb, $5, $6, $7)", RIG,
            json.dumps([IMSI, OTHER_IMSI]), json.dumps([IMEI_A, IMEI_B]),
            json.dumps([CELL_NOW]), flagged, datetime(2026, 10, 5, 8, 50, tzinfo=UTC),
            "2 SIMs; 2 devices; 1 cell; 2 shared devices")
        await conn.execute(
            "INSERT INTO feature_snapshots (imsi, event_time, purpose, features) "
            "VALUES ($1, $2, 'flag', $3::jsonb)", int(IMSI), flagged,
            json.dumps({"distinct_callees_24h": 143.0, "sms_out_24h": 0.0}))
        await conn.execute("INSERT INTO cells (id, name) VALUES (0, $1), (1, $2)", CELL_NOW, CELL_BEFORE)
        await conn.execute("INSERT INTO engine_state (key, value) VALUES ('layout', $1::jsonb)",
                           json.dumps(STATE_LAYOUT))
        s = st.empty_sim_state(1)
        s["last_hour"] = LAST_HOUR
        s["last_ts"] = LAST_HOUR * 3600 + 1200
        s["msisdn"] = int(MSISDN)
        s["imei"][0, :2] = [int(IMEI_A), int(IMEI_B)]
        s["imei_hour"][0, :2] = [LAST_HOUR, LAST_HOUR - 3]
        s["slot"]["top_cell"][0, LAST_HOUR % st.SLOTS] = 0
        s["slot"]["top_cell"][0, (LAST_HOUR - 2) % st.SLOTS] = 1
        await conn.execute("INSERT INTO sim_state (imsi, state) VALUES ($1, $2)", int(IMSI), s.tobytes())


# A rig of two SIMs of the test PLMN 001-01 on a device whose TAC begins with 0: the store
# holds them as bigint, the answers name them by their 15 digits.
ZERO_IMSI, ZERO_OTHER = "001010000000001", "001010000000002"
ZERO_RIG = "rig-00101zero"


async def seed_test_plmn(pool) -> None:
    """:data:`ZERO_IMSI` registered and flagged, :data:`ZERO_OTHER` flagged, in
    :data:`ZERO_RIG` on :data:`IMEI_B`, as the daemon writes them; a police lead of the rig
    whose body names both lines."""
    flagged = datetime(2026, 10, 5, 7, 40, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO registrations (imsi, msisdn, iccid, activated_at, id_hash, channel, carrier, source) "
            "VALUES ($1, 8613800138009, '8986001234567890199', $2, $3, 'agent', '001-01', 'test')",
            int(ZERO_IMSI), datetime(2026, 10, 1, 9, 30, tzinfo=UTC), ID_HASH)
        for imsi in (ZERO_IMSI, ZERO_OTHER):
            await conn.execute(
                "INSERT INTO flags (imsi, msisdn, kind, score, flagged_at, rig_id, reasons) "
                "VALUES ($1, NULL, 'rig', 0.8, $2, $3, '[\"shares a device\"]'::jsonb)",
                int(imsi), flagged, ZERO_RIG)
        await conn.execute(
            "INSERT INTO rigs (id, sims, members, devices, cells, first_at, last_at, evidence) "
            "VALUES ($1, 2, $2::jsonb, $3::jsonb, $4::jsonb, $5, $5, '2 SIMs; 1 device')", ZERO_RIG,
            json.dumps([ZERO_IMSI, ZERO_OTHER]), json.dumps([IMEI_B]), json.dumps([CELL_NOW]), flagged)
        s = st.empty_sim_state(1)
        s["last_hour"] = LAST_HOUR
        s["imei"][0, 0] = int(IMEI_B)
        s["imei_hour"][0, 0] = LAST_HOUR
        await conn.execute("INSERT INTO sim_state (imsi, state) VALUES ($1, $2)", int(ZERO_IMSI), s.tobytes())
        await conn.execute(
            "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, rig_id, "
            "body, status, created_at) VALUES ('00000000-0000-0000-0000-00000000000a', 'zero-lead', "
            "0, 'police_lead', $1, $2::jsonb, 'pending', $3)", ZERO_RIG,
            json.dumps({"lines": [{"imsi": ZERO_IMSI}, {"imsi": ZERO_OTHER}]}), flagged)


@pytest.fixture
async def pool(pg_dsn):
    async with store_pool(pg_dsn, seed) as p:
        yield p


@pytest.fixture
def tokens_file(tmp_path) -> Path:
    path = tmp_path / "credentials.toml"
    path.write_text(credentials_toml())
    return path


@pytest.fixture
def api_config(tokens_file) -> ApiConfig:
    return ApiConfig.from_toml({"tokens_file": str(tokens_file), "rate_per_s": 1000.0,
                                "burst": 1000}, "api")


@pytest.fixture
async def make_client():
    clients = []

    async def make(pool, config, routes=(), credentials: Credentials | None = None) -> TestClient:
        client = TestClient(TestServer(make_app(pool, config, routes, credentials), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def client(pool, api_config, make_client):
    return await make_client(pool, api_config)


async def audit_rows(pool):
    return await pool.fetch("SELECT * FROM audit_log ORDER BY seq")
