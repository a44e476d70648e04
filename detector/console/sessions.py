"""Server-side sessions of the console (``console_sessions``, migration 007).

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; the store holds only
its SHA-256, the client id and the session's CSRF token. The identity is looked up again in
the credentials at every request, so a client removed from the credentials file (or whose
role changed) loses the console at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from detector.api.auth import Credentials, Identity, sha256_hex

COOKIE = "goipwatch_console"
LOGIN_COOKIE = "goipwatch_console_login"     # double-submit token of the login form
MAX_TOKEN = 128


@dataclass(frozen=True, slots=True)
class Session:
    who: Identity
    csrf: str
    expires_at: datetime


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def open_session(pool: asyncpg.Pool, who: Identity, ttl_s: int) -> tuple[str, Session]:
    """A new session for ``who``: (cookie token, session). Expired sessions are swept."""
    token, csrf = new_token(), new_token()
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM console_sessions WHERE expires_at <= now()")
        await conn.execute(
            "INSERT INTO console_sessions (token_sha256, client_id, csrf, expires_at) "
            "VALUES ($1, $2, $3, $4)", sha256_hex(token), who.client_id, csrf, expires)
    return token, Session(who, csrf, expires)


async def find_session(pool: asyncpg.Pool, credentials: Credentials,
                       token: str | None) -> Session | None:
    """The live session of a cookie token, or None (unknown, expired, client removed)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    row = await pool.fetchrow(
        "SELECT client_id, csrf, expires_at FROM console_sessions "
        "WHERE token_sha256 = $1 AND expires_at > now()", sha256_hex(token))
    if row is None:
        return None
    entry = credentials.clients.get(row["client_id"])
    if entry is None:
        return None
    who = entry[1]
    return Session(Identity(who.client_id, who.identity, who.role, "session"), row["csrf"],
                   row["expires_at"])


async def close_session(pool: asyncpg.Pool, token: str | None) -> None:
    if token and len(token) <= MAX_TOKEN:
        await pool.execute("DELETE FROM console_sessions WHERE token_sha256 = $1",
                           sha256_hex(token))


def same_token(given: object, expected: str) -> bool:
    return isinstance(given, str) and bool(expected) and secrets.compare_digest(
        given.encode(), expected.encode())
