"""A small simulated month through the daemon (scoring, rigs, flags into the store), then
``goipwatch report``: the report's counts agree with the world's files and the store."""

import asyncio
import csv
import json

import asyncpg
from aiohttp import web

from detector.cli import main
from detector.demo import split_cdr
from tests.detector.test_daemon import cdr_rows, run_daemon, write_config


async def _run_with_platform(cfg) -> None:
    """The daemon, with a verification platform on loopback that accepts every request."""
    app = web.Application()

    async def accept(request):
        await request.read()
        return web.json_response({"accepted": True})

    app.router.add_post("/v1/verification-requests", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    cfg.write_text(cfg.read_text() + f"""
[verification]
url = "http://127.0.0.1:{port}/v1/verification-requests"
secret_env = "GOIPWATCH_PLATFORM_SECRET"
""")
    try:
        await run_daemon(cfg)
    finally:
        await runner.cleanup()


def test_simulated_month_to_report(tmp_path, pg_dsn, small_world, small_model, capsys, monkeypatch):
    monkeypatch.setenv("GOIPWATCH_PLATFORM_SECRET", "s3cret-of-the-test-platform")
    files = split_cdr(small_world / "cdr.csv", tmp_path / "feed", hours=12)
    cfg = write_config(tmp_path, pg_dsn, small_model, small_world, files)
    cfg.write_text(cfg.read_text() + '\n[report]\nregions = { "460-00-" = "China Mobile area", '
                   '"460-01-" = "China Unicom area" }\n')
    asyncio.run(_run_with_platform(cfg))

    out = tmp_path / "report"
    assert main(["report", "--month", "2026-10", "--out", str(out), "--config", str(cfg)]) == 0
    assert "fraud-involved" in capsys.readouterr().err

    with (small_world / "cdr.csv").open() as fh:
        cdr_imsis = {row["imsi"] for row in csv.DictReader(fh)}
    flagged, rigs, events, late, requests, delivered = asyncio.run(_store_counts(pg_dsn))
    assert requests > 0 and delivered == requests        # the platform took every request
    asyncio.run(run_daemon(cfg))                          # a restart re-offers every file
    assert asyncio.run(_store_counts(pg_dsn))[2] == events   # activity is not counted twice
    assert flagged > 0
    assert events == cdr_rows(small_world) - late        # every applied record, once

    with (out / "carriers.csv").open() as fh:
        carriers = list(csv.DictReader(fh))
    total = lambda key: sum(int(r[key]) for r in carriers)   # noqa: E731
    assert total("active_subscribers") == len(cdr_imsis)
    assert total("flagged_cards") == flagged
    assert total("fraud_involved_cards") == flagged          # no verdicts yet
    assert {r["carrier"] for r in carriers} >= {"China Mobile", "China Unicom"}
    assert total("verification_requests") == requests
    assert total("awaiting_outcome") == requests         # the platform reported no outcome
    within = sum(float(r["requests_within_share"]) * int(r["verification_requests"])
                 for r in carriers if r["verification_requests"] != "0")
    assert round(within) == requests                      # loopback: delivered at once
    rates = [float(r["fraud_per_10k"]) for r in carriers if r["fraud_per_10k"]]
    assert rates == sorted(rates, reverse=True)

    doc = json.loads((out / "report-2026-10.json").read_text())
    assert doc["rigs_found"] == rigs
    regions = {r["region"]: r for r in doc["tables"]["regions"]["rows"]}
    assert sum(r["active_subscribers"] for r in regions.values()) == len(cdr_imsis)
    assert "China Mobile area" in regions
    feeds = {r["feed"]: r for r in doc["tables"]["coverage_feeds"]["rows"]}
    assert feeds["cdr"]["days_with_records"] == 2 and feeds["cdr"]["missing_days"] == "1-4, 7-31"
    assert feeds["cdr"]["files_done"] == len(files)
    channels = doc["tables"]["channels"]["rows"]
    assert sum(r["fraud_involved_cards"] for r in channels) == flagged
    assert [r["rank"] for r in channels] == list(range(1, len(channels) + 1))
    tta = doc["tables"]["time_to_action"]["rows"]
    assert sum(r["count"] for r in tta if r["measure"] == "first activity to flag") == flagged
    assert (out / "report-2026-10.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "report-2026-10.xlsx").read_bytes().startswith(b"PK")


async def _store_counts(dsn: str) -> tuple[int, ...]:
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("SELECT count(DISTINCT imsi) FROM flags"),
                await conn.fetchval("SELECT count(*) FROM rigs"),
                await conn.fetchval("SELECT sum(events) FROM sim_activity"),
                await conn.fetchval("SELECT count(*) FROM quarantine WHERE reason LIKE 'late:%'"),
                await conn.fetchval("SELECT count(*) FROM verification_outbox "
                                    "WHERE action IN ('reverify', 'suspend')"),
                await conn.fetchval("SELECT count(*) FROM verification_outbox "
                                    "WHERE action IN ('reverify', 'suspend') AND status = 'delivered'"))
    finally:
        await conn.close()
