"""A small store built by hand for the report tests: eight SIMs, two months, every number of
the October 2026 report computable on paper (the expected values are in test_gather.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from detector.api import audit
from detector.store import activity

CM, XM = "China Mobile", "Xiaomi Mobile"
S = {i: 460_00_1000000000 + i for i in range(1, 10)}      # IMSIs s1..s9
REGIONS = {"460-00-100-": "North", "460-00-200-": "South", "460-01-": "East"}


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def build(conn: asyncpg.Connection) -> None:
    # registrations: (sim, carrier, channel); s8 has none
    for i, carrier, channel in ((1, CM, "CH1"), (2, CM, "CH1"), (3, CM, "CH2"), (4, CM, "CH2"),
                                (5, XM, "CH2"), (6, XM, "CH3"), (7, XM, "CH3")):
        await conn.execute(
            "INSERT INTO registrations (imsi, msisdn, iccid, activated_at, id_hash, channel, "
            "carrier, source) VALUES ($1, $2, $3, $4, $5, $6, $7, 'subs.csv')",
            S[i], 8613800000000 + i, f"898600000000000000{i}", t("2026-09-01T00:00:00"),
            f"idhash-{i:016d}", channel, carrier)
    # activity: (sim, month, first, last, events, last cell)
    for i, month, first, cell in (
            (1, "2026-10-01", "2026-10-02T00:00:00", "460-00-100-1"),
            (2, "2026-10-01", "2026-10-03T00:00:00", "460-00-100-2"),
            (3, "2026-10-01", "2026-10-01T00:00:00", "460-00-200-1"),
            (3, "2026-09-01", "2026-09-30T12:00:00", "460-00-200-9"),
            (4, "2026-10-01", "2026-10-01T05:00:00", "460-00-200-2"),
            (4, "2026-09-01", "2026-09-10T00:00:00", "460-00-200-2"),
            (5, "2026-10-01", "2026-10-03T00:00:00", "460-01-300-1"),
            (6, "2026-10-01", "2026-10-03T00:00:00", ""),
            (8, "2026-10-01", "2026-10-06T00:00:00", "460-00-100-3")):
        await conn.execute(
            "INSERT INTO sim_activity (imsi, month, first_at, last_at, events, last_cell) "
            "VALUES ($1, $2, $3::timestamptz, $3::timestamptz + interval '1 hour', 10, $4)",
            S[i], date.fromisoformat(month), t(first), cell)
    await activity.new_versions(conn, [date(2026, 9, 1), date(2026, 10, 1)])   # as a checkpoint
    # flags: (sim, kind, flagged_at, rig)
    ids = {}
    for i, kind, at, rig in (
            (1, "sim_anomaly", "2026-10-02T01:00:00", "rig-r1"),
            (2, "rig", "2026-10-03T00:30:00", "rig-r1"),
            (3, "sim_anomaly", "2026-10-01T02:00:00", ""),
            (4, "sim_anomaly", "2026-09-15T00:00:00", "rig-r1"),
            (4, "rig", "2026-10-05T00:00:00", "rig-r1"),
            (5, "bulk_registration", "2026-10-04T00:00:00", ""),
            (7, "bulk_registration", "2026-10-04T00:00:00", ""),
            (8, "sim_anomaly", "2026-10-06T00:10:00", ""),
            (9, "sim_anomaly", "2026-11-02T00:00:00", "")):
        ids[(i, kind)] = await conn.fetchval(
            "INSERT INTO flags (imsi, msisdn, kind, score, flagged_at, rig_id, reasons) "
            "VALUES ($1, $2, $3, 0.9, $4, $5, '[]') RETURNING id",
            S[i], 8613800000000 + i, kind, t(at), rig)
    await conn.execute(
        "INSERT INTO rigs (id, sims, members, devices, cells, first_at, last_at, evidence) VALUES "
        "('rig-r1', 3, $1, '[]', '[]', $2, $2, 'test'), ('rig-r0', 2, $3, '[]', '[]', $4, $4, 'old')",
        json.dumps([str(S[1]), str(S[2]), str(S[4])]), t("2026-10-02T01:00:00"),
        json.dumps([str(S[4]), str(S[9])]), t("2026-09-15T00:00:00"))
    # verdicts: s1 confirmed by an analyst; s3 first confirmed, then dismissed; s5 by the platform
    for i, verdict, actor, at in ((1, "confirm", "ana", "2026-10-10T00:00:00"),
                                  (3, "confirm", "ana", "2026-10-10T00:00:00"),
                                  (3, "dismiss", "platform", "2026-10-11T00:00:00"),
                                  (5, "confirm", "platform", "2026-10-12T00:00:00")):
        await conn.execute("INSERT INTO feedback (imsi, verdict, actor, recorded_at) "
                           "VALUES ($1, $2, $3, $4)", S[i], verdict, actor, t(at))
    # verification requests: (sim, action, delay to delivery in s or None, outcomes)
    base = t("2026-10-20T10:00:00")
    for n, (i, kind, action, delay, outcomes) in enumerate((
            (1, "sim_anomaly", "reverify", 60, ("failed",)),
            (2, "rig", "suspend", 300, ("suspended",)),
            (3, "sim_anomaly", "reverify", 30, ("reverified",)),
            (5, "bulk_registration", "reverify", None, ()),
            (4, "sim_anomaly", "reverify", 10, ("failed",)),
            (1, "sim_anomaly", "police_lead", 5, ("police_confirmed",)))):
        rid = uuid.uuid4()
        created = base + timedelta(hours=n)
        await conn.execute(
            "INSERT INTO verification_outbox (request_id, idempotency_key, flag_id, action, "
            "line_imsi, rig_id, body, status, created_at, delivered_at) "
            "VALUES ($1, $2, $3, $4, $5, '', '{}', $6, $7, $8)",
            rid, f"key-{n}", ids[(i, kind)], action, None if action == "police_lead" else S[i],
            "delivered" if delay is not None else "pending", created,
            created + timedelta(seconds=delay) if delay is not None else None)
        for o in outcomes:
            await conn.execute("INSERT INTO verification_outcomes (request_id, outcome, outcome_at) "
                               "VALUES ($1, $2, $3)", rid, o, created + timedelta(hours=1))
    # police lookups in October (audit rows chained with the project's own hashing)
    head_seq, head_hash = 0, audit.GENESIS
    for n, (ntype, number, status, outcome, reason) in enumerate((
            ("msisdn", str(8613800000000 + 1), 200, "answered", ""),
            ("imsi", str(S[5]), 200, "answered", ""),
            ("msisdn", "8613999999999", 404, "not_found", "no_subscriber"),
            ("", "", 403, "refused", "role_forbidden"),
            ("msisdn", "abc", 400, "refused", "invalid_number"))):
        row = audit._row(audit.AuditEntry(
            request_id=f"req-{n}", client_id="psb", identity="officer", role="police",
            auth="bearer", case_ref="case-1", legal_basis="art", officer="o",
            query={"number_type": ntype, "number": number}, status=status, outcome=outcome,
            reason=reason), head_seq, head_hash)
        row["at"] = t("2026-10-15T08:00:00") + timedelta(minutes=n)
        h = audit.row_hash(row)
        await conn.execute(audit._INSERT, *audit._args(row), h)
        head_seq, head_hash = row["seq"], h
    # feeds: two CDR files with October days, a rejected file, the registrations of September
    for probe, source, day, records in (("cdr", "cdr-a.csv", "2026-10-01", 10),
                                        ("cdr", "cdr-a.csv", "2026-10-02", 20),
                                        ("cdr", "cdr-a.csv", "2026-10-03", 30),
                                        ("cdr", "cdr-b.csv", "2026-10-05", 5),
                                        ("registrations", "subs.csv", "2026-09-01", 7)):
        await conn.execute("INSERT INTO feed_days (probe, source, day, records) VALUES ($1, $2, $3, $4)",
                           probe, source, date.fromisoformat(day), records)
    await conn.execute(
        "INSERT INTO ingested_files (probe, name, size, sha256, status, records, rejected, detail) "
        "VALUES ('cdr', 'cdr-a.csv', 1, 'a', 'done', 60, 3, NULL), "
        "('cdr', 'cdr-b.csv', 1, 'b', 'done', 5, 0, NULL), "
        "('cdr', 'bad.csv', 1, 'c', 'rejected', 0, 0, 'no header'), "
        "('registrations', 'subs.csv', 1, 'd', 'done', 7, 0, NULL)")
    await conn.execute(
        "INSERT INTO quarantine (probe, source, line, reason, raw) VALUES "
        "('cdr', 'cdr-a.csv', 5, 'imsi: ''12'' not 15 digits', 'x'), "
        "('cdr', 'cdr-a.csv', 9, 'imsi: ''99'' not 15 digits', 'y'), "
        "('cdr', 'cdr-a.csv', 12, 'late: event time 2026-10-01T00:00:00Z is before x', 'z'), "
        "('cdr', 'bad.csv', 0, 'no header', '')")
