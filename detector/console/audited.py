"""The console's audited page wrapper and its rendering.

Every page and action goes through :func:`page`: the session cookie, the analyst role, the
CSRF token of a POST form, the rate limit, and one transaction holding whatever the action
changed together with its audit row (written like the analyst API's: who, the action and its
parameters, the status and outcome, the field paths shown and the SHA-256 of the page sent).
A refused request (no session, another role, a bad form) is audited too. Pages are Jinja2
templates with autoescaping, served with a Content-Security-Policy that allows no script and
only the console's own stylesheet (by its hash).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
from aiohttp import web

from detector.api import analyst, audit, lookup
from detector.api.app import (
    AUDIT,
    AUTH,
    CLIENT_ID,
    POOL,
    REQUEST_ID,
    TITLES,
    WHO,
    Refusal,
    _limit,
    _remote,
    append_quietly,
    log,
)
from detector.console import sessions

CONSOLE_ROLES = frozenset({"analyst"})
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
