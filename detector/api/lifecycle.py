"""What the API does besides answering requests: it prepares its store connections and
settles its memory before the first request, watches the credentials file and applies each
reload (revoking, in the store, the issued tokens and console sessions of clients removed or
given a new secret, and auditing the reload), exports the audit chain's head to the anchor
file, reloads on SIGHUP, and audits the runs of ``GET /v1/audit/verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from detector.api import anchor, audit, lookup
from detector.api.audited import audited_handler
from detector.api.background import Background
from detector.api.count_folding import CountFolder
from detector.api.kit import AUDIT, AUTH, CREDENTIALS, POOL, append_quietly, log
from detector.api.config import ApiConfig
from detector.api.credentials import CredentialSource, Reload


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Plan, on each store connection the API opens, the statements every lookup runs (its
    read, its audit group's insert): ``goipwatch api`` opens its pool with this
    (:func:`detector.store.db.connect`), so no lookup pays for a connection's first use."""
    await lookup.prepare(conn)
    await audit.prepare(conn)


def settle_memory() -> None:
    """Once the API is up: move every object made so far (modules, configuration, the
    detector it imports) out of the collector's reach. They live as long as the process, and
    a full collection walking them held the event loop for 40-50 ms every few seconds under
    load, the largest stalls in a lookup's tail; afterwards it walks only what requests made.
    """
    gc.collect()
    gc.freeze()


def watched_credentials(app: web.Application, config: ApiConfig) -> CredentialSource:
    """The credentials of ``config.tokens_file``, reloaded when the file changes (``ValueError``
    when it cannot be read at start: the API does not start without credentials)."""

    async def applied(reload: Reload) -> None:
        await credentials_reloaded(app, reload)

    return CredentialSource(config.tokens_file, config.credentials_poll_s, applied)


async def credentials_reloaded(app: web.Application, reload: Reload) -> None:
    """Revoke what the reload ended and audit it (action ``credentials.reload``)."""
    tokens, clients, certificates = reload.counts
    query: dict[str, Any] = {"trigger": reload.trigger, "file_sha256": reload.file_sha256,
                             "tokens": tokens, "clients": clients, "certificates": certificates}
    entry: dict[str, Any] = {"request_id": uuid.uuid4().hex, "action": "credentials.reload",
                             "status": 0}
    if not reload.ok:
        entry.update(query={**query, "error": reload.error[:300]}, outcome="refused",
                     reason="invalid_credentials")
        await append_quietly(app, entry)
        return
    revoked = sorted(reload.revoked)
    query.update(changed=reload.changed, removed=sorted(reload.removed),
                 rekeyed=sorted(reload.rekeyed))
    entry.update(outcome="applied" if reload.changed else "unchanged", reason="")
    if revoked:
        app[AUTH].forget_clients(set(revoked))
    try:
        async with app[POOL].acquire() as conn, conn.transaction():
            if revoked:
                query["revoked_tokens"] = _count(await conn.execute(
                    "DELETE FROM api_tokens WHERE client_id = ANY($1::text[])", revoked))
                query["revoked_sessions"] = _count(await conn.execute(
                    "DELETE FROM console_sessions WHERE client_id = ANY($1::text[])", revoked))
            entry["query"] = query
            await app[AUDIT].append(audit.AuditEntry(**entry), conn=conn)
    except (OSError, asyncpg.PostgresError):
        # the credentials in force already refuse the revoked clients; the store's rows of
        # them go at the next reload that reaches the store
        app[AUDIT].forget()
        log.exception("credentials reload: revoking in the store or auditing failed")


def _count(status: str) -> int:
    """The row count of a command status (``DELETE 3``)."""
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


def add_background(app: web.Application, pool: asyncpg.Pool, config: ApiConfig,
                   sighup: bool = False) -> None:
    """Start the credentials watch, the anchor export and the folding of the lookup counts
    with the application, stop them with it (the anchor gets the head a last time); with
    ``sighup``, SIGHUP reloads the credentials file meanwhile (:func:`reload_on_sighup`)."""
    jobs: list[Background] = []
    if config.audit_anchor_file:
        jobs.append(anchor.AnchorExporter(pool, config.audit_anchor_file,
                                          config.audit_anchor_interval_s))
    if config.lookup_fold_interval_s:
        jobs.append(CountFolder(pool, config.lookup_fold_interval_s))
    release: list = []

    async def start(app: web.Application) -> None:
        source = app[CREDENTIALS]
        if isinstance(source, CredentialSource):
            source.start()
            if sighup:
                release.extend(reload_on_sighup(source))
        for job in jobs:
            job.start()

    async def stop(app: web.Application) -> None:
        for undo in release:
            undo()
        source = app[CREDENTIALS]
        if isinstance(source, CredentialSource):
            await source.stop()
        for job in jobs:
            await job.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def reload_on_sighup(source: CredentialSource) -> list:
    """SIGHUP reloads ``source``'s file instead of ending the process; the undo (empty when
    signals cannot be handled here: not the main thread, no signals on this platform)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, source.request_reload)
    except (NotImplementedError, RuntimeError, ValueError):
        log.warning("SIGHUP cannot reload the credentials here; they reload on change")
        return []

    def undo() -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)

    return [undo]


def audit_verify_route():
    """``GET /v1/audit/verify`` (admin), audited as ``audit.verify`` with its result."""

    async def verify(request: web.Request, caller, query: dict, pool: asyncpg.Pool) -> dict:
        report = await audit.verify_audit(pool)
        query.update(ok=report.ok, rows=report.rows, head_seq=report.head_seq,
                     problems=len(report.problems))
        return {"ok": report.ok, "rows": report.rows, "head_seq": report.head_seq,
                "head_hash": report.head_hash, "summary": report.summary(),
                "truncated": report.truncated,
                "problems": [{"seq": p.seq, "kind": p.kind, "detail": p.detail}
                             for p in report.problems]}

    # the walk takes its own snapshot, so it is not run in the audit's transaction
    return audited_handler("audit.verify", frozenset({"admin"}), verify,
                           forbidden="may not verify the audit log", in_transaction=False)
