"""The live credentials of an API process: the credentials file read at start, and again
whenever it changes or the process gets SIGHUP, without a restart and without dropping a
request in flight (requests resolve their identity against :attr:`CredentialSource.current`,
which a reload replaces in one assignment).

Watching is cheap: the file's ``stat`` (inode, size, modification time) every ``poll_s``; only
when that changes (or on SIGHUP) is it read and hashed, and only a new content is parsed. A
file that changes while it is read is read again at the next poll, so a half-written file is
not taken. A file that does not parse keeps the last good credentials in force; the failure is
reported once per content. What a reload means for the store (revoking the tokens and console
sessions of removed clients) and for the audit is the caller's ``on_reload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from detector.api.auth import Credentials, CredentialSourceLike
from detector.api.background import Background

log = logging.getLogger("goipwatch.api")


@dataclass(frozen=True, slots=True)
class Reload:
    """One reload: what triggered it, the file's SHA-256 ("" when unreadable), and either the
    error (the last good credentials stay) or what changed."""
    trigger: str                     # poll, sighup
    file_sha256: str
    error: str = ""
    changed: bool = False            # the content differs from the credentials in force
    removed: frozenset[str] = frozenset()   # client ids no longer listed ([[clients]])
    rekeyed: frozenset[str] = frozenset()   # clients whose secret changed
    counts: tuple[int, int, int] = (0, 0, 0)   # tokens, clients, certificates now

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def revoked(self) -> frozenset[str]:
        """Clients whose issued tokens and console sessions end with this reload."""
        return self.removed | self.rekeyed


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


def diff(old: Credentials, new: Credentials) -> tuple[frozenset[str], frozenset[str]]:
    """(clients removed, clients whose secret changed) from ``old`` to ``new``."""
    removed = frozenset(c for c in old.clients if c not in new.clients)
    rekeyed = frozenset(c for c, (secret, _) in old.clients.items()
                        if c in new.clients and new.clients[c][0] != secret)
    return removed, rekeyed


class CredentialSource(CredentialSourceLike, Background):
    """The credentials in force (:attr:`current`), reloaded from ``path`` when it changes."""

    task_name = "credentials-watch"

    def __init__(self, path: str | Path, poll_s: float = 1.0,
                 on_reload: Callable[[Reload], Awaitable[None]] | None = None,
                 settle_s: float = 0.05) -> None:
        self.path = Path(path)
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.on_reload = on_reload
        self._signature = _signature(self.path)
        raw = self._read()
        self.current = Credentials.load(self.path) if raw is None else _parse(self.path, raw)
        self._sha256 = hashlib.sha256(raw or b"").hexdigest()
        self._failed_sha256 = ""          # a bad content is reported once
        self._wake = asyncio.Event()
        self._forced = False
        self._lock = asyncio.Lock()

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    # ---- running --------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Read the file now, changed or not (SIGHUP); safe to call from a signal handler."""
        self._forced = True
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            forced, self._forced = self._forced, False
            try:
                await self.check("sighup" if forced else "poll", force=forced)
            except asyncio.CancelledError:
                raise
            except Exception:      # the watch must outlive any one failure (say, of the store)
                log.exception("credentials reload failed")

    # ---- one check ------------------------------------------------------------------------

    async def check(self, trigger: str = "poll", force: bool = False) -> Reload | None:
        """Reload if the file changed (or ``force``); the :class:`Reload` reported, or None
        when there was nothing to do."""
        async with self._lock:
            sig = _signature(self.path)
            if not force and sig == self._signature:
                return None
            if sig is not None and self.settle_s:
                await asyncio.sleep(self.settle_s)     # let a writer finish
                if _signature(self.path) != sig:
                    return None                        # still changing: the next poll
            raw = self._read()
            if _signature(self.path) != sig:
                return None                            # changed while read: the next poll
            self._signature = sig
            outcome = self._apply(trigger, raw, force)
        if outcome is not None and self.on_reload is not None:
            await self.on_reload(outcome)
        return outcome

    def _apply(self, trigger: str, raw: bytes | None, force: bool) -> Reload | None:
        if raw is None:
            error = f"{self.path}: cannot be read"
            sha = ""
        else:
            sha = hashlib.sha256(raw).hexdigest()
            if sha == self._sha256:
                self._failed_sha256 = ""
                return Reload(trigger, sha, counts=_counts(self.current)) if force else None
            try:
                new = _parse(self.path, raw)
            except ValueError as e:
                error = str(e)
            else:
                removed, rekeyed = diff(self.current, new)
                self.current, self._sha256, self._failed_sha256 = new, sha, ""
                log.info("credentials reloaded", extra={
                    "trigger": trigger, "revoked": sorted(removed | rekeyed)})
                return Reload(trigger, sha, changed=True, removed=removed, rekeyed=rekeyed,
                              counts=_counts(new))
        if sha == self._failed_sha256 and not force:
            return None                                # reported already
        self._failed_sha256 = sha
        log.error("credentials reload refused; the last good credentials stay in force",
                  extra={"trigger": trigger, "error": error})
        return Reload(trigger, sha, error=error, counts=_counts(self.current))


def _parse(path: Path, raw: bytes) -> Credentials:
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 ({e.reason})") from None
    return Credentials.parse(text, path)


def _counts(c: Credentials) -> tuple[int, int, int]:
    return len(c.tokens), len(c.clients), len(c.cert_fingerprints) + len(c.cert_cns)
