"""The audit log of the lookup API: append-only and hash-chained (``audit_log``, migration 005).

Row ``n`` stores ``prev_hash`` (the hash of row ``n-1``; 64 zeros for row 1) and ``hash``, the
SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of all its other columns, the
time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. ``audit_head`` holds the newest (seq, hash); an
insert locks and moves it (triggers), so the chain grows one row at a time across processes
(:class:`AuditWriter` commits the rows of concurrent requests in groups, each row still its
own link). :func:`verify_audit` walks
the chain: an edited row no longer matches its hash, a deleted or reordered row breaks the
sequence and the links, a deleted tail leaves the head pointing past the last row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from detector.metrics import AUDIT_RECHAINED
from detector.wording import counted

GENESIS = "0" * 64
COLUMNS = ("seq", "at", "request_id", "action", "client_id", "identity", "role", "auth",
           "remote", "case_ref", "legal_basis", "officer", "query", "status", "outcome",
           "reason", "fields", "answer_sha256", "prev_hash")
_JSON_COLUMNS = ("query", "fields")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _at(t: datetime) -> str:
    t = t.astimezone(UTC)
    if t.year < 1000:       # strftime's %Y does not pad such years
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "%d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond)


def row_hash(row: dict[str, Any]) -> str:
    doc = {k: row[k] for k in COLUMNS}
    doc["at"] = _at(doc["at"])
    return digest(canonical(doc))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one request asked and what it was answered (everything but the chain)."""
    request_id: str
    action: str = "lookup"
    client_id: str = ""
    identity: str = ""
    role: str = ""
    auth: str = "none"
    remote: str = ""
    case_ref: str = ""
    legal_basis: str = ""
    officer: str = ""
    query: dict = field(default_factory=dict)
    status: int = 0
    outcome: str = ""
    reason: str = ""
    fields: tuple[str, ...] = ()
    answer_sha256: str = ""


@dataclass(slots=True)
class Coming:
    """An append announced to :meth:`AuditWriter.coming`."""
    queued: bool = False


class AuditWriter:
    """Appends to the chain; the head is cached in the process and appends of one process are
    serialised by a lock. The insert trigger checks that each row continues the stored head
    and moves it, so when another process appended meanwhile the insert is refused, and the
    rows are chained again on the head read under its row lock. After such a refusal the
    writer locks the head before every group for ``contended_s``: two API processes busy
    appending would otherwise refuse each other's every group, each group paid twice, and
    under load the queue behind them grows until requests time out.

    Appends outside a caller's transaction are committed in groups: while one group is being
    written, the appends that arrive queue up, and the next group is chained in arrival order
    and written in one pipelined round trip that commits at its end (one implicit
    transaction: every row of the group or none, one WAL flush for all). Each :meth:`append`
    returns only once its own row is committed, so an answer is never sent before its audit
    row is durable; a group that fails fails every append in it.

    A request that will append shortly (a lookup reading the store) says so first
    (:meth:`coming`); a group about to be written waits for the rows of such requests, at
    most ``gather_s``, so that concurrent lookups share one statement and one commit rather
    than each paying for its own (PostgreSQL's ``commit_delay``, decided by what is known to
    be in flight instead of a guess). A lone request never waits: nothing else is coming."""

    def __init__(self, pool: asyncpg.Pool, max_group: int = 256, gather_s: float = 0.002,
                 contended_s: float = 5.0) -> None:
        self.pool = pool
        self.max_group = max_group
        self.gather_s = gather_s
        self.contended_s = contended_s
        self._contended_until = 0.0      # till then, every group locks the head first
        self._lock = asyncio.Lock()
        self._head: tuple[int, str] | None = None
        self._queue: list[tuple[AuditEntry, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None     # the task writing the queued groups
        self._coming = 0                              # announced appends not yet queued
        self._moved: asyncio.Future | None = None     # set when one of them is queued or gone

    @contextlib.contextmanager
    def coming(self) -> Iterator[Coming]:
        """Announce an append that follows within the block (pass the :class:`Coming` to
        :meth:`append`); leaving the block without appending withdraws it."""
        ticket = Coming()
        self._coming += 1
        try:
            yield ticket
        finally:
            if not ticket.queued:
                self._arrived(ticket)

    def _arrived(self, ticket: Coming) -> None:
        ticket.queued = True
        self._coming -= 1
        if self._moved is not None and not self._moved.done():
            self._moved.set_result(None)

    async def _gather(self) -> None:
        """Wait, at most ``gather_s``, until no announced append is still to be queued (or a
        group is full)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.gather_s
        while self._coming > 0 and len(self._queue) < self.max_group:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._moved = loop.create_future()
            timer = loop.call_later(left, self._moved.cancel)
            try:
                await asyncio.shield(self._moved)
            except asyncio.CancelledError:
                if not self._moved.cancelled():
                    raise               # this task itself was cancelled
                return
            finally:
                timer.cancel()

    async def append(self, entry: AuditEntry, conn: asyncpg.Connection | None = None,
                     ticket: Coming | None = None) -> tuple[int, str]:
        """Append ``entry``; returns its (seq, hash) once the row is committed. With ``conn``
        (inside the caller's transaction) the row commits or rolls back with what the caller
        changed; the head stays locked until then. Call :meth:`forget` when such a
        transaction rolls back. The cached head makes one statement of it; when another
        process appended meanwhile, the row is chained again on the head read under its row
        lock, which no other writer can move before this insert (a bounded number of
        optimistic retries could lose every time to busy writers). ``ticket``: the append
        announced by :meth:`coming`."""
        if ticket is not None and not ticket.queued:
            self._arrived(ticket)
        if conn is not None:
            async with self._lock:
                return (await self._chained([entry], conn))[0]
        done = asyncio.get_running_loop().create_future()
        self._queue.append((entry, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="audit-group-commit")
        # shielded: a request that goes away does not take its row out of a group in flight
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        """Write the queue in groups of at most ``max_group``, until it is empty."""
        while self._queue:
            try:
                await self._gather()
            except BaseException:       # the loop is shutting down: nothing more is written
                for _, done in self._queue:
                    done.cancel()
                self._queue = []
                raise
            group, self._queue = self._queue[:self.max_group], self._queue[self.max_group:]
            try:
                async with self._lock:
                    heads = await self._chained([e for e, _ in group], None)
            except Exception as e:      # every append of the group raises it: none is served
                for _, done in group:
                    if not done.done():
                        done.set_exception(e)
                continue
            except BaseException:       # the loop is shutting down: nothing more is written
                for _, done in group + self._queue:
                    done.cancel()
                self._queue = []
                raise
            for (_, done), head in zip(group, heads):
                if not done.done():
                    done.set_result(head)

    async def _chained(self, entries: list[AuditEntry],
                       conn: asyncpg.Connection | None) -> list[tuple[int, str]]:
        """Insert ``entries`` chained on the cached head, or on the locked head when another
        process moved it (called under the lock)."""
        now = time.monotonic()
        if self._head is not None and now >= self._contended_until:
            try:
                return await self._insert(entries, self._head, conn)
            except asyncpg.IntegrityConstraintViolationError:
                # another process appended: re-chain on its head, and take the head's lock
                # first for a while, as busy writers would refuse each other's every group
                AUDIT_RECHAINED.inc()
                self._contended_until = now + self.contended_s
            except BaseException:
                self._head = None        # unknown outcome (say, a lost connection)
                raise
        self._head = None                # set again only by an insert that succeeded
        if conn is None:
            async with self.pool.acquire() as c, c.transaction():
                return await self._insert(entries, await self._locked_head(c), c)
        async with conn.transaction():
            return await self._insert(entries, await self._locked_head(conn), conn)

    @staticmethod
    async def _locked_head(conn: asyncpg.Connection) -> tuple[int, str]:
        r = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE one FOR UPDATE")
        return r["seq"], r["hash"]

    async def _insert(self, entries: list[AuditEntry], head: tuple[int, str],
                      conn: asyncpg.Connection | None) -> list[tuple[int, str]]:
        """Insert ``entries`` chained one after the other on ``head`` and remember the new
        head: one statement for the whole group (the chain's trigger checks the group's rows
        together and moves the head once, migration 022). Without ``conn`` it commits on its
        own; with ``conn`` it runs in a savepoint of that transaction, so that a refused
        insert leaves it usable."""
        docs, hashes, heads = [], [], []
        for entry in entries:
            # the row's canonical JSON is both what its hash covers and what is inserted
            doc = _document(entry, *head)
            text = canonical(doc)
            head = (doc["seq"], digest(text))
            docs.append(text.decode())
            hashes.append(head[1])
            heads.append(head)
        if conn is not None:
            async with conn.transaction():
                await conn.execute(_INSERT_GROUP, docs, hashes)
        else:
            await self.pool.execute(_INSERT_GROUP, docs, hashes)
        self._head = head
        return heads

    def forget(self) -> None:
        """Re-read the head at the next append (a transaction holding an append rolled back)."""
        self._head = None


def _document(entry: AuditEntry, head_seq: int, head_hash: str) -> dict[str, Any]:
    """The row that continues the chain at (``head_seq``, ``head_hash``) with ``entry``, as
    its hash covers it (every column but ``hash``, the time as :func:`_at` writes it)."""
    return {
        "seq": head_seq + 1, "at": _at(datetime.now(UTC)), "request_id": entry.request_id,
        "action": entry.action, "client_id": entry.client_id, "identity": entry.identity,
        "role": entry.role, "auth": entry.auth, "remote": entry.remote,
        "case_ref": entry.case_ref, "legal_basis": entry.legal_basis,
        "officer": entry.officer, "query": dict(entry.query), "status": int(entry.status),
        "outcome": entry.outcome, "reason": entry.reason, "fields": list(entry.fields),
        "answer_sha256": entry.answer_sha256, "prev_hash": head_hash,
    }


_CAST = {"seq": "bigint", "at": "timestamptz", "status": "integer"}
# A group of rows in one statement, whatever its size (one prepared statement): each row
# sent as the canonical JSON its hash was computed on, beside that hash. Two arrays of text
# cost the client far less to encode than an array per column; the time is read back
# exactly (microseconds, UTC), so verify_audit recomputes the same hash from the columns.
_INSERT_GROUP = ("INSERT INTO audit_log ({cols}, hash) SELECT {outs}, h "
                 "FROM unnest($1::jsonb[], $2::text[]) AS t(d, h)").format(
    cols=", ".join(COLUMNS),
    outs=", ".join(f"d->'{c}'" if c in _JSON_COLUMNS
                   else f"(d->>'{c}')::{_CAST[c]}" if c in _CAST else f"d->>'{c}'"
                   for c in COLUMNS))


async def prepare(conn: asyncpg.Connection) -> None:
    """Plan a group's insert on ``conn`` (an empty group, in a transaction rolled back), so
    that the first group a connection writes does not wait for it."""
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(_INSERT_GROUP, [], [])
    finally:
        await tx.rollback()


# One row as a caller built it (``_row``, say with a chosen time, then ``_args`` and
# ``row_hash``): what a store's fixtures write.
def _row(entry: AuditEntry, head_seq: int, head_hash: str) -> dict[str, Any]:
    return {**_document(entry, head_seq, head_hash), "at": datetime.now(UTC)}


def _args(row: dict[str, Any]) -> list[Any]:
    return [json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in COLUMNS]


_INSERT = "INSERT INTO audit_log ({}, hash) VALUES ({}, ${})".format(
    ", ".join(COLUMNS),
    ", ".join(f"${i}::jsonb" if c in _JSON_COLUMNS else f"${i}" for i, c in enumerate(COLUMNS, 1)),
    len(COLUMNS) + 1)


async def append(pool: asyncpg.Pool, entry: AuditEntry) -> tuple[int, str]:
    """Append ``entry`` to the chain (a one-off writer; the API keeps an :class:`AuditWriter`)."""
    return await AuditWriter(pool).append(entry)


@dataclass(frozen=True, slots=True)
class AuditProblem:
    seq: int
    kind: str          # edited, missing, out_of_order, broken_link, head_mismatch, anchor_mismatch
    detail: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    problems: tuple[AuditProblem, ...] = ()
    truncated: bool = False     # more problems than were kept
    anchors: int = 0            # anchors checked

    def summary(self) -> str:
        if self.ok:
            against = f"; {counted(self.anchors, 'anchor')} held" if self.anchors else ""
            return (f"audit chain intact: {counted(self.rows, 'row')}, head {self.head_seq} "
                    f"{self.head_hash[:16]}{against}")
        kinds: dict[str, int] = {}
        for p in self.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        what = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return f"audit chain BROKEN: {what} (first at seq {self.problems[0].seq})"


async def verify_audit(pool: asyncpg.Pool, max_problems: int = 100,
                       expected_head: tuple[int, str] | None = None,
                       anchors: Sequence[tuple[int, str]] = ()) -> AuditReport:
    """Walk the whole chain and report any edit, deletion or reordering.

    ``expected_head`` and ``anchors`` are heads kept outside the store (the anchor file of
    :mod:`detector.api.anchor`, a head logged or handed over earlier): the chain must still
    hold each of those rows with that hash. A tail deleted and the head rewound behind the
    triggers' back passes every check inside the store, but not this one
    (``anchor_mismatch``)."""
    anchored: dict[int, set[str]] = {}
    for seq, h in anchors:
        if seq > 0:
            anchored.setdefault(seq, set()).add(h)
    problems: list[AuditProblem] = []
    truncated = False

    def problem(seq: int, kind: str, detail: str) -> None:
        nonlocal truncated
        if len(problems) < max_problems:
            problems.append(AuditProblem(seq, kind, detail))
        else:
            truncated = True

    rows = 0
    prev_seq, prev_hash = 0, GENESIS
    seen_anchor = expected_head is None or expected_head[0] == 0
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE one")
        cols = ", ".join(COLUMNS)
        async for r in conn.cursor(f"SELECT {cols}, hash FROM audit_log ORDER BY seq",
                                   prefetch=2000):
            rows += 1
            row = dict(r)
            for c in _JSON_COLUMNS:
                row[c] = json.loads(row[c])
            seq = row["seq"]
            if seq != prev_seq + 1:
                problem(seq, "missing" if seq > prev_seq + 1 else "out_of_order",
                        f"row {seq} follows row {prev_seq}")
            if row["prev_hash"] != prev_hash:
                problem(seq, "broken_link", "prev_hash is not the hash of the row before it")
            if row_hash(row) != row["hash"]:
                problem(seq, "edited", "the row does not match its hash")
            if expected_head is not None and seq == expected_head[0]:
                seen_anchor = row["hash"] == expected_head[1]
            wanted = anchored.pop(seq, None)
            if wanted is not None and wanted != {row["hash"]}:
                problem(seq, "anchor_mismatch",
                        f"row {seq} does not have the hash anchored outside the store")
            prev_seq, prev_hash = seq, row["hash"]
    head_seq, head_hash = (head["seq"], head["hash"]) if head else (0, GENESIS)
    if head is None:
        problem(0, "head_mismatch", "audit_head is gone")
    elif (head_seq, head_hash) != (prev_seq, prev_hash):
        problem(head_seq, "head_mismatch",
                f"the head is row {head_seq}, the chain ends at row {prev_seq}")
    if not seen_anchor:
        problem(expected_head[0], "head_mismatch", "the chain no longer holds the expected head")
    for seq in sorted(anchored):
        problem(seq, "anchor_mismatch", f"row {seq}, anchored outside the store, is gone "
                f"(the chain ends at row {prev_seq})")
    return AuditReport(not problems, rows, head_seq, head_hash, tuple(problems), truncated,
                       len(anchors))


async def record_verification(pool: asyncpg.Pool, report: AuditReport, auth: str,
                              anchored: bool, request_id: str = "") -> tuple[int, str]:
    """Append a verification run and its result (action ``audit.verify``)."""
    import uuid

    return await append(pool, AuditEntry(
        request_id=request_id or uuid.uuid4().hex, action="audit.verify", auth=auth,
        query={"ok": report.ok, "rows": report.rows, "head_seq": report.head_seq,
               "problems": len(report.problems), "anchors": report.anchors,
               "anchor_file": anchored},
        status=0, outcome="answered", reason="" if report.ok else "chain_broken"))
