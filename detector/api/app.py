"""The API application, assembled: subscriber lookups (``detector.api.subscriber_lookup``),
the client-credentials token endpoint (``detector.api.token``), the OpenAPI description,
audit verification, the analysts' endpoints (``detector.api.analyst``), the platform's
status callbacks (``detector.api.callbacks``) and the console (``detector.console``); every
error as ``application/problem+json``. The credentials are reloaded while serving and the
audit chain's head exported (``detector.api.lifecycle``).

This module only assembles: it imports the handler modules and none of them imports it (they
share :mod:`detector.api.kit`). The names of the kit that were once defined here are still
importable from here for callers outside the package.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import asyncpg
from aiohttp import web

from detector import console
from detector.api import analyst, audit, callbacks, lifecycle, subscriber_lookup, token
from detector.api.auth import Authenticator, Credentials, Fixed
from detector.api.config import ApiConfig
from detector.api.event_clock import EventClock
from detector.api.kit import (  # noqa: F401  (Refusal, problem: importable from here too)
    AUDIT,
    AUTH,
    CONFIG,
    CREDENTIALS,
    EVENT_CLOCK,
    GROUNDS,
    GUARD,
    LIMITER,
    POOL,
    SPEC,
    Refusal,
    envelope,
    problem,
)
from detector.api.lockout import FailureGuard
from detector.api.ratelimit import RateLimiter


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
    app[EVENT_CLOCK] = EventClock(pool)
    app[SPEC] = {}
    app.on_response_prepare.append(hide_server_version)
    lifecycle.add_background(app, pool, config, sighup=reload_on_sighup)
    app.router.add_post("/v1/lookups", subscriber_lookup.timed_lookup)
    app.router.add_post("/oauth/token", token.post_token)
    app.router.add_get("/v1/audit/verify", lifecycle.audit_verify_route())
    app.router.add_get("/v1/health", get_health)
    app.router.add_get("/openapi.yaml", get_openapi_yaml)
    app.router.add_get("/openapi.json", get_openapi_json)
    analyst.add_routes(app)
    if config.console:
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
