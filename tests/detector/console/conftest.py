"""Fixtures of the console tests: a store holding one rig written by the checkpoint's own
functions (three flagged SIMs sharing two devices in two cells, with hourly cell state),
credentials of an analyst client and a police client, and a logged-in test client."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from detector import ids
from detector.api import ApiConfig, make_app
from detector.api.auth import sha256_hex
from detector.features import state as st
from detector.flags import Flag, Rig
from detector.store import checkpoint
from detector.testing import store_pool

ANALYST_ID, ANALYST_SECRET = "analyst-desk", "analyst-secret-0123456789"
POLICE_ID, POLICE_SECRET = "police-platform", "police-secret-0123456789"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SIMS = ("460001234560001", "460001234560002", "460001234560003")
IMEIS = tuple(int(p + str(ids.luhn_check_digit(p))) for p in ("35693803564380", "35693803564390"))
CELLS = ("460-00-4101-1234", "460-00-4101-1235")
FLAGGED = int(datetime.now(UTC).timestamp()) // 3600 * 3600 - 6 * 3600   # event times lag a little
RIG = Rig(id="rig-0a1b2c3d4e", sims=set(SIMS), devices={str(i) for i in IMEIS},
          cells=set(CELLS), first=FLAGGED, last=FLAGGED + 4 * 3600,
          evidence={"shared": f"2 shared devices {HOSTILE}"})


def credentials_toml() -> str:
    return (f'[[clients]]\nclient_id = "{ANALYST_ID}"\nsecret_sha256 = "{sha256_hex(ANALYST_SECRET)}"\n'
            f'identity = "Fraud desk <b>Li</b>"\nrole = "analyst"\n\n'
            f'[[clients]]\nclient_id = "{POLICE_ID}"\nsecret_sha256 = "{sha256_hex(POLICE_SECRET)}"\n'
            f'identity = "carrier-police platform"\nrole = "police"\n')


async def seed(pool) -> None:
    flags = [Flag(imsi=s, msisdn=f"86138001380{i:02d}", score=0.95 - 0.1 * i,
                  flagged_at=FLAGGED + 600 * i, kind="sim_anomaly", rig_id=RIG.id,
                  reasons=(f"{140 - i} distinct numbers contacted in 24 h", HOSTILE if i == 0 else
                           "shares a device with a flagged SIM"),
                  features={"distinct_callees_24h": 140.0 - i})
             for i, s in enumerate(SIMS)]
    async with pool.acquire() as conn, conn.transaction():
        await checkpoint.save_flags(conn, flags)
        await checkpoint.save_rigs(conn, [RIG])
        await conn.execute("INSERT INTO cells (id, name) VALUES (0, $1), (1, $2), (2, '460-00-9999-1')",
                           *CELLS)
        await conn.execute("INSERT INTO engine_state (key, value) VALUES ('layout', $1::jsonb)",
                           json.dumps(checkpoint.STATE_LAYOUT))
        last_hour = RIG.last // 3600
        for i, imsi in enumerate(SIMS):
            s = st.empty_sim_state(1)
            s["last_hour"] = last_hour
            s["last_ts"] = RIG.last
            s["imei"][0, :2] = list(IMEIS) if i < 2 else [IMEIS[1], 0]
            s["imei_hour"][0, :2] = [last_hour - i, last_hour] if i < 2 else [last_hour, -1]
            for back in range(10):      # the rig's two cells, and once another cell
                s["slot"]["top_cell"][0, (last_hour - back) % st.SLOTS] = 2 if back == 5 and i == 2 else back % 2
            await conn.execute("INSERT INTO sim_state (imsi, state) VALUES ($1, $2)", int(imsi), s.tobytes())


@pytest.fixture
async def pool(pg_dsn):
    async with store_pool(pg_dsn, seed) as p:
        yield p


@pytest.fixture
def api_config(tmp_path) -> ApiConfig:
    path = tmp_path / "credentials.toml"
    path.write_text(credentials_toml())
    return ApiConfig.from_toml({"tokens_file": str(path), "rate_per_s": 1000.0, "burst": 1000})


@pytest.fixture
async def client(pool, api_config):
    c = TestClient(TestServer(make_app(pool, api_config), host="127.0.0.1"))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()


async def login(client, client_id: str = ANALYST_ID, secret: str = ANALYST_SECRET):
    """Log in through the form as a browser would; returns the final response."""
    form = await client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await form.text()).group(1)
    return await client.post("/console/login", data={"csrf": token, "client_id": client_id,
                                                     "secret": secret})


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


async def add_verification(pool) -> None:
    """A verification request of the first SIM answered 'failed' by the platform, and a dead
    letter whose last error is hostile."""
    import uuid
    from datetime import timedelta

    async with pool.acquire() as conn:
        flag_id = await conn.fetchval("SELECT id FROM flags WHERE imsi = $1", int(SIMS[0]))
        at = datetime.fromtimestamp(FLAGGED, UTC)
        for n, status, error in ((1, "delivered", None), (2, "dead", f"HTTP 503 {HOSTILE}")):
            await conn.execute(
                "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, "
                "line_imsi, rig_id, body, status, attempts, last_status, last_error, created_at, "
                "delivered_at) VALUES ($1, $2, $3, 'reverify', $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12)",
                uuid.UUID(int=n), f"key-{n}", flag_id, int(SIMS[0]), RIG.id,
                json.dumps({"lines": [{"imsi": SIMS[0]}]}), status, 1 if n == 1 else 8,
                200 if n == 1 else 503, error, at + timedelta(minutes=5 * n),
                at + timedelta(minutes=6) if n == 1 else None)
        await conn.execute("INSERT INTO verification_outcomes (request_id, outcome, outcome_at) "
                           "VALUES ($1, 'failed', $2)", uuid.UUID(int=1), at + timedelta(hours=1))
