"""The console's pages and forms, mounted under ``/console`` on the API's application.

The data come from the reads the console shares with the analyst API
(:mod:`detector.api.queries`), the subscriber record (:mod:`detector.api.lookup`) and the
feedback module; this module only shapes and renders them behind
:func:`detector.console.audited.page` (session, role, CSRF, audit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from detector import feedback, ids
from detector.api import lookup, queries, units
from detector.api.kit import MAX_NOTE, NOTE_TEXT, PRINTABLE_TEXT, Refusal, actor_of
from detector.api.audited import OnConnection
from detector.console import charts, login
from detector.console.audited import Form, View, page, see_other
from detector.verify import outbox

MAX_RIGS = 200
MAX_TIMELINE_ROWS = 60
MAX_ALLOWLIST = 500
OUTSIDE = ""        # a cell that is not one of the rig's (not named to analysts)


# ---- rigs ---------------------------------------------------------------------------------

def status_of(statuses: set[str]) -> str:
    """A rig's status from its flags': open while any is open, else confirmed or dismissed
    when all agree, else mixed."""
    if not statuses or "open" in statuses:
        return "open"
    return next(iter(statuses)) if len(statuses) == 1 else "mixed"


def merged_reasons(lists: list[list], most: int = 5) -> list[str]:
    out: list[str] = []
    for reasons in lists:
        for r in reasons:
            if isinstance(r, str) and r not in out:
                out.append(r)
    return out[:most]


def summarise(flags: list[dict]) -> dict[str, Any]:
    """A rig's (or SIM's) score, status and reasons from its flags: the highest score, the
    status (:func:`status_of`), the reasons of the highest-scored flags first, each once."""
    ranked = sorted(flags, key=lambda f: -f["score"])
    return {"score": ranked[0]["score"] if ranked else 0.0,
            "status": status_of({f["status"] for f in flags}),
            "reasons": merged_reasons([f["reasons"] for f in ranked])}


async def rigs_page(request, session, query, conn, form) -> View:
    newest = await queries.rigs_newest(conn, MAX_RIGS)
    summaries = await queries.rig_summaries(conn, [r["id"] for r in newest["rigs"]])
    empty = {"score": 0.0, "statuses": [], "reasons": []}
    rigs = []
    for r in newest["rigs"]:
        s = summaries.get(r["id"], empty)
        rigs.append({"id": r["id"], "sims": r["sims"], "last_at": r["last_at"], "score": s["score"],
                     "status": status_of(set(s["statuses"])),
                     "reasons": merged_reasons(s["reasons"])})
    return View("rigs.html", {"rigs": rigs, "truncated": newest["truncated"],
                              "calibration": await queries.calibration(conn)})


def _rig_id(request: web.Request, query: dict) -> str:
    rig_id = request.match_info["id"][:128]
    query["rig_id"] = rig_id
    if not PRINTABLE_TEXT.fullmatch(rig_id):
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    return rig_id


def _epoch(iso_text: str) -> int:
    return int(datetime.strptime(iso_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _marks(events: list[dict], basis: str) -> list[charts.Mark]:
    """The chart marks of the ``events`` dated on clock ``basis`` (event or wall)."""
    out = []
    for e in events:
        if e.get("time_basis", "wall") != basis:
            continue
        kind = e["event"]
        title = kind + (f" ({e['flag_kind']})" if e.get("flag_kind") else "") + (
            f" by {e['actor']}" if e.get("actor") else "")
        out.append(charts.Mark(_epoch(e["at"]), kind, title))
    return out


def _timelines(rows: list[tuple[str, list[dict]]]) -> dict[str, Any]:
    """The two activity charts of SIMs' events: flags by event time, verdicts and
    verification by wall clock (:mod:`detector.console.charts`)."""
    return {"timeline_event": charts.timeline_svg(
                [(label, _marks(events, "event")) for label, events in rows], "event"),
            "timeline_wall": charts.timeline_svg(
                [(label, _marks(events, "wall")) for label, events in rows], "wall")}


async def rig_page(request, session, query, conn, form) -> View:
    found = await queries.rig_with_flags(conn, _rig_id(request, query))
    if found is None:
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    rig, flags = found["rig"], found["flags"]
    by_sim: dict[str, list[dict]] = {}
    for f in flags:
        by_sim.setdefault(f["imsi"], []).append(f)
    members = sorted(set(rig["members"]) | set(by_sim))
    sims = []
    for imsi in members:
        fl = by_sim.get(imsi, [])
        s = summarise(fl)
        sims.append({"imsi": imsi, "msisdn": next((f["msisdn"] for f in fl if f["msisdn"]), None),
                     "kinds": [f["kind"] for f in fl], "score": s["score"] if fl else None,
                     "status": s["status"] if fl else "unflagged", "reasons": s["reasons"]})
    shown = members[:MAX_TIMELINE_ROWS]
    found_events = await queries.sim_events_many(conn, shown)
    timelines = [{"imsi": imsi, "events": found_events[imsi]["events"] if imsi in found_events else []}
                 for imsi in shown]
    _, history = await lookup.sim_histories(conn, [int(m) for m in shown])
    # Only the rig's own cells and devices are named (what /v1/rigs/{id} answers analysts):
    # an hour in another cell is "outside", a device outside the rig is left out.
    rig_cells = set(rig["cells"])
    cell_hours, device_rows = [], []
    for imsi in shown:
        devices, cells = history.get(int(imsi), ([], []))
        cell_hours.append({"imsi": imsi, "hours": [
            {"hour": h, "cell": c if c in rig_cells else OUTSIDE} for h, c in cells]})
        seen = {d["imei"]: d["last_seen"] for d in devices}
        device_rows.append({"imsi": imsi, "seen": [seen.get(d) for d in rig["devices"]]})
    summary = summarise(flags)
    data = {"rig": rig, "sims": sims, "score": summary["score"], "status": summary["status"],
            "reasons": summary["reasons"], "devices": rig["devices"],
            "device_rows": device_rows, "timelines": timelines, "cell_hours": cell_hours}
    grid = [(c["imsi"], [(x["hour"], x["cell"]) for x in c["hours"]]) for c in cell_hours]
    extra = {**_timelines([(t["imsi"], t["events"]) for t in timelines]),
             "grid": charts.cell_grid_svg(grid, rig["cells"]),
             "timeline_cut": len(members) > len(shown), "timeline_rows": len(shown)}
    return View("rig.html", data, extra)


def _verdict(form: Form, query: dict) -> tuple[str, str]:
    verdict, note = form.get("verdict"), form.get("note").strip()
    query.update(verdict=verdict[:32], note=note[:200])
    if verdict not in ("confirm", "dismiss"):
        raise Refusal(400, "invalid_value", "verdict must be confirm or dismiss", field="verdict")
    if len(note) > MAX_NOTE or not NOTE_TEXT.fullmatch(note):
        raise Refusal(400, "invalid_value",
                      f"the note must be at most {MAX_NOTE} printable characters")
    return verdict, note


async def post_rig_verdict(request, session, query, conn, form) -> View:
    """Confirm or dismiss every flagged member of a rig (one verdict per SIM, as the API's)."""
    rig_id = _rig_id(request, query)
    verdict, note = _verdict(form, query)
    found = await queries.rig_with_flags(conn, rig_id)
    if found is None:
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    judged = sorted({f["imsi"] for f in found["flags"]})
    if not judged:
        raise Refusal(404, "no_flag", "the rig has no flagged SIM to judge")
    actor = actor_of(session.who)
    for imsi in judged:
        await feedback.judge(OnConnection(conn), imsi, verdict, actor, note)
    query["imsis"] = judged
    return View(redirect=f"/console/rigs/{rig_id}")


# ---- SIMs ---------------------------------------------------------------------------------

def _imsi(request: web.Request, query: dict) -> str:
    query["imsi"] = request.match_info["imsi"][:64]
    try:
        imsi = ids.parse_imsi(request.match_info["imsi"][:64]).digits
    except ids.InvalidIdentifier as e:
        raise Refusal(404, "no_flag", f"not an IMSI: {e.why}") from None
    query["imsi"] = imsi
    return imsi


async def sim_page(request, session, query, conn, form) -> View:
    imsi = _imsi(request, query)
    found = await lookup.find(conn, "imsi", imsi, 1)
    events = await queries.sim_events(conn, imsi)
    if not found.subscribers or events is None:
        raise Refusal(404, "no_flag", "the store holds no flag, feedback or verification for this SIM")
    sub = lookup.project(found.subscribers[0], session.who.role)
    data = {"imsi": imsi, "sub": sub, "events": events["events"],
            "status": summarise(sub.get("flags", []))["status"]}
    evidence = sub.get("evidence") or {}
    return View("sim.html", data, {**_timelines([(imsi, events["events"])]),
                                   "features": units.described(evidence.get("features") or {})})


async def post_sim_verdict(request, session, query, conn, form) -> View:
    imsi = _imsi(request, query)
    verdict, note = _verdict(form, query)
    try:
        await feedback.judge(OnConnection(conn), imsi, verdict,
                             actor_of(session.who), note)
    except feedback.FeedbackError:
        raise Refusal(404, "no_flag", "the store holds no flag for this SIM") from None
    return View(redirect=f"/console/sims/{imsi}")


# ---- allow-list and outbox ----------------------------------------------------------------

async def allowlist_page(request, session, query, conn, form) -> View:
    entries = await queries.allowlist_entries(conn, MAX_ALLOWLIST)
    return View("allowlist.html", {"entries": entries, "kinds": list(feedback.ALLOW_KINDS)})


async def post_allowlist(request, session, query, conn, form) -> View:
    kind, value, reason = form.get("kind"), form.get("value"), form.get("reason").strip()
    query.update(kind=kind[:32], value=value[:128], reason=reason[:200])
    if kind not in feedback.ALLOW_KINDS:
        raise Refusal(400, "invalid_value", f"kind must be one of {', '.join(feedback.ALLOW_KINDS)}")
    if not PRINTABLE_TEXT.fullmatch(reason):
        raise Refusal(400, "invalid_value", "the reason must be 1-200 printable characters")
    try:
        value = feedback.normalise(kind, value[:200])
    except feedback.FeedbackError as e:
        raise Refusal(400, "invalid_value", f"value: {e}") from None
    query["value"] = value
    await feedback.allow(OnConnection(conn), kind, value, reason,
                         actor_of(session.who))
    return View(redirect="/console/allowlist")


async def outbox_page(request, session, query, conn, form) -> View:
    return View("outbox.html", {"box": await outbox.outbox_summary(OnConnection(conn), 50)})


async def index(request: web.Request) -> web.Response:
    return see_other("/console/rigs")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", index)
    r.add_get("/console/", index)
    r.add_get("/console/login", login.get_login)
    r.add_post("/console/login", login.post_login)
    r.add_post("/console/logout", page("console.logout", login.post_logout))
    r.add_get("/console/rigs", page("console.rigs", rigs_page))
    r.add_get("/console/rigs/{id}", page("console.rig", rig_page))
    r.add_post("/console/rigs/{id}/verdict", page("console.rig_verdict", post_rig_verdict))
    r.add_get("/console/sims/{imsi}", page("console.sim", sim_page))
    r.add_post("/console/sims/{imsi}/verdict", page("console.sim_verdict", post_sim_verdict))
    r.add_get("/console/allowlist", page("console.allowlist", allowlist_page))
    r.add_post("/console/allowlist", page("console.allowlist_add", post_allowlist))
    r.add_get("/console/outbox", page("console.outbox", outbox_page))
