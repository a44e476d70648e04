"""``POST /oauth/token``: the OAuth2 client-credentials grant (RFC 6749 §4.4).

Every request is audited (action ``token.issue``): a token issued (its row in ``api_tokens``
commits with the audit row, or no token is issued: ``503 audit_unavailable``), a wrong secret
or unknown client (``401 invalid_client``, the client named kept in the row's query), a
malformed request. Failed attempts count against the source address and the client named,
apart from the client's working rate limit (:mod:`detector.api.lockout`): a locked-out source
gets ``429 too_many_failures`` before its secret is compared, and those refusals are not
audited one by one (the lockout is, once).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import asyncpg
from aiohttp import web

from detector.api import audit, lookup
from detector.api.kit import (
    AUDIT,
    AUTH,
    CLIENT_ID,
    GUARD,
    LOCKED_OUT,
    POOL,
    REQUEST_ID,
    WHO,
    Refusal,
    append_quietly,
    check_not_locked,
    failed_auth,
    limit_client,
    log,
    remote_of,
    scrub_text,
)

BASIC = {"WWW-Authenticate": 'Basic realm="goipwatch"'}


def _client_credentials(request: web.Request, form: Any) -> tuple[Any, Any]:
    """(client id, secret) from HTTP Basic, else from the form."""
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            client_id, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Refusal(401, "invalid_client", "malformed Basic credentials", BASIC,
                          error="invalid_client") from None
    return client_id, secret


async def post_token(request: web.Request) -> web.Response:
    app = request.app
    entry: dict[str, Any] = {"request_id": request[REQUEST_ID], "action": "token.issue",
                             "remote": remote_of(request), "auth": "client_secret"}
    query: dict[str, Any] = {"method": "POST", "path": request.path[:200]}
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise Refusal(415, "unsupported_media_type",
                          "the body must be application/x-www-form-urlencoded", error="invalid_request")
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise Refusal(413, "body_too_large", "the body is too large") from None
        client_id, secret = _client_credentials(request, form)
        if isinstance(client_id, str):
            query["client_id"] = client_id[:128]
        query["grant_type"] = str(form.get("grant_type", ""))[:64]
        if form.get("grant_type") != "client_credentials":
            raise Refusal(400, "unsupported_grant_type", "grant_type must be client_credentials",
                          error="unsupported_grant_type")
        if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
            raise Refusal(401, "invalid_client", "client_id and client_secret are required",
                          BASIC, error="invalid_client")
        client_id = client_id[:128]
        check_not_locked(request, client_id)          # before the secret is compared
        who = app[AUTH].credentials.check_client(client_id, secret)
        if who is None:
            await failed_auth(request, client_id, Refusal(
                401, "invalid_client", "unknown client or wrong secret", BASIC, error="invalid_client"))
        app[GUARD].succeeded(remote_of(request), who.client_id)
        request[CLIENT_ID], request[WHO] = who.client_id, who
        entry.update(client_id=who.client_id, identity=who.identity, role=who.role)
        await limit_client(request, who)     # its working bucket
        return await _issue(request, entry, query, who)
    except Refusal as r:
        if r.reason not in (LOCKED_OUT, "audit_unavailable"):
            entry.update(query=scrub_text(query), status=r.status, outcome="refused",
                         reason=r.reason)
            await append_quietly(app, entry)
        raise


async def _issue(request: web.Request, entry: dict[str, Any], query: dict[str, Any],
                 who: Any) -> web.Response:
    """A token for ``who``, stored in one transaction with its audit row."""
    app = request.app
    auth = app[AUTH]
    token, h, expires = auth.new_token(who)
    doc = {"access_token": token, "token_type": "Bearer", "expires_in": auth.token_ttl_s}
    query["expires_at"] = lookup.iso(expires)
    entry.update(query=scrub_text(query), status=200, outcome="applied", reason="",
                 fields=("access_token", "expires_in", "token_type"))
    try:
        async with app[POOL].acquire() as conn, conn.transaction():
            await auth.store(conn, who, h, expires)
            await app[AUDIT].append(audit.AuditEntry(**entry), conn=conn)
    except (OSError, asyncpg.PostgresError):
        app[AUDIT].forget()
        log.exception("audit append failed; no token issued",
                      extra={"request_id": request[REQUEST_ID]})
        raise Refusal(503, "audit_unavailable",
                      "the token could not be audited, so none is issued") from None
    auth.remember(who, h)
    return web.json_response(doc, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
