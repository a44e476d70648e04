"""The report's numbers against values computed by hand on the small store of small_store.py.

October 2026, by hand:
- active: CM s1 s2 s3 s4 (4), XM s5 s6 (2), no registration s8 (1)
- first flagged in October: s1 s2 s3 (CM), s5 s7 (XM), s8 (none); s4's first flag is in
  September, s9's in November. s3 is dismissed (its latest verdict), s1 and s5 confirmed.
- first activity → flag: s1 3600 s, s2 1800 s, s5 86400 s, s8 600 s (s3 dismissed; s7 never
  active); s3's first activity is in September (min over months).
- requests of October's cards: s1 reverify 60 s failed, s2 suspend 300 s suspended, s3 reverify
  30 s reverified, s5 reverify not delivered; s4's and the police lead are not counted.
"""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.report import ReportConfig, ReportError, gather, parse_month
from detector.report.gather import wilson
from detector.store.db import connect
from tests.detector.report import small_store
from tests.detector.report.small_store import CM, REGIONS, XM

# the small store's groups are a few SIMs: every rate is given (the minimum is tested apart)
CONFIG = ReportConfig.from_toml({"regions": REGIONS, "min_population": 1})
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture
async def report(pg_dsn):
    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await small_store.build(conn)
        yield await gather(pool, "2026-10", CONFIG, now=NOW)
    finally:
        await pool.close()


def test_month_parsing():
    start, end = parse_month("2026-12")
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+00:00",
                                                    "2027-01-01T00:00:00+00:00")
    for bad in ("2026-13", "26-10", "2026-1", "", "2026-10-01"):
        with pytest.raises(ReportError, match="YYYY-MM"):
            parse_month(bad)


async def test_carrier_table(report):
    t = report.table("carriers")
    # worst rate first; the tie between XM and the unregistered SIMs goes by name
    assert [r[0] for r in t.rows] == ["(no registration)", XM, CM]
    cm = t.row(carrier=CM)
    assert cm == {
        "carrier": CM, "operator_type": "network operator",
        "active_subscribers": 4, "flagged_cards": 3, "confirmed_fraud_cards": 1,
        "fraud_involved_cards": 2, "fraud_per_10k": 5000.0,
        "rigs": 1, "rig_cards": 3, "largest_rig": 3, "bulk_registered_cards": 0,
        "timed_cards": 2, "first_activity_to_flag_median_s": 2700.0,
        "first_activity_to_flag_p95_s": 3510.0,              # 1800 + 0.95 * 1800
        "verification_requests": 3, "flag_to_request_median_s": 60.0,
        "flag_to_request_p95_s": 276.0,                      # 60 + 0.9 * 240
        "requests_within_share": 0.6667,                     # 30 s and 60 s of 3
        "reverify_requests": 2, "reverified": 1, "failed_reverification": 1,
        "suspend_requests": 1, "suspended": 1, "police_confirmed": 0, "awaiting_outcome": 0,
        "fraud_per_10k_low": 1500.39, "fraud_per_10k_high": 8499.61,   # Wilson, 2 of 4
        "police_lookups": 1,
    }
    xm = t.row(carrier=XM)
    assert xm["operator_type"] == "virtual operator on China Unicom"
    assert (xm["active_subscribers"], xm["flagged_cards"], xm["confirmed_fraud_cards"],
            xm["fraud_involved_cards"], xm["fraud_per_10k"]) == (2, 2, 1, 2, 10000.0)
    assert (xm["bulk_registered_cards"], xm["rigs"], xm["largest_rig"]) == (2, 0, 0)
    assert (xm["timed_cards"], xm["first_activity_to_flag_median_s"],
            xm["first_activity_to_flag_p95_s"]) == (1, 86400.0, 86400.0)
    assert (xm["verification_requests"], xm["flag_to_request_median_s"],
            xm["requests_within_share"], xm["awaiting_outcome"]) == (1, None, 0.0, 1)
    assert xm["police_lookups"] == 1
    none = t.row(carrier="(no registration)")
    assert (none["active_subscribers"], none["fraud_involved_cards"], none["fraud_per_10k"],
            none["first_activity_to_flag_median_s"], none["verification_requests"],
            none["requests_within_share"]) == (1, 1, 10000.0, 600.0, 0, None)
    assert report.rigs_found == 1


async def test_region_table(report):
    t = report.table("regions")
    got = {r[0]: r[1:6] for r in t.rows}   # active, flagged, confirmed, involved, rate
    assert got == {
        "North": (3, 3, 1, 3, 10000.0),      # s1 s2 s8
        "East": (1, 1, 1, 1, 10000.0),       # s5
        "South": (2, 1, 0, 0, 0.0),          # s3 (dismissed), s4 active
        "unlocated": (1, 0, 0, 0, 0.0),      # s6: records without a cell
        "no activity": (0, 1, 0, 1, None),   # s7: a bulk card never used
    }
    assert [r[0] for r in t.rows][-1] == "no activity"
    north, south = t.row(region="North"), t.row(region="South")
    assert (north["rigs"], north["rig_cards"], south["rigs"], south["rig_cards"]) == (1, 2, 1, 1)


async def test_channel_ranking_with_the_change_on_the_previous_month(report):
    t = report.table("channels")
    assert [c.key for c in t.columns] == [
        "rank", "channel", "active_subscribers", "fraud_involved_cards", "fraud_per_10k",
        "prev_fraud_involved_cards", "prev_fraud_per_10k", "change_cards", "change_per_10k",
        "fraud_per_10k_low", "fraud_per_10k_high"]
    assert [r[:9] for r in t.rows] == [
        (1, "CH1", 2, 2, 10000.0, 0, None, 2, None),
        (2, "(no registration)", 1, 1, 10000.0, 0, None, 1, None),
        (3, "CH3", 1, 1, 10000.0, 0, None, 1, None),
        (4, "CH2", 3, 1, 3333.33, 1, 5000.0, 0, -1666.67),   # s5 now; s4 in September
    ]
    assert t.row(channel="CH2")["fraud_per_10k_low"] == 614.92      # Wilson, 1 of 3


async def test_trend_counts_each_card_in_the_month_of_its_first_flag(report):
    t = report.table("trend")
    rows = {(r[0], r[1]): r[2:5] for r in t.rows}
    assert rows[("2026-09", CM)] == (2, 1, 5000.0)          # s3 s4 active; s4 flagged
    assert rows[("2026-10", CM)] == (4, 2, 5000.0)
    assert rows[("2026-10", XM)] == (2, 2, 10000.0)
    assert {m for m, _ in rows} == {"2026-09", "2026-10"}   # earlier months have no data


async def test_time_to_action_distribution(report):
    t = report.table("time_to_action")
    got = {(r[0], r[1]): r[2] for r in t.rows}
    assert [got[("first activity to flag", b)] for b in (
        "up to 15 min", "15-60 min", "1-3 h", "3-6 h", "6-24 h", "over 24 h",
        "no recorded activity")] == [1, 1, 1, 0, 0, 1, 1]
    assert [got[("flag to verification request", b)] for b in (
        "up to 1 min", "1-3 min", "3-10 min", "10-60 min", "over 1 h",
        "not delivered")] == [1, 1, 1, 0, 0, 1]
    assert report.first_activity_to_flag_s == (600.0, 1800.0, 3600.0, 86400.0)
    assert report.flag_to_request_s == (30.0, 60.0, 300.0)


async def test_police_lookups(report):
    t = report.table("lookups")
    assert t.rows == (
        ("all", "", 5, 1.0), ("answered", "", 2, 0.4),
        ("not_found", "no_subscriber", 1, 0.2), ("refused", "invalid_number", 1, 0.2),
        ("refused", "role_forbidden", 1, 0.2))


async def test_coverage_names_feeds_gaps_and_quarantine(report):
    feeds = report.table("coverage_feeds")
    assert feeds.row(feed="cdr") == {
        "feed": "cdr", "days_with_records": 4, "days_in_month": 31, "missing_days": "4, 6-31",
        "files_done": 2, "files_rejected": 1, "files_duplicate": 0, "records": 65,
        "quarantined_rows": 4}
    assert feeds.row(feed="registrations")["days_with_records"] == 0
    assert report.table("coverage_quarantine").rows == (
        ("cdr", "imsi", 2), ("cdr", "late", 1), ("cdr", "no header", 1))
    notes = " ".join(report.coverage_notes)
    assert ("feed cdr: records dated on 4 days of 31 in October 2026 (no event dated on days "
            "4, 6-31); 65 records applied; lost: 4 rows quarantined, 1 file rejected whole") in notes
    # a registrations feed without activations in the month has lost nothing
    assert ("feed registrations: no record dated in October 2026; nothing applied for the "
            "month; lost: 0 rows quarantined, 0 files rejected whole") in notes
    assert "a registrations feed has records only on the days cards were activated" in notes
    assert "verification platform: " in notes and "outcome(s)" not in notes and "(s)" not in notes


async def test_every_column_is_defined_and_no_subscriber_identifier_leaves(report):
    doc = json.loads(json.dumps(report.to_json()))        # plain JSON all through
    for t in report.tables:
        for c in t.columns:
            assert c.label and c.definition, (t.name, c.key)
    text = str(doc)
    for imsi in small_store.S.values():
        assert str(imsi) not in text
    assert "8613800000001" not in text
    assert doc["generated_at"] == "2026-11-23T01:00:00Z"
    terms = [d["term"] for d in doc["definitions"]]
    assert "Fraud-involved card" in terms and "Within 3 min" in terms


async def test_an_empty_month_is_a_report_of_empty_tables(pg_dsn):
    pool = await connect(pg_dsn)
    try:
        r = await gather(pool, "2025-01", CONFIG, now=NOW)
    finally:
        await pool.close()
    assert r.table("carriers").rows == () and r.table("channels").rows == ()
    assert any("no feed delivered records" in n for n in r.coverage_notes)


@pytest.mark.parametrize("table, match", [
    ({"regions": {"46x": "A"}}, r"report.regions.'46x': not a prefix"),
    ({"regions": {"460-00-": ""}}, "report.regions: must be a table of non-empty strings"),
    ({"within_s": 0}, r"report.within_s: must be 1..86400"),
    ({"top_channels": "5"}, "report.top_channels: must be an integer"),
    ({"colour": 1}, "report.colour: unknown key"),
    ({"min_population": 0}, r"report.min_population: must be 1..1000000000"),
    ({"min_population": 1.5}, "report.min_population: must be an integer"),
    ({"reuse_s": -1}, r"report.reuse_s: must be 0..3600"),
    ({"reuse_s": 7200}, r"report.reuse_s: must be 0..3600"),
])
def test_bad_report_config_is_refused_naming_the_key(table, match):
    with pytest.raises(ValueError, match=match):
        ReportConfig.from_toml(table)


def test_region_lookup_takes_the_longest_prefix():
    cfg = ReportConfig.from_toml({"regions": {"460-00-": "Province", "460-00-4096-": "City"}})
    assert cfg.region_of("460-00-4096-17") == "City"
    assert cfg.region_of("460-00-40960-1") == "Province"
    assert cfg.region_of("460-11-1-1") == "unmapped"
    assert cfg.region_of("") == "unlocated"


async def test_small_groups_get_no_rank_but_their_interval(pg_dsn):
    """With a minimum population of 3, the carriers of 2 and 1 active SIMs (rate 10,000,
    worst by far on chance) give no rate and follow the ranked carrier; every row keeps its
    95 % interval, which says how little 1 or 2 SIMs tell."""
    config = ReportConfig.from_toml({"regions": REGIONS, "min_population": 3})
    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await small_store.build(conn)
        report = await gather(pool, "2026-10", config, now=NOW)
    finally:
        await pool.close()
    t = report.table("carriers")
    assert [r[0] for r in t.rows] == [CM, "(no registration)", XM]
    cm, xm = t.row(carrier=CM), t.row(carrier=XM)
    assert cm["fraud_per_10k"] == 5000.0 and xm["fraud_per_10k"] is None
    assert (xm["fraud_per_10k_low"], xm["fraud_per_10k_high"]) == (3423.8, 10000.0)
    regions = report.table("regions")
    assert regions.row(region="North")["fraud_per_10k"] == 10000.0       # 3 active
    assert regions.row(region="East")["fraud_per_10k"] is None           # 1 active
    assert regions.rows[0][0] == "North"
    trend = report.table("trend")
    assert trend.row(month="2026-10", carrier=XM)["fraud_per_10k"] is None
    assert trend.row(month="2026-10", carrier=XM)["fraud_per_10k_high"] == 10000.0
    rate = dict(report.definitions)["Rate"]
    assert "from 3 active subscribers on" in rate


@settings(deadline=None)          # the first call imports scipy
@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_the_wilson_interval_is_scipys_and_holds_the_rate(n, d):
    from scipy.stats import binomtest

    n = min(n, d)
    low, high = wilson(n, d)
    ci = binomtest(n, d).proportion_ci(method="wilson")
    assert low == pytest.approx(ci.low * 10_000, abs=0.011)
    assert high == pytest.approx(ci.high * 10_000, abs=0.011)
    assert 0.0 <= low <= round(n / d * 10_000, 2) + 0.01 and high <= 10_000.0
    assert wilson(n, 0) == (None, None)


async def test_a_lookup_made_while_a_month_is_replayed_counts_in_that_month(pg_dsn):
    """A lookup audited now on the data of a replayed October (the store's event time) counts
    in October's report, not in the month of the wall clock."""
    from detector.api import audit

    pool = await connect(pg_dsn)
    try:
        async with pool.acquire() as conn:
            await small_store.build(conn)
        await audit.AuditWriter(pool).append(audit.AuditEntry(
            request_id="req-replay", client_id="psb", identity="officer", role="police",
            auth="bearer", case_ref="case-2", legal_basis="art", officer="o",
            query={"number_type": "msisdn", "number": str(8613800000000 + 2),
                   "event_time": "2026-10-20T10:00:00Z"},
            status=200, outcome="answered", reason=""))
        october = await gather(pool, "2026-10", CONFIG, now=NOW)
        wall = datetime.now(UTC).strftime("%Y-%m")
        this_month = await gather(pool, wall, CONFIG, now=NOW)
    finally:
        await pool.close()
    assert october.table("lookups").row(outcome="all")["lookups"] == 6
    assert october.table("lookups").row(outcome="answered")["lookups"] == 3
    assert october.table("carriers").row(carrier=CM)["police_lookups"] == 2
    assert this_month.table("lookups").row(outcome="all")["lookups"] == 0


def test_the_configuration_crosses_to_the_worker_process_unchanged():
    import pickle
    back = pickle.loads(pickle.dumps(CONFIG))
    assert back == CONFIG and back.region_of("460-00-4101-7") == CONFIG.region_of("460-00-4101-7")
    with pytest.raises(TypeError):
        back.regions["460"] = "elsewhere"         # still read-only
