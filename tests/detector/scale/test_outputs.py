"""What the scale-out writes besides flags and rigs, as the single-process daemon does:
verification requests in the flags' transaction, the monthly report's per-SIM activity (the
workers) and feed coverage and ingested files (the publisher). Real NATS and PostgreSQL."""

import asyncpg

from tests.detector.scale.conftest import write_scale_config
from tests.detector.scale.test_workers import outcome, publish, replay


async def test_requests_activity_and_coverage_are_written(scale_world, pg_dsn, scale_names, tmp_path):
    world, model = scale_world
    cfg = write_scale_config(tmp_path, pg_dsn, model, *scale_names())
    with cfg.open("a") as fh:   # the workers never send: no secret is read
        fh.write('[verification]\nurl = "https://platform.invalid/v1/requests"\n'
                 'secret_env = "GOIPWATCH_TEST_UNUSED"\n')
    publish(cfg, world)
    await replay(cfg, 1)
    got = await outcome(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        flags = await conn.fetch("SELECT id, kind FROM flags")
        asked = {r["flag_id"]: r["action"] for r in await conn.fetch(
            "SELECT flag_id, action FROM verification_outbox WHERE action <> 'police_lead'")}
        events = await conn.fetchval("SELECT sum(events) FROM sim_activity")
        sims = await conn.fetchval("SELECT count(DISTINCT imsi) FROM sim_activity")
        days = {r["probe"]: r["n"] for r in await conn.fetch(
            "SELECT probe, sum(records) AS n FROM feed_days GROUP BY probe")}
        files = {(r["probe"], r["name"]): (r["status"], r["records"]) for r in await conn.fetch(
            "SELECT probe, name, status, records FROM ingested_files")}
    finally:
        await conn.close()
    anomalies = [r["id"] for r in flags if r["kind"] == "sim_anomaly"]
    rig_flags = [r["id"] for r in flags if r["kind"] != "sim_anomaly"]
    assert anomalies and rig_flags
    assert all(i in asked for i in anomalies), "every worker flag has its verification request"
    assert any(i in asked for i in rig_flags), "the rig stage's flags have theirs"
    assert events == got["counters"]["records"] and sims > 400     # every applied record, per SIM
    assert days["cdr"] == got["counters"]["records"] and days["registrations"] >= 500
    assert files[("cdr", "cdr.csv")] == ("done", got["counters"]["records"])
    assert files[("registrations", "subscribers.csv")][0] == "done"
