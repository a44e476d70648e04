"""One audited request, for every endpoint and console page that discloses or changes data.

:func:`audited_handler` puts a handler behind: authentication (a :data:`Gate`: the API's
bearer token / client certificate, or the console's session), the role check, optional
admission checks (the console's form and CSRF token), and the audit. The handler runs in one
transaction with its audit row (who, the action and its parameters, the status and outcome,
the field paths disclosed and the SHA-256 of the body sent): a change is only committed with
the row that records it, and when the row cannot be appended nothing is changed or answered
(``503 audit_unavailable``). A refusal is audited too (its audit failure is only logged: the
refusal gave nothing away), except one of a source locked out after failed authentications
(the lockout is audited once); an unexpected exception is audited as ``internal_error`` and
re-raised, so the envelope answers 500. Everything that goes to the audit has its NULs
replaced first (:func:`scrub`), so whatever a client sent can be recorded.

How the answer is rendered (JSON, an HTML page, a file) is the caller's: a :data:`Render`
turns the handler's result into an :class:`Answer`, a :data:`Refuse` turns a refusal into
a response.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from detector.api import audit, lookup
from detector.api.kit import (
    AUDIT,
    LOCKED_OUT,
    POOL,
    PROBLEM,
    REQUEST_ID,
    Refusal,
    append_quietly,
    authenticate_into,
    log,
    problem_body,
    remote_of,
    scrub_text,
)
from detector.api.auth import Identity


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the identity, and what the console's gate and admission add (its
    session, the posted form)."""
    who: Identity
    session: Any = None
    form: Any = None


@dataclass(frozen=True, slots=True)
class Answer:
    """A rendered answer: the response to send, the body whose SHA-256 is audited and the
    field paths it discloses."""
    response: web.StreamResponse
    body: bytes
    fields: tuple[str, ...] = ()


# (request, audit entry) -> the caller, recorded in the entry; raises Refusal
Gate = Callable[[web.Request, dict], Awaitable[Caller]]
# (request, caller, query) -> the caller to serve; raises Refusal (runs after the role check)
Admit = Callable[[web.Request, Caller, dict], Awaitable[Caller]]
# (request, caller, query, connection in the transaction, or the pool) -> a result to render
Handler = Callable[[web.Request, Caller, dict, Any], Awaitable[Any]]
Render = Callable[[web.Request, Caller, Any], Answer]
# (request, refusal, caller or None) -> (response, body audited; None: no body, no digest)
Refuse = Callable[[web.Request, Refusal, "Caller | None"], "tuple[web.StreamResponse, bytes | None]"]


async def bearer(request: web.Request, entry: dict) -> Caller:
    """The API's gate: a bearer token (OAuth2 client credentials) or a client certificate."""
    return Caller(await authenticate_into(request, entry))


def json_answer(request: web.Request, caller: Caller, doc: Any) -> Answer:
    """A JSON document answered as ``application/json``."""
    raw = json.dumps(doc, ensure_ascii=False).encode()
    return Answer(web.Response(body=raw, content_type="application/json",
                               headers={"Cache-Control": "no-store"}),
                  raw, tuple(lookup.field_paths(doc)))


def as_answer(request: web.Request, caller: Caller, answer: Answer) -> Answer:
    """For handlers that render their answer themselves (files)."""
    return answer


def problem_answer(request: web.Request, r: Refusal,
                   caller: Caller | None) -> tuple[web.StreamResponse, bytes]:
    """A refusal as ``application/problem+json``."""
    raw = problem_body(r.status, r.reason, r.detail, request[REQUEST_ID], **r.extra)
    return web.Response(status=r.status, body=raw, content_type=PROBLEM, headers=r.headers), raw


def audited_handler(action: str, roles: frozenset[str], handler: Handler, *,
                    gate: Gate = bearer, render: Render = json_answer,
                    refuse: Refuse = problem_answer, admit: Admit | None = None,
                    forbidden: str = "may not use {method} {path}",
                    in_transaction: bool = True) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """``handler`` behind ``gate``, the ``roles`` check, ``admit`` and the audit.

    ``handler(request, caller, query, db)`` records the request's parameters in ``query`` (as
    soon as they are known, so that refusals keep them) and returns what ``render`` answers.
    ``db`` is the connection of the transaction that also holds the audit row; with
    ``in_transaction=False`` (read-only handlers that take their own snapshot, like the
    report) it is the pool and the row is appended after the answer is rendered.
    ``forbidden`` completes "the role 'x' ..." of the 403 (``{method}``, ``{path}``)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        app = request.app
        entry: dict[str, Any] = {"request_id": request[REQUEST_ID], "action": action,
                                 "remote": remote_of(request)}
        query: dict[str, Any] = {"method": request.method, "path": request.path[:200]}
        caller: Caller | None = None
        try:
            caller = await gate(request, entry)
            if caller.who.role not in roles:
                raise Refusal(403, "role_forbidden", f"the role {caller.who.role!r} "
                              + forbidden.format(method=request.method, path=request.path[:200]))
            if admit is not None:
                caller = await admit(request, caller, query)
            answer = await _answer_audited(request, entry, query, caller, handler, render,
                                           in_transaction)
            return answer.response
        except Refusal as r:
            response, body = refuse(request, r, caller)
            # audit_unavailable could not be audited anyway; a lockout is audited once
            if r.reason not in ("audit_unavailable", LOCKED_OUT):
                entry.update(query=scrub(query), status=r.status,
                             outcome="not_found" if r.status == 404 else "refused",
                             reason=r.reason, fields=(),
                             answer_sha256=audit.digest(body) if body is not None else "")
                await append_quietly(app, entry)
            return response
        except web.HTTPException:
            raise
        except Exception:       # answered 500 by the envelope; the attempt is still audited
            entry.update(query=scrub(query), status=500, outcome="error",
                         reason="internal_error", fields=(), answer_sha256="")
            await append_quietly(app, entry)
            raise

    serve.__name__ = f"serve_{action.replace('.', '_')}"
    return serve


async def _answer_audited(request: web.Request, entry: dict, query: dict, caller: Caller,
                          handler: Handler, render: Render, in_transaction: bool) -> Answer:
    app = request.app

    async def append(answer: Answer, conn: asyncpg.Connection | None) -> None:
        entry.update(query=scrub(query), status=answer.response.status,
                     outcome="applied" if request.method == "POST" else "answered",
                     reason="", fields=answer.fields, answer_sha256=audit.digest(answer.body))
        try:
            await app[AUDIT].append(audit.AuditEntry(**entry), conn=conn)
        except (OSError, asyncpg.PostgresError) as e:
            raise _AuditFailed() from e

    try:
        if in_transaction:
            async with app[POOL].acquire() as conn, conn.transaction():
                answer = render(request, caller, await handler(request, caller, query, conn))
                await append(answer, conn)
        else:
            answer = render(request, caller, await handler(request, caller, query, app[POOL]))
            await append(answer, None)
    except _AuditFailed:
        app[AUDIT].forget()
        log.exception("audit append failed; request not served",
                      extra={"request_id": request[REQUEST_ID]})
        raise Refusal(503, "audit_unavailable", "the request could not be audited, so it is "
                      "not served (nothing was changed)") from None
    except BaseException:
        app[AUDIT].forget()       # an append of a rolled-back transaction is gone
        raise
    return answer


class _AuditFailed(Exception):
    pass


# NULs replaced before anything a client sent goes to the audit
scrub = scrub_text


class OnConnection:
    """A connection passed where a pool is expected (``feedback.judge``, ``outbox``): their
    statements join the request's transaction (their own transactions become savepoints)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    def acquire(self) -> OnConnection:
        return self

    async def __aenter__(self) -> asyncpg.Connection:
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
