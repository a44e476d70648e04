"""Operations endpoints of a running daemon: every metric of docs/operations.md with the value
the run implies, valid exposition, no subscriber identifier anywhere; readiness semantics."""

import asyncio
import hashlib
import json
import re
import uuid
from dataclasses import astuple

import aiohttp
import asyncpg

from detector import config as config_mod
from detector.daemon import Daemon
from detector.demo import split_cdr
from detector.testing import Row, daemon_config, imsi, write_cdr
from probes.kafka_testing import MockKafka
from tests.detector.test_daemon import cdr_rows, write_config

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"{}\\]*",?)*\})? -?[0-9.e+-]+$|^[a-z_]+(\{.*\})? \+?Inf$')


def parse(text: str) -> dict[str, float]:
    """Samples by their full name with labels; fails on a line that is not exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample: {line!r}"
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.text()


async def test_metrics_count_what_the_run_did_without_subscriber_data(
        tmp_path, pg_dsn, small_world, small_model, monkeypatch):
    token = "analyst-token-for-the-ops-test"
    creds = tmp_path / "credentials.toml"
    creds.write_text(f"""[[tokens]]
sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"
client_id = "fraud-desk"
identity = "analyst:li"
role = "analyst"
officers = ["li"]
""")
    monkeypatch.setenv("GOIPWATCH_PLATFORM_SECRET", "a-secret-for-a-platform-that-is-down")
    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=12)
    bad = write_cdr(tmp_path / "feed" / "zz-bad.csv", [Row(imsi="4600"), Row(start_time="soon")])
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files + [bad])
    cfg.write_text(cfg.read_text() + f"""
[ops]
host = "127.0.0.1"
port = 0
[api]
enabled = true
host = "127.0.0.1"
port = 0
tokens_file = {json.dumps(str(creds))}
[verification]
url = "http://127.0.0.1:9/v1/verification-requests"
secret_env = "GOIPWATCH_PLATFORM_SECRET"
max_attempts = 1000
backoff_base_s = 600.0
backoff_cap_s = 600.0
""")
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        await daemon.run(until_done=True)
        conn = await asyncpg.connect(pg_dsn)
        flagged = await conn.fetch("SELECT imsi, msisdn FROM flags")
        outbox = await conn.fetchval("SELECT count(*) FROM verification_outbox")
        sims = await conn.fetchval("SELECT count(*) FROM sim_state")
        await conn.close()
        host, port = daemon._api.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            for number in (str(flagged[0]["imsi"]), imsi(999_999)):
                r = await http.post(f"http://{host}:{port}/v1/lookups",
                                headers={"Authorization": f"Bearer {token}"},
                                json={"number": number, "number_type": "imsi",
                                      "case_ref": "FD-1", "legal_basis": "Anti-Telecom and Online Fraud Law Art. 14",
                                      "officer": "li"})
                assert r.status in (200, 404), await r.text()
        ops = "http://%s:%d" % daemon._ops.addresses[0][:2]
        live, _ = await get(f"{ops}/livez")
        ready, ready_body = await get(f"{ops}/readyz")
        status, text = await get(f"{ops}/metrics")
        ticks = daemon.pipe.stats["ticks"]
    finally:
        await daemon.close()
    assert (live, ready, status) == (200, 200, 200)
    assert json.loads(ready_body) == {"ready": True, "checks": {"store": True, "probes": True},
                                      "failing_inputs": []}
    m = parse(text)
    assert m['goipwatch_records_total{probe="cdr"}'] == cdr_rows(small_world)
    assert m['goipwatch_records_quarantined_total{probe="cdr"}'] == 2
    assert m['goipwatch_files_total{probe="cdr"}'] == len(files) + 1
    assert m['goipwatch_flags{kind="sim_anomaly"}'] >= 1
    assert m["goipwatch_feature_sims"] == sims and m["goipwatch_feature_state_bytes"] > 0
    assert m['goipwatch_input_event_time_lag_seconds{probe="cdr"}'] > 0
    assert m['goipwatch_input_up{probe="cdr"}'] == 1
    # histograms: every tick, checkpoint and lookup observed once
    assert m["goipwatch_scoring_tick_seconds_count"] == ticks > 0
    assert m['goipwatch_scoring_tick_seconds_bucket{le="+Inf"}'] == ticks
    assert m["goipwatch_checkpoint_seconds_count"] >= len(files) + 2
    assert m['goipwatch_lookup_seconds_count{status="200"}'] >= 1
    assert {'goipwatch_auth_lockouts_total{scope="address"}',
            'goipwatch_auth_lockouts_total{scope="client"}'} <= set(m)
    assert m['goipwatch_lookup_seconds_count{status="404"}'] >= 1
    # the platform is down: the requests wait in the outbox, and their age shows
    assert outbox and sum(v for k, v in m.items() if k.startswith("goipwatch_outbox_requests{")) == outbox
    assert m["goipwatch_outbox_oldest_pending_seconds"] > 0
    for r in flagged:
        assert str(r["imsi"]) not in text and (not r["msisdn"] or str(r["msisdn"]) not in text)
    assert imsi(999_999) not in text


async def test_kafka_lag_and_readiness_follow_the_probes(tmp_path, pg_dsn, small_model, monkeypatch):
    kafka = MockKafka()
    topic = f"ops-{uuid.uuid4().hex[:8]}"
    kafka.produce(topic, [_row(n) for n in range(30)])
    cfg = daemon_config(tmp_path, pg_dsn, small_model, f"""
[ops]
port = 0
[[probes]]
type = "kafka"
name = "mediation"
[probes.kafka]
bootstrap_servers = "{kafka.bootstrap}"
topics = ["{topic}"]
batch_messages = 10
batch_s = 0.1
[[probes]]
type = "kafka"
name = "locked"
[probes.kafka]
bootstrap_servers = "{kafka.bootstrap}"
topics = ["{topic}"]
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "PLAIN"
sasl_username = "gw"
sasl_password_env = "GW_UNSET_PASSWORD_FOR_THE_TEST"
""")
    monkeypatch.delenv("GW_UNSET_PASSWORD_FOR_THE_TEST", raising=False)
    daemon = Daemon(config_mod.load(cfg))
    try:
        await daemon.open()
        running = asyncio.create_task(daemon.run())
        for _ in range(200):
            if await daemon.pool.fetchval("SELECT max(next_offset) FROM stream_offsets") == 30:
                break
            await asyncio.sleep(0.05)
        ops = "http://%s:%d" % daemon._ops.addresses[0][:2]
        ready, body = await get(f"{ops}/readyz")
        _, text = await get(f"{ops}/metrics")
        daemon.stop()
        await running
    finally:
        await daemon.close()
        kafka.close()
    # the probe without its password died at start: not ready, and it says so
    assert ready == 503 and json.loads(body)["checks"] == {"store": True, "probes": False}
    m = parse(text)
    assert m[f'goipwatch_kafka_lag_messages{{probe="mediation",topic="{topic}"}}'] == 0
    assert m['goipwatch_messages_total{probe="mediation"}'] == 30
    assert m['goipwatch_records_total{probe="mediation"}'] == 30
    assert m['goipwatch_input_up{probe="mediation"}'] == 1


def _row(n: int) -> bytes:
    return (",".join(astuple(Row(imsi=imsi(n)))) + "\n").encode()
