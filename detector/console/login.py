"""Logging in to the console with an analyst client's id and secret, and logging out.

A wrong id or secret counts as a failed authentication of the source address and of the
client named, apart from the client's working rate limit (:mod:`detector.api.lockout`): a
locked-out source is refused (429) before the secret is compared."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from detector.api import audit
from detector.api.audited import OnConnection, scrub
from detector.api.kit import (
    AUDIT,
    AUTH,
    CLIENT_ID,
    CONFIG,
    GUARD,
    LOCKED_OUT,
    POOL,
    REQUEST_ID,
    Refusal,
    append_quietly,
    check_not_locked,
    failed_auth,
    limit_client,
    log,
    remote_of,
)
from detector.console import sessions
from detector.console.audited import (
    CONSOLE_ROLES,
    Form,
    View,
    error_page,
    html,
    read_form,
    render,
    see_other,
)


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
                             "remote": remote_of(request), "auth": "session"}
    query: dict[str, Any] = {"method": "POST", "path": request.path[:200]}
    client_id = ""
    try:
        check_not_locked(request)
        form = await read_form(request, query)
        client_id = form.get("client_id")[:128]
        if not sessions.same_token(form.get("csrf"), request.cookies.get(sessions.LOGIN_COOKIE, "")):
            raise Refusal(403, "csrf_mismatch", "the login form expired; reload the page")
        check_not_locked(request, client_id)       # before the secret is compared
        who = app[AUTH].credentials.check_client(client_id, form.get("secret"))
        if who is None:
            await failed_auth(request, client_id,
                              Refusal(401, "invalid_client", "unknown client or wrong secret"))
        app[GUARD].succeeded(remote_of(request), who.client_id)
        request[CLIENT_ID] = who.client_id
        entry.update(client_id=who.client_id, identity=who.identity, role=who.role)
        await limit_client(request, who)     # its working bucket
        if who.role not in CONSOLE_ROLES:
            raise Refusal(403, "role_forbidden",
                          f"the role {who.role!r} may not use the analysts' console")
        await sessions.close_session(app[POOL], request.cookies.get(sessions.COOKIE))
        token, _ = await sessions.open_session(app[POOL], who, app[CONFIG].console_session_ttl_s)
        entry.update(query=scrub(query), status=303, outcome="applied", reason="",
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
        if r.reason not in ("audit_unavailable", LOCKED_OUT):    # a lockout is audited once
            entry.update(query=scrub(query), status=r.status, outcome="refused",
                         reason=r.reason, fields=(), answer_sha256="")
            await append_quietly(app, entry)
        if r.reason == "invalid_client":
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
    await sessions.close_session(OnConnection(conn), request.cookies.get(sessions.COOKIE))
    return View(redirect="/console/login", end_session=True)
