"""The console's pages and forms, mounted under ``/console`` on the API's application.

Every page and action goes through :func:`page`: the session cookie, the analyst role, the
CSRF token of a POST form, the rate limit, and one transaction holding whatever the action
changed together with its audit row (written like the analyst API's: who, the action and its
parameters, the status and outcome, the field paths shown and the SHA-256 of the page). A
refused request (no session, another role, a bad form) is audited too. The data come from
the analyst API's query functions (``detector.api.analyst``, ``detector.api.lookup``) and
the feedback module; this module only renders them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from aiohttp import web

from detector import feedback, ids
from detector.api import analyst, audit, lookup
from detector.api.app import (
    _TEXT,
    AUDIT,
    AUTH,
    CONFIG,
    POOL,
    REQUEST_ID,
    TITLES,
    WHO,
    CLIENT_ID,
    Refusal,
    _limit,
    _remote,
    append_quietly,
    log,
)
from detector.console import charts, sessions
from detector.verify import outbox

CONSOLE_ROLES = frozenset({"analyst"})
MAX_RIGS = 200
MAX_TIMELINE_ROWS = 60
MAX_FORM_BYTES = 8192

_HERE = Path(__file__).resolve().parent
CSS = (_HERE / "console.css").read_text()
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
SECURITY_HEADERS = {
    "Content-Security-Policy": (f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; "
                                "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(_HERE / "templates"),
                          autoescape=True)


@dataclass(slots=True)
class View:
    """What a handler answers: a page (template with its data) or a redirect after a POST.
    ``data`` is what the page discloses (its field paths go to the audit); ``extra`` holds
    what is drawn from it (charts)."""
    template: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    redirect: str = ""
    end_session: bool = False     # the redirect also deletes the session cookie


@dataclass(frozen=True, slots=True)
class Form:
    fields: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


Handler = Callable[[web.Request, sessions.Session, dict, asyncpg.Connection, Form], Awaitable[View]]


def render(template: str, **context: Any) -> str:
    return _ENV.get_template(template).render(css=jinja2.utils.markupsafe.Markup(CSS),
                                              **context)


def html(body: str, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, **(headers or {})})


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location})


def error_page(request: web.Request, r: Refusal, session: sessions.Session | None) -> str:
    return render("error.html", who=session.who if session else None,
                  csrf=session.csrf if session else "", status=r.status,
                  title=TITLES.get(r.status, "Error"), reason=r.reason, detail=r.detail)


async def read_form(request: web.Request, query: dict) -> Form:
    if request.content_type != "application/x-www-form-urlencoded":
        raise Refusal(415, "unsupported_media_type", "the form must be url-encoded")
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise Refusal(413, "body_too_large", f"the form exceeds {MAX_FORM_BYTES} bytes")
    try:
        posted = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, "body_too_large", "the form is too large") from None
    out: dict[str, str] = {}
    for key, value in posted.items():
        if not isinstance(value, str) or key in out:
            raise Refusal(400, "invalid_form", f"form field {key[:64]!r} is not a single text")
        out[key] = value
    query["form"] = {k: v[:200] for k, v in out.items() if k not in ("csrf", "secret")}
    return Form(out)


def page(action: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``handler`` behind the session, the role check, CSRF (POST) and the audit."""

    async def serve(request: web.Request) -> web.Response:
        app = request.app
        entry: dict[str, Any] = {"request_id": request[REQUEST_ID], "action": action,
                                 "remote": _remote(request), "auth": "session"}
        query: dict[str, Any] = {"method": request.method, "path": request.path[:200]}
        session: sessions.Session | None = None
        try:
            session = await sessions.find_session(app[POOL], app[AUTH].credentials,
                                                  request.cookies.get(sessions.COOKIE))
            if session is None:
                await _limit(request, "ip:" + _remote(request))
                if request.method == "GET":
                    entry.update(query=analyst._scrub(query), status=303, outcome="refused",
                                 reason="no_session", fields=(), answer_sha256="")
                    await append_quietly(app, entry)
                    return see_other("/console/login")
                raise Refusal(401, "no_session", "log in first (no session, or it expired)")
            who = session.who
            request[CLIENT_ID], request[WHO] = who.client_id, who
            entry.update(client_id=who.client_id, identity=who.identity, role=who.role)
            await _limit(request, "client:" + who.client_id)
            if who.role not in CONSOLE_ROLES:
                raise Refusal(403, "role_forbidden",
                              f"the role {who.role!r} may not use the analysts' console")
            form = Form({})
            if request.method == "POST":
                form = await read_form(request, query)
                if not sessions.same_token(form.get("csrf"), session.csrf):
                    raise Refusal(403, "csrf_mismatch",
                                  "the form's CSRF token is missing or wrong; reload the page")
            try:
                async with app[POOL].acquire() as conn, conn.transaction():
                    view = await handler(request, session, query, conn, form)
                    if view.redirect:
                        body, status = "", 303
                    else:
                        body = render(view.template, who=who, csrf=session.csrf, **view.data,
                                      **view.extra)
                        status = 200
                    entry.update(query=analyst._scrub(query), status=status,
                                 outcome="applied" if request.method == "POST" else "answered",
                                 reason="", fields=tuple(lookup.field_paths(view.data)),
                                 answer_sha256=audit.digest(body.encode()))
                    try:
                        await app[AUDIT].append(audit.AuditEntry(**entry), conn=conn)
                    except (OSError, asyncpg.PostgresError) as e:
                        raise analyst._AuditFailed() from e
            except analyst._AuditFailed:
                app[AUDIT].forget()
                log.exception("audit append failed; console request not served",
                              extra={"request_id": request[REQUEST_ID]})
                raise Refusal(503, "audit_unavailable",
                              "the request could not be audited, so it is not served "
                              "(nothing was changed)") from None
            except BaseException:
                app[AUDIT].forget()
                raise
            if view.redirect:
                resp = see_other(view.redirect)
                if view.end_session:
                    resp.del_cookie(sessions.COOKIE, path="/console")
                return resp
            return html(body)
        except Refusal as r:
            body = error_page(request, r, session)
            if r.reason != "audit_unavailable":
                entry.update(query=analyst._scrub(query), status=r.status,
                             outcome="not_found" if r.status == 404 else "refused",
                             reason=r.reason, fields=(), answer_sha256=audit.digest(body.encode()))
                await append_quietly(app, entry)
            return html(body, r.status, r.headers)
        except web.HTTPException:
            raise
        except Exception:       # answered 500 by the envelope; the attempt is still audited
            entry.update(query=analyst._scrub(query), status=500, outcome="error",
                         reason="internal_error", fields=(), answer_sha256="")
            await append_quietly(app, entry)
            raise

    serve.__name__ = f"console_{action.replace('.', '_')}"
    return serve


# ---- login and logout ----------------------------------------------------------------------

async def get_login(request: web.Request) -> web.Response:
    """The login form (discloses nothing, so it is not audited); sets the double-submit
    token the form must return."""
    token = sessions.new_token()
    resp = html(render("login.html", who=None, csrf="", login_csrf=token, error="",
                       client_id=""))
    _set_cookie(request, resp, sessions.LOGIN_COOKIE, token, 900, "/console/login")
    return resp


async def post_login(request: web.Request) -> web.Response:
    app = request.app
    entry: dict[str, Any] = {"request_id": request[REQUEST_ID], "action": "console.login",
                             "remote": _remote(request), "auth": "session"}
    query: dict[str, Any] = {"method": "POST", "path": request.path[:200]}
    client_id = ""
    try:
        await _limit(request, "ip:" + _remote(request))
        form = await read_form(request, query)
        client_id = form.get("client_id")[:128]
        if not sessions.same_token(form.get("csrf"), request.cookies.get(sessions.LOGIN_COOKIE, "")):
            raise Refusal(403, "csrf_mismatch", "the login form expired; reload the page")
        await _limit(request, "client:" + client_id)
        who = app[AUTH].credentials.check_client(client_id, form.get("secret"))
        if who is None:
            raise Refusal(401, "invalid_client", "unknown client or wrong secret")
        request[CLIENT_ID] = who.client_id
        entry.update(client_id=who.client_id, identity=who.identity, role=who.role)
        if who.role not in CONSOLE_ROLES:
            raise Refusal(403, "role_forbidden",
                          f"the role {who.role!r} may not use the analysts' console")
        await sessions.close_session(app[POOL], request.cookies.get(sessions.COOKIE))
        token, _ = await sessions.open_session(app[POOL], who, app[CONFIG].console_session_ttl_s)
        entry.update(query=analyst._scrub(query), status=303, outcome="applied", reason="",
                     fields=(), answer_sha256="")
        try:
            await app[AUDIT].append(audit.AuditEntry(**entry))
        except (OSError, asyncpg.PostgresError):
            await sessions.close_session(app[POOL], token)
            log.exception("audit append failed; login refused",
                          extra={"request_id": request[REQUEST_ID]})
            raise Refusal(503, "audit_unavailable", "the login could not be audited") from None
        resp = see_other("/console/rigs")
        _set_cookie(request, resp, sessions.COOKIE, token, app[CONFIG].console_session_ttl_s,
                    "/console")
        resp.del_cookie(sessions.LOGIN_COOKIE, path="/console/login")
        return resp
    except Refusal as r:
        if r.reason != "audit_unavailable":
            entry.update(query=analyst._scrub(query), status=r.status, outcome="refused",
                         reason=r.reason, fields=(), answer_sha256="")
            await append_quietly(app, entry)
        if r.status in (401, 403) and r.reason != "csrf_mismatch" and r.reason != "role_forbidden":
            token = sessions.new_token()     # the form again, with the reason
            resp = html(render("login.html", who=None, csrf="", login_csrf=token,
                               error=r.detail, client_id=client_id), r.status)
            _set_cookie(request, resp, sessions.LOGIN_COOKIE, token, 900, "/console/login")
            return resp
        return html(error_page(request, r, None), r.status, r.headers)


def _set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str,
                max_age: int, path: str) -> None:
    resp.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                    secure=request.secure, samesite="Strict")


async def post_logout(request: web.Request, session: sessions.Session, query: dict,
                      conn: asyncpg.Connection, form: Form) -> View:
    await sessions.close_session(analyst._OnConnection(conn), request.cookies.get(sessions.COOKIE))
    return View(redirect="/console/login", end_session=True)


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
    newest = await analyst.rigs_newest(conn, MAX_RIGS)
    summaries = await analyst.rig_summaries(conn, [r["id"] for r in newest["rigs"]])
    empty = {"score": 0.0, "statuses": [], "reasons": []}
    rigs = []
    for r in newest["rigs"]:
        s = summaries.get(r["id"], empty)
        rigs.append({"id": r["id"], "sims": r["sims"], "last_at": r["last_at"], "score": s["score"],
                     "status": status_of(set(s["statuses"])),
                     "reasons": merged_reasons(s["reasons"])})
    return View("rigs.html", {"rigs": rigs, "truncated": newest["truncated"]})


def _rig_id(request: web.Request, query: dict) -> str:
    rig_id = request.match_info["id"][:128]
    query["rig_id"] = rig_id
    if not _TEXT.fullmatch(rig_id):
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    return rig_id


def _epoch(iso_text: str) -> int:
    return int(datetime.strptime(iso_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _marks(events: list[dict]) -> list[charts.Mark]:
    out = []
    for e in events:
        kind = e["event"]
        title = kind + (f" ({e['flag_kind']})" if e.get("flag_kind") else "") + (
            f" by {e['actor']}" if e.get("actor") else "")
        out.append(charts.Mark(_epoch(e["at"]), kind, title))
    return out


async def rig_page(request, session, query, conn, form) -> View:
    found = await analyst.rig_with_flags(conn, _rig_id(request, query))
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
    rows = []
    for imsi in shown:
        events = await analyst.sim_events(conn, imsi)
        rows.append((imsi, _marks(events["events"]) if events else []))
    _, history = await lookup.sim_histories(conn, [int(m) for m in shown])
    # only the rig's own devices and cells are shown (what /v1/rigs/{id} answers analysts)
    grid = [(imsi, [(h, c) for h, c in history.get(int(imsi), ([], []))[1]]) for imsi in shown]
    device_rows = []
    for imsi in shown:
        seen = {d["imei"]: d["last_seen"] for d in history.get(int(imsi), ([], []))[0]}
        device_rows.append({"imsi": imsi, "seen": [seen.get(d) for d in rig["devices"]]})
    summary = summarise(flags)
    data = {"rig": rig, "sims": sims, "score": summary["score"], "status": summary["status"],
            "reasons": summary["reasons"], "devices": rig["devices"],
            "device_rows": device_rows}
    extra = {"timeline": charts.timeline_svg(rows),
             "grid": charts.cell_grid_svg(grid, rig["cells"]),
             "timeline_cut": len(members) > len(shown), "timeline_rows": len(shown)}
    return View("rig.html", data, extra)


def _verdict(form: Form, query: dict) -> tuple[str, str]:
    verdict, note = form.get("verdict"), form.get("note").strip()
    query.update(verdict=verdict[:32], note=note[:200])
    if verdict not in ("confirm", "dismiss"):
        raise Refusal(400, "invalid_value", "verdict must be confirm or dismiss", field="verdict")
    if len(note) > analyst.MAX_NOTE or not analyst._NOTE.fullmatch(note):
        raise Refusal(400, "invalid_value",
                      f"the note must be at most {analyst.MAX_NOTE} printable characters")
    return verdict, note


async def post_rig_verdict(request, session, query, conn, form) -> View:
    """Confirm or dismiss every flagged member of a rig (one verdict per SIM, as the API's)."""
    rig_id = _rig_id(request, query)
    verdict, note = _verdict(form, query)
    found = await analyst.rig_with_flags(conn, rig_id)
    if found is None:
        raise Refusal(404, "no_rig", "the store holds no rig with this id")
    judged = sorted({f["imsi"] for f in found["flags"]})
    if not judged:
        raise Refusal(404, "no_flag", "the rig has no flagged SIM to judge")
    actor = analyst.actor_of(session.who)
    for imsi in judged:
        await feedback.judge(analyst._OnConnection(conn), imsi, verdict, actor, note)
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
    events = await analyst.sim_events(conn, imsi)
    if not found.subscribers or events is None:
        raise Refusal(404, "no_flag", "the store holds no flag, feedback or verification for this SIM")
    sub = lookup.project(found.subscribers[0], session.who.role)
    data = {"imsi": imsi, "sub": sub, "events": events["events"],
            "status": summarise(sub.get("flags", []))["status"]}
    return View("sim.html", data, {"timeline": charts.timeline_svg([(imsi, _marks(events["events"]))])})


async def post_sim_verdict(request, session, query, conn, form) -> View:
    imsi = _imsi(request, query)
    verdict, note = _verdict(form, query)
    try:
        await feedback.judge(analyst._OnConnection(conn), imsi, verdict,
                             analyst.actor_of(session.who), note)
    except feedback.FeedbackError:
        raise Refusal(404, "no_flag", "the store holds no flag for this SIM") from None
    return View(redirect=f"/console/sims/{imsi}")


# ---- allow-list and outbox ----------------------------------------------------------------

async def allowlist_page(request, session, query, conn, form) -> View:
    rows = await conn.fetch("SELECT kind, value, reason, actor, recorded_at FROM allowlist "
                            "ORDER BY recorded_at DESC, id DESC LIMIT 500")
    entries = [{"kind": r["kind"], "value": r["value"], "reason": r["reason"],
                "actor": r["actor"], "recorded_at": lookup.iso(r["recorded_at"])} for r in rows]
    return View("allowlist.html", {"entries": entries, "kinds": list(feedback.ALLOW_KINDS)})


async def post_allowlist(request, session, query, conn, form) -> View:
    kind, value, reason = form.get("kind"), form.get("value"), form.get("reason").strip()
    query.update(kind=kind[:32], value=value[:128], reason=reason[:200])
    if kind not in feedback.ALLOW_KINDS:
        raise Refusal(400, "invalid_value", f"kind must be one of {', '.join(feedback.ALLOW_KINDS)}")
    if not _TEXT.fullmatch(reason):
        raise Refusal(400, "invalid_value", "the reason must be 1-200 printable characters")
    try:
        value = feedback.normalise(kind, value[:200])
    except feedback.FeedbackError as e:
        raise Refusal(400, "invalid_value", f"value: {e}") from None
    query["value"] = value
    await feedback.allow(analyst._OnConnection(conn), kind, value, reason,
                         analyst.actor_of(session.who))
    return View(redirect="/console/allowlist")


async def outbox_page(request, session, query, conn, form) -> View:
    return View("outbox.html", {"box": await outbox.outbox_summary(analyst._OnConnection(conn), 50)})


async def index(request: web.Request) -> web.Response:
    return see_other("/console/rigs")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/console", index)
    r.add_get("/console/", index)
    r.add_get("/console/login", get_login)
    r.add_post("/console/login", post_login)
    r.add_post("/console/logout", page("console.logout", post_logout))
    r.add_get("/console/rigs", page("console.rigs", rigs_page))
    r.add_get("/console/rigs/{id}", page("console.rig", rig_page))
    r.add_post("/console/rigs/{id}/verdict", page("console.rig_verdict", post_rig_verdict))
    r.add_get("/console/sims/{imsi}", page("console.sim", sim_page))
    r.add_post("/console/sims/{imsi}/verdict", page("console.sim_verdict", post_sim_verdict))
    r.add_get("/console/allowlist", page("console.allowlist", allowlist_page))
    r.add_post("/console/allowlist", page("console.allowlist_add", post_allowlist))
    r.add_get("/console/outbox", page("console.outbox", outbox_page))
