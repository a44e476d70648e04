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

from detector.api import lookup
from detector.api.kit import (AUTH, CLIENT_ID, POOL, TITLES, WHO, Refusal, limit_client,
                              rate_limit, remote_of)
from detector.api.audited import Answer, Caller, audited_handler
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


async def session_gate(request: web.Request, entry: dict) -> Caller:
    """The console's gate: the session cookie (a GET without one is sent to the login page,
    audited as refused), rate-limited per client."""
    app = request.app
    entry["auth"] = "session"
    session = await sessions.find_session(app[POOL], app[AUTH].credentials,
                                          request.cookies.get(sessions.COOKIE))
    if session is None:
        await rate_limit(request, "ip:" + remote_of(request))
        if request.method == "GET":
            raise Refusal(303, "no_session", "log in first", {"Location": "/console/login"})
        raise Refusal(401, "no_session", "log in first (no session, or it expired)")
    who = session.who
    request[CLIENT_ID], request[WHO] = who.client_id, who
    entry.update(client_id=who.client_id, identity=who.identity, role=who.role)
    await limit_client(request, who)
    return Caller(who, session=session)


async def admit_form(request: web.Request, caller: Caller, query: dict) -> Caller:
    """A POST's form, with the session's CSRF token."""
    if request.method != "POST":
        return Caller(caller.who, caller.session, Form({}))
    form = await read_form(request, query)
    if not sessions.same_token(form.get("csrf"), caller.session.csrf):
        raise Refusal(403, "csrf_mismatch",
                      "the form's CSRF token is missing or wrong; reload the page")
    return Caller(caller.who, caller.session, form)


def render_view(request: web.Request, caller: Caller, view: View) -> Answer:
    if view.redirect:
        resp = see_other(view.redirect)
        if view.end_session:
            resp.del_cookie(sessions.COOKIE, path="/console")
        return Answer(resp, b"", tuple(lookup.field_paths(view.data)))
    body = render(view.template, who=caller.who, csrf=caller.session.csrf, **view.data,
                  **view.extra)
    return Answer(html(body), body.encode(), tuple(lookup.field_paths(view.data)))


def refused_page(request: web.Request, r: Refusal,
                 caller: Caller | None) -> tuple[web.StreamResponse, bytes | None]:
    if r.status == 303:               # no session: to the login page
        return see_other(r.headers["Location"]), None
    body = error_page(request, r, caller.session if caller else None)
    return html(body, r.status, r.headers), body.encode()


def page(action: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` behind the session, the role check, CSRF (POST) and the audit
    (:func:`detector.api.audited.audited_handler`)."""

    async def with_session(request: web.Request, caller: Caller, query: dict,
                           conn: asyncpg.Connection) -> View:
        return await handler(request, caller.session, query, conn, caller.form)

    serve = audited_handler(action, CONSOLE_ROLES, with_session, gate=session_gate,
                            admit=admit_form, render=render_view, refuse=refused_page,
                            forbidden="may not use the analysts' console")
    serve.__name__ = f"console_{action.replace('.', '_')}"
    return serve
