"""The console's pages through aiohttp's test client: login, the role check, CSRF, escaping
of hostile strings, the verdict and allow-list forms, and the audit row of each request."""

from __future__ import annotations

import json

from markupsafe import escape

from detector.api import verify_audit
from tests.detector.console.conftest import (
    ANALYST_ID,
    ANALYST_SECRET,
    CELLS,
    HOSTILE,
    POLICE_ID,
    POLICE_SECRET,
    RIG,
    SIMS,
    csrf_of,
    login,
)

ACTOR = "Fraud desk <b>Li</b> (analyst-desk)"


async def audit_rows(pool):
    return await pool.fetch("SELECT action, client_id, role, auth, status, outcome, reason, query "
                            "FROM audit_log ORDER BY seq")


async def statuses(pool) -> set[str]:
    return {r["status"] for r in await pool.fetch("SELECT status FROM flags WHERE rig_id = $1", RIG.id)}


async def test_login_opens_the_rigs_list_with_size_score_reasons_status(client, pool):
    resp = await login(client)
    assert resp.status == 200 and resp.url.path == "/console/rigs"
    page = await resp.text()
    assert RIG.id in page and "0.95" in page and ">3<" in page
    assert "140 distinct numbers contacted in 24 h" in page
    assert 'class="status status-open"' in page
    cookie = resp.history[0].headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("goipwatch_console="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Path=/console" in session_cookie and "Secure" not in session_cookie   # plain HTTP here
    assert "style-src 'sha256-" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    rows = await audit_rows(pool)
    assert [(r["action"], r["outcome"], r["client_id"], r["role"], r["auth"]) for r in rows] == [
        ("console.login", "applied", ANALYST_ID, "analyst", "session"),
        ("console.rigs", "answered", ANALYST_ID, "analyst", "session")]
    assert "csrf" not in rows[0]["query"] and ANALYST_SECRET not in rows[0]["query"]
    assert (await verify_audit(pool)).ok


async def test_wrong_secret_is_refused_and_audited(client, pool):
    resp = await login(client, secret="not-the-secret")
    assert resp.status == 401
    assert "unknown client or wrong secret" in await resp.text()
    assert "goipwatch_console" not in {c.key for c in client.session.cookie_jar}
    assert (await client.get("/console/rigs")).url.path == "/console/login"
    rows = await audit_rows(pool)
    assert (rows[0]["action"], rows[0]["status"], rows[0]["reason"]) == ("console.login", 401, "invalid_client")


async def test_police_identity_gets_403(client, pool):
    resp = await login(client, POLICE_ID, POLICE_SECRET)
    assert resp.status == 403
    assert "may not use the analysts" in await resp.text()
    assert await pool.fetchval("SELECT count(*) FROM console_sessions") == 0
    row = (await audit_rows(pool))[0]
    assert (row["client_id"], row["role"], row["reason"]) == (POLICE_ID, "police", "role_forbidden")


async def test_a_session_of_a_client_whose_role_changed_gets_403(client, pool, api_config, tmp_path):
    from pathlib import Path
    await login(client)
    path = Path(api_config.tokens_file)
    path.write_text(path.read_text().replace('role = "analyst"', 'role = "regulator"'))
    from detector.api.kit import CREDENTIALS
    await client.server.app[CREDENTIALS].check()     # what the watch does within a second
    resp = await client.get("/console/rigs")
    assert resp.status == 403 and RIG.id not in await resp.text()


async def test_without_a_session_pages_redirect_and_forms_are_refused(client, pool):
    resp = await client.get(f"/console/rigs/{RIG.id}", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    resp = await client.post(f"/console/rigs/{RIG.id}/verdict", data={"verdict": "confirm"})
    assert resp.status == 401
    assert await statuses(pool) == {"open"}
    assert [(r["action"], r["reason"]) for r in await audit_rows(pool)] == [
        ("console.rig", "no_session"), ("console.rig_verdict", "no_session")]


async def test_forms_without_the_csrf_token_change_nothing(client, pool):
    await login(client)
    for data in ({"verdict": "confirm"}, {"verdict": "confirm", "csrf": "forged"}):
        resp = await client.post(f"/console/rigs/{RIG.id}/verdict", data=data)
        assert resp.status == 403
        assert "CSRF token is missing or wrong" in await resp.text()
    assert await statuses(pool) == {"open"}
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    reasons = [r["reason"] for r in await audit_rows(pool) if r["action"] == "console.rig_verdict"]
    assert reasons == ["csrf_mismatch", "csrf_mismatch"]


async def test_login_form_needs_its_own_token(client, pool):
    await client.get("/console/login")
    resp = await client.post("/console/login", data={"csrf": "forged", "client_id": ANALYST_ID,
                                                     "secret": ANALYST_SECRET})
    assert resp.status == 403
    assert await pool.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_hostile_strings_are_escaped(client, pool):
    await login(client)
    for path in ("/console/rigs", f"/console/rigs/{RIG.id}", f"/console/sims/{SIMS[0]}"):
        page = await (await client.get(path)).text()
        assert "<script>" not in page and "<img" not in page and "<b>Li</b>" not in page, path
        assert "&lt;b&gt;Li&lt;/b&gt;" in page
    page = await (await client.get(f"/console/rigs/{RIG.id}")).text()
    assert str(escape(HOSTILE)) in page            # shown, as text


async def test_rig_page_draws_timeline_cells_and_devices_of_the_rig_only(client, pool):
    await login(client)
    resp = await client.get(f"/console/rigs/{RIG.id}")
    page = await resp.text()
    assert resp.status == 200
    assert page.count("<svg") == 2
    assert all(s in page for s in SIMS) and all(c in page for c in CELLS)
    assert "460-00-9999-1" not in page            # a cell outside the rig is not named
    assert "a cell outside the rig" in page
    assert page.count("<circle") == 3             # one 'raised' event per SIM
    row = (await audit_rows(pool))[-1]
    assert (row["action"], row["query"]) == ("console.rig", '{"path": "/console/rigs/rig-0a1b2c3d4e", "method": "GET", "rig_id": "rig-0a1b2c3d4e"}')
    fields = await pool.fetchval("SELECT fields FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert all(f in fields for f in ('"cell_hours[].hours[].cell"', '"timelines[].events[].at"',
                                     '"device_rows[].seen"', '"sims[].msisdn"'))


async def test_confirming_a_rig_confirms_every_member(client, pool):
    await login(client)
    page = await (await client.get(f"/console/rigs/{RIG.id}")).text()
    resp = await client.post(f"/console/rigs/{RIG.id}/verdict",
                             data={"csrf": csrf_of(page), "verdict": "confirm", "note": "site visit"})
    assert resp.status == 200 and resp.url.path == f"/console/rigs/{RIG.id}"
    assert 'id="rig-status">confirmed<' in await resp.text()
    assert await statuses(pool) == {"confirmed"}
    listed = await (await client.get("/console/rigs")).text()
    assert 'class="status status-confirmed">confirmed<' in listed and '"status status-open"' not in listed
    fb = await pool.fetch("SELECT imsi, verdict, actor, note FROM feedback ORDER BY imsi")
    assert [(str(r["imsi"]), r["verdict"], r["actor"], r["note"]) for r in fb] == [
        (s, "confirm", ACTOR, "site visit") for s in SIMS]
    row = next(r for r in await audit_rows(pool) if r["action"] == "console.rig_verdict")
    assert (row["status"], row["outcome"]) == (303, "applied")
    assert all(s in row["query"] for s in SIMS)


async def test_sim_page_dismiss_and_allow_list(client, pool):
    await login(client)
    resp = await client.get(f"/console/sims/{SIMS[1]}")
    page = await resp.text()
    assert resp.status == 200 and "8613800138001" in page and 'id="sim-status">open<' in page
    resp = await client.post(f"/console/sims/{SIMS[1]}/verdict",
                             data={"csrf": csrf_of(page), "verdict": "dismiss"})
    assert 'id="sim-status">dismissed<' in await resp.text()
    assert await statuses(pool) == {"open", "dismissed"}
    resp = await client.post("/console/allowlist", data={"csrf": csrf_of(page), "kind": "imsi",
                                                         "value": SIMS[1], "reason": "IoT meter"})
    assert resp.url.path == "/console/allowlist" and SIMS[1] in await resp.text()
    assert await pool.fetchval("SELECT actor FROM allowlist WHERE value = $1", SIMS[1]) == ACTOR
    resp = await client.post("/console/allowlist", data={"csrf": csrf_of(page), "kind": "phone",
                                                         "value": "1", "reason": "x"})
    assert resp.status == 400 and "kind must be one of" in await resp.text()
    assert (await client.get("/console/sims/123")).status == 404


async def test_outbox_page_and_logout(client, pool):
    await login(client)
    resp = await client.get("/console/outbox")
    page = await resp.text()
    assert resp.status == 200 and "Dead letters" in page and "No dead letters." in page
    resp = await client.post("/console/logout", data={"csrf": csrf_of(page)})
    assert resp.url.path == "/console/login"
    assert await pool.fetchval("SELECT count(*) FROM console_sessions") == 0
    assert (await client.get("/console/outbox", allow_redirects=False)).status == 303


async def test_expired_session_is_refused(client, pool):
    await login(client)
    await pool.execute("UPDATE console_sessions SET expires_at = now() - interval '1 s'")
    assert (await client.get("/console/rigs", allow_redirects=False)).status == 303


async def test_console_off_mounts_no_page(pool, api_config):
    from dataclasses import replace

    from aiohttp.test_utils import TestClient, TestServer

    from detector.api import make_app
    async with TestClient(TestServer(make_app(pool, replace(api_config, console=False)),
                                     host="127.0.0.1")) as c:
        assert (await c.get("/console/login")).status == 404


async def test_a_verdict_that_cannot_be_audited_is_not_applied(client, pool):
    import asyncpg

    from detector.api.kit import AUDIT
    await login(client)
    page = await (await client.get(f"/console/rigs/{RIG.id}")).text()
    writer = client.server.app[AUDIT]
    real = writer.append

    async def failing(entry, attempts=20, conn=None):
        if conn is not None:
            raise asyncpg.PostgresConnectionError("audit store unavailable")
        return await real(entry, attempts, conn)

    writer.append = failing
    resp = await client.post(f"/console/rigs/{RIG.id}/verdict",
                             data={"csrf": csrf_of(page), "verdict": "confirm"})
    assert resp.status == 503 and "could not be audited" in await resp.text()
    assert await statuses(pool) == {"open"}
    assert await pool.fetchval("SELECT count(*) FROM feedback") == 0
    writer.append = real
    assert (await verify_audit(pool)).ok


async def test_outbox_and_timeline_show_verification(client, pool):
    from tests.detector.console.conftest import add_verification
    await add_verification(pool)
    await login(client)
    page = await (await client.get("/console/outbox")).text()
    assert "00000000-0000-0000-0000-000000000002" in page and "HTTP 503 &lt;script&gt;" in page
    assert "<script>" not in page
    assert "<td>failed</td>" in page
    page = await (await client.get(f"/console/sims/{SIMS[0]}")).text()
    assert "verification_requested" in page and "verification_failed" in page
    assert page.count("<path") == 3          # a diamond per request and per outcome


async def test_over_tls_the_session_cookie_is_secure(pool, tmp_path):
    import re
    import ssl

    import aiohttp

    from detector.api import ApiConfig, start_api
    from tests.detector.api.certs import Ca, write_pair
    from tests.detector.console.conftest import credentials_toml
    ca = Ca("goipwatch test CA")
    cert, key = write_pair(*ca.issue("localhost", server=True), tmp_path, "server")
    creds = tmp_path / "credentials.toml"
    creds.write_text(credentials_toml())
    runner = await start_api(pool, ApiConfig.from_toml({
        "host": "127.0.0.1", "port": 0, "tls_cert": str(cert), "tls_key": str(key),
        "tokens_file": str(creds)}))
    url = "https://127.0.0.1:%d" % runner.addresses[0][1]
    ctx = ssl.create_default_context(cafile=str(ca.write(tmp_path / "ca.crt")))
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            form = await (await s.get(url + "/console/login", ssl=ctx)).text()
            token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
            resp = await s.post(url + "/console/login", ssl=ctx, allow_redirects=False,
                                data={"csrf": token, "client_id": ANALYST_ID, "secret": ANALYST_SECRET})
            assert resp.status == 303
            cookie = next(c for c in resp.headers.getall("Set-Cookie")
                          if c.startswith("goipwatch_console="))
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        await runner.cleanup()


def _chart(page: str, basis: str) -> str:
    """The SVG (or the empty-chart note) under the heading of one clock's chart."""
    anchor = {"event": 'id="by-event-time"', "wall": 'id="by-wall-clock"'}[basis]
    rest = page.split(anchor, 1)[1]
    return rest.split("<h", 1)[0]


async def test_a_replayed_month_keeps_flags_and_verdicts_on_their_own_clocks(client, pool):
    """Flags of a month replayed now (event times months back) and today's verdicts: each
    chart spans its own clock, so neither piles at one end of a shared axis."""
    from datetime import UTC, datetime

    replayed = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    await pool.execute("UPDATE flag_history SET event_time = $1::timestamptz + (id % 3) * interval '1 hour'",
                       replayed)
    await login(client)
    page = await (await client.get(f"/console/rigs/{RIG.id}")).text()
    csrf = csrf_of(page)
    await client.post(f"/console/rigs/{RIG.id}/verdict", data={"csrf": csrf, "verdict": "confirm"})
    page = await (await client.get(f"/console/rigs/{RIG.id}")).text()
    by_event, by_wall = _chart(page, "event"), _chart(page, "wall")
    assert "event time (UTC) of the records behind each flag" in by_event
    assert "wall-clock time (UTC) when the verdict or verification was recorded" in by_wall
    # the event chart: the three 'raised' marks, its axis in January
    assert by_event.count("<circle") == 3 and "01-10 08:00" in by_event
    assert "analyst-desk" not in by_event     # no verdict (a verdict names its actor)
    # the wall chart: per SIM the verdict and its flag's status change, dated today
    today = datetime.now(UTC).strftime("%m-%d")
    assert by_wall.count("<circle") == 6 and today in by_wall and "01-10" not in by_wall
    sim = await (await client.get(f"/console/sims/{SIMS[0]}")).text()
    assert "<td>event time</td>" in sim and "<td>wall clock</td>" in sim
    assert _chart(sim, "event").count("<circle") == 1 and _chart(sim, "wall").count("<circle") == 2


async def test_sim_page_shows_each_feature_with_its_unit_and_meaning(client, pool):
    await login(client)
    page = await (await client.get(f"/console/sims/{SIMS[0]}")).text()
    table = page.split('id="features"', 1)[1].split("</table>", 1)[0]
    assert "<th>Unit</th>" in table
    assert ('<td class="mono">distinct_callees_24h</td><td class="num">140.0</td>'
            '<td>numbers</td><td>distinct numbers contacted in 24 h</td>') in table


async def test_the_rigs_page_says_which_model_scores_and_where_the_population_drifts(client, pool):
    await login(client)
    assert 'id="calibration"' not in await (await client.get("/console/rigs")).text()
    await pool.execute(
        "INSERT INTO calibration_model (id, sample_threshold, first_at, first_fit, next_fit, "
        "fitted_at, sim_days, trimmed, excluded, drift, drift_alert) VALUES "
        "(1, 0, 0, 1791158400, 1791180000, 1791158400, 5400, 12, 3, $1::jsonb, 1.0986)",
        json.dumps({"voice_out_24h": 2.3026, "sms_out_24h": 0.2, "distinct_callees_24h": 1.6094}))
    page = await (await client.get("/console/rigs")).text()
    assert "Model calibrated to this network at 2026-10-05T00:00:00Z on 5400 SIM-days" in page
    assert "voice_out_24h (10.0×), distinct_callees_24h (5.0×)" in page
    assert "sms_out_24h" not in page
