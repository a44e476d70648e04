"""The API's shared kit: what every handler module (lookups, tokens, the analysts' endpoints,
callbacks, the console) uses and nothing of it assembles the application. The application's
keys, :class:`Refusal` and the problem documents (``application/problem+json``), the envelope
middleware (request id, log line, problems), authentication (bearer token, client certificate,
failure lockouts), the per-client rate limit, JSON bodies, the audit of refusals.

Imports run one way: :mod:`detector.api.app` (the assembly) imports the handler modules, they
import this kit, and this kit imports neither.

Logs carry request ids, client ids, method, route template, status and latency only: never a
number, a case reference or a body.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any, NoReturn

import asyncpg
from aiohttp import web

from detector.api import audit
from detector.api.auth import Authenticator, CredentialSourceLike, Identity
from detector.api.config import ApiConfig
from detector.api.event_clock import EventClock
from detector.api.grounds import GroundsPolicy
from detector.api.lockout import FailureGuard, Lockout
from detector.api.ratelimit import RateLimiter
from detector.metrics import AUTH_LOCKOUTS

log = logging.getLogger("goipwatch.api")

PROBLEM = "application/problem+json"
PRINTABLE_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")   # printable, bounded free text
MAX_NOTE = 1000                                          # a verdict's note, API and console
NOTE_TEXT = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f]*")    # printable, newlines and tabs allowed

POOL = web.AppKey("pool", asyncpg.Pool)
CONFIG = web.AppKey("config", ApiConfig)
AUTH = web.AppKey("auth", Authenticator)
LIMITER = web.AppKey("limiter", RateLimiter)
SPEC = web.AppKey("spec", dict)
AUDIT = web.AppKey("audit", audit.AuditWriter)
CREDENTIALS = web.AppKey("credentials", CredentialSourceLike)
GUARD = web.AppKey("failure_guard", FailureGuard)
GROUNDS = web.AppKey("grounds", GroundsPolicy)
EVENT_CLOCK = web.AppKey("event_clock", EventClock)
_RequestKey = getattr(web, "RequestKey", None)   # aiohttp >= 3.12; plain strings before
REQUEST_ID = _RequestKey("request_id", str) if _RequestKey else "request_id"
CLIENT_ID = _RequestKey("client_id", str) if _RequestKey else "client_id"
WHO = _RequestKey("identity", Identity) if _RequestKey else "identity"

TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 406: "Not acceptable", 413: "Request body too large",
    415: "Unsupported media type", 429: "Too many requests", 500: "Internal error",
    503: "Service unavailable",
}


class Refusal(Exception):
    """A request answered with a problem document."""

    def __init__(self, status: int, reason: str, detail: str, headers: dict | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.headers = headers or {}
        self.extra = extra


def problem_body(status: int, reason: str, detail: str, request_id: str, **extra: Any) -> bytes:
    doc = {"type": f"urn:goipwatch:problem:{reason}", "title": TITLES.get(status, "Error"),
           "status": status, "reason": reason, "detail": detail, "instance": request_id}
    doc.update(extra)
    return json.dumps(doc).encode()


def problem(request: web.Request, status: int, reason: str, detail: str,
            headers: dict | None = None, **extra: Any) -> web.Response:
    return web.Response(status=status, body=problem_body(status, reason, detail,
                                                         request.get(REQUEST_ID, ""), **extra),
                        content_type=PROBLEM, headers=headers)


# ---- middleware: request id, logging, problem documents ------------------------------------

@web.middleware
async def envelope(request: web.Request, handler):
    request[REQUEST_ID] = uuid.uuid4().hex
    request[CLIENT_ID] = ""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except Refusal as r:
        response = problem(request, r.status, r.reason, r.detail, r.headers, **r.extra)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = {404: "not_found", 405: "method_not_allowed",
                  413: "body_too_large"}.get(e.status, f"http_{e.status}")
        headers = {k: v for k, v in e.headers.items() if k.lower() == "allow"}
        response = problem(request, e.status, reason, e.reason, headers)
    except Exception:
        log.exception("api handler failed", extra={"request_id": request[REQUEST_ID]})
        response = problem(request, 500, "internal_error", "the request could not be handled")
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    route = request.match_info.route.resource
    log.info("api request", extra={
        "request_id": request[REQUEST_ID], "client_id": request[CLIENT_ID],
        "method": request.method, "route": route.canonical if route is not None else "-",
        "status": response.status, "latency_ms": round((time.perf_counter() - started) * 1e3, 2)})
    return response


# ---- authentication -----------------------------------------------------------------------

def remote_of(request: web.Request) -> str:
    return request.remote or ""


async def authenticate(request: web.Request) -> Identity:
    """The identity behind a request (bearer token first, then the client certificate),
    rate-limited per client; raises :class:`Refusal` (401, 429). A failure counts against the
    source address (:mod:`detector.api.lockout`), never against a client's own bucket."""
    app = request.app
    header = request.headers.get("Authorization")
    who: Identity | None = None
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 512:
            await failed_auth(request, None, Refusal(
                401, "invalid_token", "Authorization must be 'Bearer <token>'",
                {"WWW-Authenticate": 'Bearer error="invalid_request"'}))
        who = await app[AUTH].by_token(token)
        if who is None:
            await failed_auth(request, None, Refusal(
                401, "invalid_token", "the bearer token is unknown or expired",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'}))
    else:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        who = app[AUTH].by_certificate(ssl_object)
        if who is None:
            has_cert = ssl_object is not None and ssl_object.getpeercert(binary_form=True)
            if has_cert:
                await failed_auth(request, None, Refusal(
                    401, "unknown_certificate", "the client certificate is not mapped to an identity"))
            await failed_auth(request, None, Refusal(
                401, "missing_credentials", "a bearer token or a client certificate is required",
                {"WWW-Authenticate": 'Bearer realm="goipwatch"'}))
    app[GUARD].succeeded(remote_of(request), who.client_id)
    request[CLIENT_ID] = who.client_id
    request[WHO] = who
    await limit_client(request, who)
    return who


LOCKED_OUT = "too_many_failures"


def locked_out(wait_s: float) -> Refusal:
    after = RateLimiter.retry_after(wait_s)
    return Refusal(429, LOCKED_OUT, f"too many failed authentications; retry after {after} s",
                   {"Retry-After": after})


def check_not_locked(request: web.Request, client_id: str | None = None) -> None:
    """Before a secret is compared: refuse (429) an address, or an address new to
    ``client_id``, that is locked out after too many failures."""
    wait = request.app[GUARD].blocked(remote_of(request), client_id)
    if wait > 0:
        raise locked_out(wait)


async def failed_auth(request: web.Request, client_id: str | None, refusal: Refusal) -> NoReturn:
    """Count a failed authentication (naming ``client_id`` when the request named one) and
    raise ``refusal``, or 429 when the source is already locked out. A lockout this failure
    starts is audited."""
    if client_id is None:
        check_not_locked(request)
    for lockout in request.app[GUARD].failed(remote_of(request), client_id):
        await audit_lockout(request, lockout)
    raise refusal


async def audit_lockout(request: web.Request, lockout: Lockout) -> None:
    """Log, count (``/metrics``, by scope) and audit a lockout that has just started."""
    AUTH_LOCKOUTS.inc(scope=lockout.scope)
    log.warning("authentication lockout", extra={
        "request_id": request[REQUEST_ID], "scope": lockout.scope,
        "retry_after_s": round(lockout.retry_after_s, 1)})
    query: dict[str, Any] = {"scope": lockout.scope,
                             "retry_after_s": round(lockout.retry_after_s, 1),
                             "refused_in_previous_lockout": lockout.refused_before}
    if lockout.scope == "client":
        query["client_id"] = lockout.key
    await append_quietly(request.app, {
        "request_id": request[REQUEST_ID], "action": "auth.lockout", "remote": remote_of(request),
        "query": scrub_text(query), "status": 429, "outcome": "refused", "reason": LOCKED_OUT})


def scrub_text(obj: Any) -> Any:
    """``obj`` with NULs replaced (PostgreSQL text and jsonb refuse them)."""
    if isinstance(obj, str):
        return obj.replace("\x00", "\ufffd")
    if isinstance(obj, dict):
        return {scrub_text(k): scrub_text(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_text(v) for v in obj]
    return obj


async def rate_limit(request: web.Request, key: str, rate: float | None = None,
                     burst: int | None = None) -> None:
    """Take a token of ``key``'s bucket (at ``rate`` and ``burst`` when the client has its
    own), or refuse the request (429) with when to retry."""
    wait = request.app[LIMITER].take(key, rate, burst)
    if wait > 0:
        after = RateLimiter.retry_after(wait)
        raise Refusal(429, "rate_limited", f"too many requests; retry after {after} s",
                      {"Retry-After": after})


async def limit_client(request: web.Request, who: Identity) -> None:
    """Take a token of the client's working bucket (its own rate when its credential sets one)."""
    await rate_limit(request, "client:" + who.client_id, who.rate_per_s, who.burst)


async def authenticate_into(request: web.Request, entry: dict[str, Any]) -> Identity:
    """Authenticate, recording the caller in the audit ``entry`` even when refused."""
    try:
        return await authenticate(request)
    finally:
        who = request.get(WHO)
        if who is not None:
            entry.update(client_id=who.client_id, identity=who.identity, role=who.role,
                         auth=who.auth)


def actor_of(who: Identity) -> str:
    """How an API or console user is named in ``feedback``, ``allowlist`` and ``flag_history``."""
    return f"{who.identity} ({who.client_id})"


# ---- bodies and the audit of refusals -----------------------------------------------------

async def json_body(request: web.Request) -> Any:
    """The request's JSON body; :class:`Refusal` 415, 413 or 400 when it is not one."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Refusal(415, "unsupported_media_type", "the body must be application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, "body_too_large",
                      f"the body exceeds {request.app[CONFIG].max_body_bytes} bytes") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise Refusal(400, "malformed_json", f"the body is not valid JSON ({type(e).__name__})") from None


async def append_quietly(app: web.Application, entry: dict[str, Any]) -> None:
    """Audit a refusal; a failure is logged (the refusal itself gave nothing away)."""
    try:
        await app[AUDIT].append(audit.AuditEntry(**entry))
    except (OSError, asyncpg.PostgresError):
        log.exception("audit append failed for a refusal", extra={"request_id": entry["request_id"]})

