"""The audit chain's head kept outside the store: an append-only anchor file.

The API process appends the head of the chain (``audit_head``) to ``[api] audit_anchor_file``
at start, every ``audit_anchor_interval_s`` when it moved, and at shutdown; one line each::

    <seq> <hash> <UTC time>\\n

written with ``O_APPEND`` and ``fsync`` (the directory too when the file is created), so a line
that was reported written survives a crash. Put the file on another volume than the database,
ideally append-only (``chattr +a``) or shipped to a WORM store: someone who can rewrite the
database (delete the tail of the chain and rewind its head, or rewrite the chain from a point
on) cannot reach it. ``goipwatch audit verify --anchor FILE`` then finds every anchored row
that the chain no longer holds, or holds with another hash
(:func:`detector.api.audit.verify_audit` with ``anchors``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from detector.api.background import Background

log = logging.getLogger("goipwatch.api")


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    at: str


def format_line(seq: int, hash_: str, at: datetime) -> str:
    return f"{seq} {hash_} {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` durably (``O_APPEND``, ``fsync``; the directory when created)."""
    path = Path(path)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def parse(text: str, name: str = "anchor") -> list[Anchor]:
    """The anchors of a file's text; a last line without its newline (a write cut short by a
    crash) is ignored, any other malformed line is a ``ValueError`` naming it."""
    lines = text.split("\n")
    out = []
    for n, line in enumerate(lines[:-1], 1):       # lines[-1]: after the last newline
        if not line.strip():
            continue
        parts = line.split()
        if (len(parts) != 3 or not parts[0].isdigit() or len(parts[1]) != 64
                or any(c not in "0123456789abcdef" for c in parts[1])):
            raise ValueError(f"{name}:{n}: expected '<seq> <64 hex digits> <time>'")
        out.append(Anchor(int(parts[0]), parts[1], parts[2]))
    return out


def read(path: str | Path) -> list[Anchor]:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    return parse(text, str(path))


async def head(pool: asyncpg.Pool) -> tuple[int, str]:
    r = await pool.fetchrow("SELECT seq, hash FROM audit_head WHERE one")
    return (r["seq"], r["hash"]) if r else (0, "0" * 64)


class AnchorExporter(Background):
    """Appends the chain's head to ``path`` every ``interval_s`` when it moved."""

    task_name = "audit-anchor"

    def __init__(self, pool: asyncpg.Pool, path: str | Path, interval_s: float) -> None:
        self.pool, self.path, self.interval_s = pool, Path(path), interval_s
        self._last: tuple[int, str] | None = None

    async def export(self) -> tuple[int, str] | None:
        """Append the head if it moved since the last line this process wrote; the head."""
        now = await head(self.pool)
        if now == self._last:
            return None
        await asyncio.to_thread(append_line, self.path, format_line(*now, datetime.now(UTC)))
        self._last = now
        return now

    async def _run(self) -> None:
        while True:
            try:
                await self.export()
            except asyncio.CancelledError:
                raise
            except Exception:     # a full disk or a lost store: said, and tried again
                log.exception("audit anchor export failed", extra={"path": str(self.path)})
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """Stop, exporting the head a last time."""
        await super().stop()
        try:
            await self.export()
        except Exception:
            log.exception("audit anchor export failed", extra={"path": str(self.path)})
