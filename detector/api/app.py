"""The HTTP API: subscriber lookups, the client-credentials token endpoint
(``detector.api.token``), the OpenAPI description, audit verification, and the analysts'
endpoints (``detector.api.analyst``); every error as ``application/problem+json``. The
credentials are reloaded while serving and the audit chain's head exported
(``detector.api.lifecycle``).

Logs carry request ids, client ids, method, route template, status and latency only: never a
number, a case reference or a body.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import asyncpg
from aiohttp import web

from detector import ids
from detector.metrics import LOOKUP_SECONDS
from detector.api import audit, lookup
from detector.api.auth import Authenticator, Credentials, CredentialSourceLike, Fixed, Identity
from detector.api.config import ApiConfig
from detector.api.grounds import GroundsError, GroundsPolicy
from detector.api.lockout import FailureGuard, Lockout
from detector.api.ratelimit import RateLimiter

log = logging.getLogger("goipwatch.api")

PROBLEM = "application/problem+json"
LOOKUP_FIELDS = {"number": str, "number_type": str, "case_ref": str, "legal_basis": str,
                 "officer": str}
PRINTABLE_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")   # printable, bounded free text

POOL = web.AppKey("pool", asyncpg.Pool)
CONFIG = web.AppKey("config", ApiConfig)
AUTH = web.AppKey("auth", Authenticator)
LIMITER = web.AppKey("limiter", RateLimiter)
SPEC = web.AppKey("spec", dict)
AUDIT = web.AppKey("audit", audit.AuditWriter)
CREDENTIALS = web.AppKey("credentials", CredentialSourceLike)
GUARD = web.AppKey("failure_guard", FailureGuard)
GROUNDS = web.AppKey("grounds", GroundsPolicy)
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
    await rate_limit(request, "client:" + who.client_id)
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


async def rate_limit(request: web.Request, key: str) -> None:
    wait = request.app[LIMITER].take(key)
    if wait > 0:
        after = RateLimiter.retry_after(wait)
        raise Refusal(429, "rate_limited", f"too many requests; retry after {after} s",
                      {"Retry-After": after})


# ---- lookups ------------------------------------------------------------------------------

async def _json_body(request: web.Request) -> Any:
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


# the order in which a lookup's fields are checked, so that a missing one is named as documented
LOOKUP_CHECK_ORDER = ("case_ref", "legal_basis", "officer", "number", "number_type")


def _validate_lookup(body: Any, who: Identity, grounds: GroundsPolicy) -> dict[str, str]:
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - set(LOOKUP_FIELDS))
    if unknown:
        raise Refusal(400, "unknown_field", f"unknown field {unknown[0][:64]!r}", field=unknown[0][:64])
    required = list(LOOKUP_CHECK_ORDER)
    if not grounds.officer_required(who):
        required.remove("officer")          # a personal certificate names its officer
    for name in LOOKUP_CHECK_ORDER:
        value = body.get(name)
        if name in required and (value is None or (isinstance(value, str) and not value.strip())):
            raise Refusal(400, f"missing_{name}", f"{name} is required", field=name)
        if value is not None and not isinstance(value, str):
            raise Refusal(400, "invalid_type", f"{name} must be a string", field=name)
    for name in ("case_ref", "legal_basis", "officer"):
        value = body.get(name) or ""
        if value and not PRINTABLE_TEXT.fullmatch(value.strip()):
            raise Refusal(400, "invalid_value",
                          f"{name} must be 1-200 printable characters", field=name)
    if body["number_type"] not in lookup.NUMBER_TYPES:
        raise Refusal(400, "invalid_number_type",
                      f"number_type must be one of {', '.join(lookup.NUMBER_TYPES)}",
                      field="number_type")
    try:
        number = lookup.normalise_number(body["number_type"], body["number"][:64])
    except ids.InvalidIdentifier as e:
        raise Refusal(400, "invalid_number", f"number: {e.why}", field="number") from None
    try:
        g = grounds.check(who, body["case_ref"], body["legal_basis"], body.get("officer") or "")
    except GroundsError as e:
        raise Refusal(e.status, e.reason, e.detail, field=e.field) from None
    return {"number_type": body["number_type"], "number": number, "case_ref": g.case_ref,
            "legal_basis": g.legal_basis, "officer": g.officer}


def _text_of(body: Any, key: str) -> str:
    """A request field as recorded in the audit even when the request is refused."""
    if isinstance(body, dict) and isinstance(body.get(key), str):
        return body[key][:200].replace("\x00", "\ufffd")     # the store refuses NUL
    return ""


async def authenticate_into(request: web.Request, entry: dict[str, Any]) -> Identity:
    """Authenticate, recording the caller in the audit ``entry`` even when refused."""
    try:
        return await authenticate(request)
    finally:
        who = request.get(WHO)
        if who is not None:
            entry.update(client_id=who.client_id, identity=who.identity, role=who.role,
                         auth=who.auth)


async def append_quietly(app: web.Application, entry: dict[str, Any]) -> None:
    """Audit a refusal; a failure is logged (the refusal itself gave nothing away)."""
    try:
        await app[AUDIT].append(audit.AuditEntry(**entry))
    except (OSError, asyncpg.PostgresError):
        log.exception("audit append failed for a refusal", extra={"request_id": entry["request_id"]})


def _record_asked(entry: dict[str, Any], body: Any) -> None:
    """What a lookup asked, in its audit ``entry`` (refused or not)."""
    entry.update(case_ref=_text_of(body, "case_ref"), legal_basis=_text_of(body, "legal_basis"),
                 officer=_text_of(body, "officer"),
                 query={"number_type": _text_of(body, "number_type"),
                        "number": _text_of(body, "number")[:64]})


async def _body_quietly(request: web.Request) -> Any:
    """The JSON body of a request refused before it was read, for its audit row; None."""
    try:
        if request.content_type == "application/json" and request.can_read_body:
            return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError, web.HTTPException):
        pass
    return None


async def post_lookup(request: web.Request) -> web.Response:
    """Checks in the documented order: credential (401), rate limit (429), role (403), body
    (415, 413, 400), the grounds (400, 403), the lookup (404, 200)."""
    app = request.app
    entry: dict[str, Any] = {"request_id": request[REQUEST_ID], "action": "lookup",
                             "remote": remote_of(request)}
    body: Any = None
    try:
        who = await authenticate_into(request, entry)
        if not lookup.ROLE_SECTIONS[who.role]:
            _record_asked(entry, await _body_quietly(request))
            raise Refusal(403, "role_forbidden",
                          f"the role {who.role!r} may not look up subscribers")
        try:
            body = await _json_body(request)
        finally:
            _record_asked(entry, body)
        q = _validate_lookup(body, who, app[GROUNDS])
        entry.update(query={"number_type": q["number_type"], "number": q["number"]},
                     case_ref=q["case_ref"], legal_basis=q["legal_basis"], officer=q["officer"])
        async with app[POOL].acquire() as conn:
            found = await lookup.find(conn, q["number_type"], q["number"],
                                      app[CONFIG].max_subscribers)
        if not found.subscribers:
            raise Refusal(404, "no_subscriber", "the store holds nothing on this number")
        answer = {
            "request_id": request[REQUEST_ID], "case_ref": q["case_ref"],
            "number_type": q["number_type"], "number": q["number"], "role": who.role,
            "answered_at": lookup.iso(datetime.now(UTC)),
            "subscribers": [lookup.project(s, who.role) for s in found.subscribers],
            "truncated": found.truncated,
        }
        raw = json.dumps(answer, ensure_ascii=False).encode()
        entry.update(status=200, outcome="answered", reason="",
                     fields=tuple(lookup.field_paths(answer)), answer_sha256=audit.digest(raw))
        try:
            await app[AUDIT].append(audit.AuditEntry(**entry))
        except (OSError, asyncpg.PostgresError):
            log.exception("audit append failed; answer withheld",
                          extra={"request_id": request[REQUEST_ID]})
            raise Refusal(503, "audit_unavailable",
                          "the lookup could not be audited, so it is not answered") from None
        return web.Response(body=raw, content_type="application/json",
                            headers={"Cache-Control": "no-store"})
    except Refusal as r:
        if r.reason == "audit_unavailable":
            raise
        raw = problem_body(r.status, r.reason, r.detail, request[REQUEST_ID], **r.extra)
        if r.reason != LOCKED_OUT:     # a lockout is audited once, not each refusal
            entry.update(status=r.status, outcome="not_found" if r.status == 404 else "refused",
                         reason=r.reason, fields=(), answer_sha256=audit.digest(raw))
            await append_quietly(app, entry)
        return web.Response(status=r.status, body=raw, content_type=PROBLEM, headers=r.headers)


async def timed_lookup(request: web.Request) -> web.Response:
    """A lookup, its latency observed for /metrics by HTTP status (nothing of the query)."""
    started = time.perf_counter()
    status = "error"
    try:
        response = await post_lookup(request)
        status = str(response.status)
        return response
    except web.HTTPException as e:
        status = str(e.status)
        raise
    finally:
        LOOKUP_SECONDS.observe(time.perf_counter() - started, status=status)


# ---- the rest -----------------------------------------------------------------------------

async def get_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_openapi_yaml(request: web.Request) -> web.Response:
    path = request.app[CONFIG].openapi_path
    try:
        text = path.read_text()
    except OSError:
        raise Refusal(404, "not_found", "the OpenAPI description is not installed") from None
    return web.Response(text=text, content_type="application/yaml")


async def get_openapi_json(request: web.Request) -> web.Response:
    spec = request.app[SPEC]
    if "doc" not in spec:
        try:
            import yaml
        except ImportError:
            raise Refusal(404, "not_found", "serving JSON needs PyYAML; see /openapi.yaml") from None
        try:
            spec["doc"] = yaml.safe_load(request.app[CONFIG].openapi_path.read_text())
        except OSError:
            raise Refusal(404, "not_found", "the OpenAPI description is not installed") from None
    return web.json_response(spec["doc"])


async def hide_server_version(request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp would name itself and Python with their versions in ``Server``."""
    response.headers["Server"] = "goipwatch"


def make_app(pool: asyncpg.Pool, config: ApiConfig,
             routes: Sequence[web.RouteTableDef] = (),
             credentials: Credentials | None = None, *,
             reload_on_sighup: bool = False) -> web.Application:
    """The API application on ``pool`` (a migrated store). ``routes`` are mounted beside the
    API's own (say, the platform's status callbacks, audited here); ``credentials``
    overrides ``config.tokens_file`` (and is then never reloaded); with
    ``reload_on_sighup``, SIGHUP reloads the credentials file while the application runs."""
    # these modules import this one, so they are imported here, not above
    from detector.api import analyst, callbacks, lifecycle, token

    app = web.Application(middlewares=[envelope, callbacks.audited_callbacks],
                          client_max_size=config.max_body_bytes)
    app[POOL] = pool
    app[CONFIG] = config
    app[AUDIT] = audit.AuditWriter(pool)
    if credentials is not None:
        app[CREDENTIALS] = Fixed(credentials)
    elif config.tokens_file:
        app[CREDENTIALS] = lifecycle.watched_credentials(app, config)
    else:
        app[CREDENTIALS] = Fixed(Credentials.empty())
    app[AUTH] = Authenticator(pool, app[CREDENTIALS], config.token_ttl_s)
    app[LIMITER] = RateLimiter(config.rate_per_s, config.burst)
    app[GUARD] = FailureGuard(config.failed_auth_per_min / 60.0, config.failed_auth_burst)
    app[GROUNDS] = config.grounds
    app[SPEC] = {}
    app.on_response_prepare.append(hide_server_version)
    lifecycle.add_background(app, pool, config, sighup=reload_on_sighup)
    app.router.add_post("/v1/lookups", timed_lookup)
    app.router.add_post("/oauth/token", token.post_token)
    app.router.add_get("/v1/audit/verify", lifecycle.audit_verify_route())
    app.router.add_get("/v1/health", get_health)
    app.router.add_get("/openapi.yaml", get_openapi_yaml)
    app.router.add_get("/openapi.json", get_openapi_json)
    analyst.add_routes(app)
    if config.console:
        from detector import console

        console.add_routes(app)
    for table in routes:
        app.add_routes(table)
    return app


def server_ssl_context(config: ApiConfig) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config.tls_cert, config.tls_key)
    if config.client_ca:
        ctx.load_verify_locations(config.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    return ctx


async def start_api(pool: asyncpg.Pool, config: ApiConfig,
                    routes: Sequence[web.RouteTableDef] = (),
                    reload_on_sighup: bool = True) -> web.AppRunner:
    """Serve the API on ``config.host:config.port`` (TLS and client certificates when
    configured); returns the runner (``await runner.cleanup()`` stops it; ``runner.addresses``
    holds the bound address, for port 0). With ``reload_on_sighup`` (the default), SIGHUP
    reloads the credentials file instead of ending the process, until the runner is cleaned
    up: ``goipwatch api`` and the daemon serving the API both get this."""
    app = make_app(pool, config, routes, reload_on_sighup=reload_on_sighup)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=server_ssl_context(config))
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
