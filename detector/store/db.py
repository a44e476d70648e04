"""PostgreSQL access: connecting (configured DSN or the embedded server) and migrations.

Migrations are the numbered ``migrations/NNN_name.sql`` files, applied in order at start,
each in its own transaction, under an advisory lock so that several processes starting
together (daemon, workers, API) apply each one exactly once.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

import asyncpg

MIGRATION_LOCK = 0x60_1F_3A_7C  # advisory lock key, arbitrary but fixed
_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


class StoreError(RuntimeError):
    pass


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped, in order."""
    out = []
    for entry in resources.files("detector.store").joinpath("migrations").iterdir():
        m = _NAME.fullmatch(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text()))
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number: {sorted(versions)}")
    return sorted(out)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database lacks; returns the names applied."""
    applied = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                                   version, name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A pool's reset that sends nothing: asyncpg has already rolled back a transaction
    left open and dropped the connection's listeners before it calls this."""


async def connect(dsn: str, pool_size: int = 4, *, reset_session: bool = True,
                  prepare: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
                  ) -> asyncpg.Pool:
    """A pool on ``dsn`` with the schema migrated.

    By default a connection going back to the pool has its session reset (advisory locks
    released, held cursors closed, LISTENs and settings undone): one more statement and round
    trip per use. ``reset_session=False`` skips it, for a process whose statements leave no
    such state behind (the API: plain statements and transactions, nothing else), where it
    was a third of the store's work for a lookup.

    With ``prepare``, the pool opens all ``pool_size`` connections at once, keeps them however
    long they stay idle, and runs ``prepare`` on each one it opens (then and after a lost
    connection), once the schema is in place: a process that answers requests has its
    statements planned before the first request rather than by it (the API's lookup statement
    took 35-55 ms the first time on each connection, against about 2 ms after)."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as e:
        raise StoreError(f"cannot connect to the store ({redact(dsn)}): {e}") from e
    try:
        await migrate(conn)
    finally:
        await conn.close()
    size = max(pool_size, 2)
    try:
        return await asyncpg.create_pool(
            dsn, min_size=1 if prepare is None else size, max_size=size, command_timeout=120,
            reset=None if reset_session else _keep_session, init=prepare,
            max_inactive_connection_lifetime=300.0 if prepare is None else 0.0)
    except (OSError, asyncpg.PostgresError) as e:
        raise StoreError(f"cannot connect to the store ({redact(dsn)}): {e}") from e


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", re.sub(r"password=\S+", "password=***", dsn))


def resolve_dsn(dsn: str, dsn_file: str, state_dir: Path):
    """(DSN, embedded server or None): the configured DSN, the one in ``dsn_file``, or a
    private server started in ``state_dir/pg``."""
    from detector.store.embedded import EmbeddedPostgres

    if dsn:
        return dsn, None
    if dsn_file:
        try:
            return Path(dsn_file).read_text().strip(), None
        except OSError as e:
            raise StoreError(f"store.dsn_file {dsn_file}: {e.strerror}") from e
    embedded = EmbeddedPostgres(Path(state_dir) / "pg")
    return embedded.start(), embedded


@contextlib.asynccontextmanager
async def opened(store, state_dir: Path, *, reset_session: bool = True,
                 prepare: Callable[[asyncpg.Connection], Awaitable[None]] | None = None):
    """(pool, DSN) on the configured store (``[store]`` settings), for commands that run
    beside the daemon or instead of it; the DSN for a process of their own that connects to
    the same store (the report worker). ``reset_session`` and ``prepare`` as for
    :func:`connect`. An embedded server is stopped afterwards."""
    dsn, embedded = resolve_dsn(store.dsn, store.dsn_file, state_dir)
    try:
        pool = await connect(dsn, store.pool_size, reset_session=reset_session, prepare=prepare)
        try:
            yield pool, dsn
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            embedded.stop()


@contextlib.asynccontextmanager
async def session(store, state_dir: Path):
    """A pool on the configured store, as :func:`opened`."""
    async with opened(store, state_dir) as (pool, _):
        yield pool
