"""The audit chain: appends refused edits, and verify_audit finds edits, deletions and
reorderings made behind the triggers' back (as a superuser could)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from hypothesis import given, settings, strategies as st_

from detector.api import audit as audit_module, verify_audit
from detector.api.audit import AuditEntry, AuditWriter, append
from tests.detector.api.conftest import BODY, auth


async def _fill(pool, n: int = 5) -> None:
    for i in range(n):
        await append(pool, AuditEntry(request_id=f"r{i}", client_id="police-client", identity="desk",
                                      role="police", auth="bearer", remote="127.0.0.1",
                                      case_ref=f"C-{i}", legal_basis="law", officer="o",
                                      query={"number_type": "msisdn", "number": "8613800138000"},
                                      status=200, outcome="answered",
                                      fields=("subscribers", "subscribers[].imsi"),
                                      answer_sha256="ab" * 32))


async def _behind_triggers(pool, *sql: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")  # triggers off
        for s in sql:
            await conn.execute(s)


async def test_intact_chain_verifies(pool):
    empty = await verify_audit(pool)
    assert empty.ok and empty.rows == 0 and empty.head_seq == 0
    await _fill(pool)
    report = await verify_audit(pool)
    assert report.ok and report.rows == 5 and report.head_seq == 5
    assert report.head_hash == await pool.fetchval("SELECT hash FROM audit_log WHERE seq = 5")
    assert "intact" in report.summary()
    assert (await verify_audit(pool, expected_head=(3, await pool.fetchval(
        "SELECT hash FROM audit_log WHERE seq = 3")))).ok


async def test_triggers_refuse_update_delete_truncate_and_forged_rows(pool):
    await _fill(pool, 2)
    for sql in ("UPDATE audit_log SET case_ref = 'x' WHERE seq = 1",
                "DELETE FROM audit_log WHERE seq = 2",
                "TRUNCATE audit_log",
                "UPDATE audit_head SET seq = 1",
                "DELETE FROM audit_head"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(sql)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute(
            "INSERT INTO audit_log SELECT 7, at, request_id, action, client_id, identity, role, auth, "
            "remote, case_ref, legal_basis, officer, query, status, outcome, reason, fields, "
            "answer_sha256, prev_hash, 'forged' FROM audit_log WHERE seq = 2")
    assert (await verify_audit(pool)).ok


def _forged(seq: int, prev_hash: str, h: str) -> str:
    """A row copied from row 1 with its seq, prev_hash and hash replaced (SQL)."""
    return ("SELECT {}, at, request_id, action, client_id, identity, role, auth, remote, case_ref, "
            "legal_basis, officer, query, status, outcome, reason, fields, answer_sha256, '{}', '{}' "
            "FROM audit_log WHERE seq = 1").format(seq, prev_hash, h)


async def test_an_insert_of_several_rows_is_checked_as_a_chain(pool):
    await _fill(pool, 2)
    head = await pool.fetchval("SELECT hash FROM audit_head")
    # three rows in one statement that continue the chain: accepted, the head on the last
    await pool.execute("INSERT INTO audit_log " + " UNION ALL ".join(
        [_forged(3, head, "h3"), _forged(4, "h3", "h4"), _forged(5, "h4", "h5")]))
    assert tuple(await pool.fetchrow("SELECT seq, hash FROM audit_head")) == (5, "h5")
    refused = [
        [_forged(6, "h5", "h6"), _forged(7, "not h6", "h7")],    # a broken link inside
        [_forged(6, "h5", "h6"), _forged(8, "h6", "h8")],        # a gap inside
        [_forged(7, "h5", "h7"), _forged(8, "h7", "h8")],        # a gap after the head
        [_forged(6, "not h5", "h6")],                            # not linked to the head
    ]
    for rows in refused:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await pool.execute("INSERT INTO audit_log " + " UNION ALL ".join(rows))
    assert tuple(await pool.fetchrow("SELECT seq, hash FROM audit_head")) == (5, "h5")
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 5
    for sql in ("UPDATE audit_head SET seq = 3, hash = 'h3'",         # backwards
                "UPDATE audit_head SET seq = 6, hash = 'h6'"):        # onto no row
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(sql)


async def test_appends_stay_on_the_key_after_the_log_was_analyzed_empty(pool):
    """Statistics of an empty log must not make the chain's checks scan the log: each
    append would then cost more as the log grows."""
    await pool.execute("ANALYZE audit_log")
    async with pool.acquire() as conn:
        await conn.execute("LOAD 'auto_explain'")
        await conn.execute("SET auto_explain.log_min_duration = 0")
        await conn.execute("SET auto_explain.log_nested_statements = on")
        await conn.execute("SET client_min_messages = log")
        plans: list[str] = []

        def listen(_conn, message) -> None:
            plans.append(message.message)

        conn.add_log_listener(listen)
        writer = AuditWriter(OnePool(conn))
        for i in range(8):              # past the five custom plans of a cached statement
            await writer.append(AuditEntry(request_id=f"r{i}", status=200))
        await conn.execute("RESET client_min_messages")
        conn.remove_log_listener(listen)
    nested = [p for p in plans if "audit_log" in p and "Insert on" not in p]
    assert nested and not [p for p in nested if "Seq Scan on audit_log" in p]
    assert (await verify_audit(pool)).ok


class OnePool:
    """One connection where the writer expects a pool."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def acquire(self):
        conn = self.conn

        class _Held:
            async def __aenter__(self):
                return conn

            async def __aexit__(self, *exc):
                return None

        return _Held()

    async def execute(self, *args):
        return await self.conn.execute(*args)


async def test_rows_are_stored_as_appended_whatever_their_text(pool):
    """A group goes to the store as the JSON its hashes were computed on: every column comes
    back as it was given, and the chain verifies."""
    texts = ["plain", "quote \" and backslash \\", "line\nbreak\ttab", "\u00e9\u4e2d\U0001f600",
             "\u2028 separator", "x" * 200, ""]
    writer = AuditWriter(pool)
    entries = [AuditEntry(request_id=f"r{i}", client_id=t, identity=t[::-1], role="police",
                          auth="bearer", remote="::1", case_ref=t, legal_basis=t, officer=t,
                          query={"number": t, "nested": {"k": [1, 2.5, None, True]}},
                          status=200 + i, outcome="answered", reason=t,
                          fields=(t, "subscribers[].imsi"), answer_sha256="ab" * 32)
               for i, t in enumerate(texts)]
    await asyncio.gather(*[writer.append(e) for e in entries])
    for e in entries:
        row = await pool.fetchrow("SELECT * FROM audit_log WHERE request_id = $1", e.request_id)
        assert (row["client_id"], row["identity"], row["case_ref"], row["legal_basis"],
                row["officer"], row["reason"], row["status"]) == (
            e.client_id, e.identity, e.case_ref, e.legal_basis, e.officer, e.reason, e.status)
        assert json.loads(row["query"]) == e.query and json.loads(row["fields"]) == list(e.fields)
    report = await verify_audit(pool)
    assert report.ok and report.rows == len(texts)


async def test_edit_is_detected(pool):
    await _fill(pool)
    await _behind_triggers(pool, "UPDATE audit_log SET case_ref = 'C-other' WHERE seq = 3")
    report = await verify_audit(pool)
    assert not report.ok
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "edited")]
    assert "BROKEN" in report.summary()


async def test_edit_with_rehash_breaks_the_next_link(pool):
    await _fill(pool)
    from detector.api.audit import COLUMNS, row_hash
    import json
    row = dict(await pool.fetchrow("SELECT * FROM audit_log WHERE seq = 2"))
    row["officer"] = "someone else"
    for c in ("query", "fields"):
        row[c] = json.loads(row[c])
    h = row_hash({k: row[k] for k in COLUMNS})
    await _behind_triggers(pool, f"UPDATE audit_log SET officer = 'someone else', hash = '{h}' WHERE seq = 2")
    assert [(p.seq, p.kind) for p in (await verify_audit(pool)).problems] == [(3, "broken_link")]


async def test_deletion_in_the_middle_is_detected(pool):
    await _fill(pool)
    await _behind_triggers(pool, "DELETE FROM audit_log WHERE seq = 2")
    kinds = {(p.seq, p.kind) for p in (await verify_audit(pool)).problems}
    assert kinds == {(3, "missing"), (3, "broken_link")}


async def test_deletion_of_the_tail_is_detected(pool):
    await _fill(pool)
    await _behind_triggers(pool, "DELETE FROM audit_log WHERE seq >= 4")
    report = await verify_audit(pool)
    assert [(p.seq, p.kind) for p in report.problems] == [(5, "head_mismatch")]


async def test_deletion_of_the_tail_and_head_rewind_is_caught_by_an_anchor(pool):
    await _fill(pool)
    anchor = (5, await pool.fetchval("SELECT hash FROM audit_log WHERE seq = 5"))
    await _behind_triggers(pool, "DELETE FROM audit_log WHERE seq >= 4",
                           "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3)")
    assert (await verify_audit(pool)).ok            # without an outside anchor: undetectable
    report = await verify_audit(pool, expected_head=anchor)
    assert [(p.seq, p.kind) for p in report.problems] == [(5, "head_mismatch")]


async def test_reordering_is_detected(pool):
    await _fill(pool)
    await _behind_triggers(pool,
                           "UPDATE audit_log SET seq = -2 WHERE seq = 2",
                           "UPDATE audit_log SET seq = 2 WHERE seq = 4",
                           "UPDATE audit_log SET seq = 4 WHERE seq = -2")
    problems = {(p.seq, p.kind) for p in (await verify_audit(pool)).problems}
    assert {(2, "edited"), (4, "edited")} <= problems
    assert (2, "broken_link") in problems and (3, "broken_link") in problems


async def test_every_lookup_is_audited_in_one_chain(client, pool):
    await client.post("/v1/lookups", json=BODY, headers=auth("police"))
    await client.post("/v1/lookups", json=BODY, headers=auth("regulator"))
    await client.post("/v1/lookups", json={**BODY, "legal_basis": None}, headers=auth("analyst"))
    await client.post("/v1/lookups", json=BODY)
    rows = await pool.fetch("SELECT seq, status, reason, prev_hash, hash FROM audit_log ORDER BY seq")
    assert [(r["status"], r["reason"]) for r in rows] == [
        (200, ""), (403, "role_forbidden"), (400, "missing_legal_basis"), (401, "missing_credentials")]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:]))
    # admins verify through the API; others may not
    resp = await client.get("/v1/audit/verify", headers=auth("admin"))
    doc = await resp.json()
    assert resp.status == 200 and doc["ok"] and doc["rows"] == 4
    assert (await client.get("/v1/audit/verify", headers=auth("police"))).status == 403
    await _behind_triggers(pool, "UPDATE audit_log SET status = 200 WHERE seq = 2")
    doc = await (await client.get("/v1/audit/verify", headers=auth("admin"))).json()
    assert not doc["ok"] and doc["problems"][0] == {"seq": 2, "kind": "edited",
                                                      "detail": "the row does not match its hash"}


async def test_writers_of_several_processes_share_one_chain(pool):
    from detector.api.audit import AuditWriter
    import asyncio
    writers = [AuditWriter(pool) for _ in range(3)]     # as three API processes would

    async def write(w, i):
        await w.append(AuditEntry(request_id=f"r{i}", status=200, outcome="answered"))

    await asyncio.gather(*[write(writers[i % 3], i) for i in range(30)])
    report = await verify_audit(pool)
    assert report.ok and report.rows == 30 and report.head_seq == 30


async def test_busy_writers_of_two_processes_lock_the_head_instead_of_refusing_each_other(pool):
    from detector.api.audit import AuditWriter
    from detector.metrics import AUDIT_RECHAINED
    import asyncio
    writers = [AuditWriter(pool), AuditWriter(pool)]    # as two API processes would
    before = AUDIT_RECHAINED.count()

    async def burst(w, r):
        await asyncio.gather(*[w.append(AuditEntry(request_id=f"r{r}-{i}", status=200))
                               for i in range(10)])

    for r in range(20):     # each round, both append a group on the head the other moved
        await asyncio.gather(burst(writers[0], 2 * r), burst(writers[1], 2 * r + 1))
    report = await verify_audit(pool)
    assert report.ok and report.rows == 400
    # each was refused once at most, then took the head's lock first for contended_s
    assert AUDIT_RECHAINED.count() - before <= 2


async def test_concurrent_appends_are_chained_in_arrival_order_and_durable_on_return(pool):
    writer = AuditWriter(pool)

    async def write(i):
        seq, h = await writer.append(AuditEntry(request_id=f"r{i}", status=200, outcome="answered"))
        # committed before append returns: another connection already sees the row
        assert await pool.fetchval("SELECT request_id FROM audit_log WHERE seq = $1 AND hash = $2",
                                   seq, h) == f"r{i}"
        return seq

    seqs = await asyncio.gather(*[write(i) for i in range(60)])
    assert seqs == list(range(1, 61))
    report = await verify_audit(pool)
    assert report.ok and report.rows == 60


async def test_a_group_that_fails_writes_none_of_its_rows_and_fails_each_append(pool):
    writer = AuditWriter(pool)
    await writer.append(AuditEntry(request_id="first"))
    good = [writer.append(AuditEntry(request_id=f"ok{i}")) for i in range(3)]
    bad = writer.append(AuditEntry(request_id="bad", case_ref="\x00"))   # the store refuses NUL
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    # the four arrived together, so they were one group: all fail, none is written
    assert all(isinstance(r, Exception) for r in results)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1
    seq, _ = await writer.append(AuditEntry(request_id="after"))
    assert seq == 2
    assert (await verify_audit(pool)).ok


@settings(max_examples=300, deadline=None)
@given(t=st_.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=st_.sampled_from([UTC, timezone(timedelta(hours=8))])))
def test_the_hashed_time_is_strftimes(t):
    """Rows hashed before the time was formatted directly must still verify."""
    assert audit_module._at(t) == t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CountingPool:
    """The pool, counting the statements the writer sends outside a transaction (one a group)."""

    def __init__(self, pool) -> None:
        self.pool, self.statements = pool, 0

    def acquire(self):
        return self.pool.acquire()

    async def execute(self, *args):
        self.statements += 1
        return await self.pool.execute(*args)


async def test_announced_appends_share_a_group_and_nothing_waits_for_what_is_not_coming(pool):
    """Lookups that announce their append before reading the store are written in one group;
    a lone lookup, or one whose announced companion leaves without appending (a refusal), is
    written at once; a slow companion holds a group no longer than ``gather_s``."""
    counting = CountingPool(pool)
    writer = AuditWriter(counting, gather_s=5.0)
    await writer.append(AuditEntry(request_id="first"))     # reads the head: its own statement
    counting.statements = 0
    loop = asyncio.get_running_loop()

    async def lookup(i: int, reading_s: float) -> float:
        with writer.coming() as ticket:
            await asyncio.sleep(reading_s)                  # reading the store
            await writer.append(AuditEntry(request_id=f"r{i}"), ticket=ticket)
        return loop.time()

    async def refused() -> None:
        with writer.coming():
            await asyncio.sleep(0.05)

    started = loop.time()
    await asyncio.gather(lookup(0, 0), lookup(1, 0.05), lookup(2, 0.1))
    assert counting.statements == 1 and loop.time() - started < 2.5

    started = loop.time()
    await lookup(3, 0)
    assert counting.statements == 2 and loop.time() - started < 2.5

    started = loop.time()
    await asyncio.gather(lookup(4, 0), refused())
    assert counting.statements == 3 and loop.time() - started < 2.5

    writer.gather_s = 0.05
    fast, slow = await asyncio.gather(lookup(5, 0), lookup(6, 3.0))
    assert counting.statements == 5 and slow - fast > 2.0     # the fast one did not wait for it

    report = await verify_audit(pool)
    assert report.ok and report.rows == 8


async def test_prepare_leaves_the_chain_as_it_was_and_appends_go_on(pool):
    await _fill(pool, 2)
    async with pool.acquire() as conn:
        await audit_module.prepare(conn)
        await audit_module.prepare(conn)
        assert not conn.is_in_transaction()
    report = await verify_audit(pool)
    assert report.ok and report.rows == 2 and report.head_seq == 2
    await _fill(pool, 1)
    assert (await verify_audit(pool)).head_seq == 3
