"""The monthly regulator report from the store: SQL → typed tables (docs/report.md).

The period is a calendar month in UTC. Cards are counted once, in the month of their first
flag (event time), so months add up. Verdicts and verification outcomes are taken as they are
when the report is generated (they arrive after the flags); ``generated_at`` is printed.
Every measure is defined in :data:`GROUP_COLUMNS` and the other column lists, and those
definitions are printed with the numbers in every output.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import numpy as np

from detector.report import active, lookup_counts
from detector.report.config import NO_ACTIVITY, NO_REGISTRATION, ReportConfig
from detector.report.tables import Column, Report, Table
from detector.wording import counted

log = logging.getLogger("goipwatch.report")

LINE_ACTIONS = ("reverify", "suspend")
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class ReportError(ValueError):
    """The report cannot be made as asked (say, a malformed month)."""


def parse_month(text: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of ``YYYY-MM``."""
    m = _MONTH.fullmatch(text or "")
    if not m or not 2000 <= int(m.group(1)) <= 2999:
        raise ReportError(f"month {text!r}: expected YYYY-MM, e.g. 2026-10")
    start = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)
    return start, _next_month(start)


def _next_month(t: datetime) -> datetime:
    return (t.replace(day=28) + timedelta(days=4)).replace(day=1)


def _prev_month(t: datetime) -> datetime:
    return (t - timedelta(days=1)).replace(day=1)


def _c(key: str, label: str, unit: str, definition: str) -> Column:
    return Column(key, label, unit, definition)


def _within(s: int) -> str:
    return f"{s // 60} min" if s % 60 == 0 else f"{s} s"


def interval_columns(what: str = "fraud_per_10k") -> tuple[Column, Column]:
    """The 95 % Wilson interval of a rate column ``what``."""
    return (
        _c(f"{what}_low", "95% interval, low", "per 10,000 active SIMs",
           f"lower end of the 95 % Wilson score interval of {what}'s proportion "
           "(fraud_involved_cards of active_subscribers), x 10,000; given whatever the "
           "population, empty without active subscribers"),
        _c(f"{what}_high", "95% interval, high", "per 10,000 active SIMs",
           f"upper end of the same interval of {what}"),
    )


def group_columns(within_s: int, min_population: int = 1) -> tuple[Column, ...]:
    """The measures of a group of cards (a carrier, a region)."""
    w = _within(within_s)
    return (
        _c("active_subscribers", "Active subscribers", "SIMs",
           "SIMs with at least one CDR or signalling record (event time) in the month"),
        _c("flagged_cards", "Flagged cards", "SIMs",
           "SIMs whose first flag of any kind (event time of the flag) falls in the month"),
        _c("confirmed_fraud_cards", "Confirmed fraud cards", "SIMs",
           "flagged cards whose latest verdict confirms fraud: an analyst's confirmation or the "
           "platform's outcome failed, suspended or police_confirmed"),
        _c("fraud_involved_cards", "Fraud-involved cards", "SIMs",
           "flagged cards not cleared: confirmed, or still without a verdict (cards dismissed by "
           "an analyst or whose holder passed re-verification are not counted)"),
        _c("fraud_per_10k", "Fraud-involved per 10,000 subscribers", "per 10,000 active SIMs",
           "fraud_involved_cards / active_subscribers x 10,000; empty below "
           f"{min_population:,} active subscribers ([report] min_population: too few to rank) "
           "and without any"),
        _c("rigs", "Rigs found", "rigs",
           "rigs (flagged SIMs sharing devices, a hot cell, a power-on burst or a bulk "
           "registration) whose first flag falls in the month and that hold at least one card "
           "of this group"),
        _c("rig_cards", "Cards in those rigs", "SIMs", "the cards of this group in those rigs"),
        _c("largest_rig", "Largest rig", "SIMs", "SIMs (of all groups) in the largest of those rigs"),
        _c("bulk_registered_cards", "Bulk-registered cards", "SIMs",
           "flagged cards with a bulk_registration flag: a run of consecutive ICCIDs on one ID "
           "document and channel, activated within the bulk window, one of whose cards was flagged"),
        _c("timed_cards", "Cards timed from first activity", "SIMs",
           "fraud-involved cards with recorded activity (the population of the next two columns)"),
        _c("first_activity_to_flag_median_s", "First activity to flag, median", "s",
           "event time of the card's first flag minus that of its first recorded record "
           "(0 when flagged before first use); median"),
        _c("first_activity_to_flag_p95_s", "First activity to flag, 95th percentile", "s",
           "as above; 95th percentile (linear interpolation between closest ranks)"),
        _c("verification_requests", "Verification requests", "requests",
           "re-verification and suspension requests for the lines of the flagged cards"),
        _c("flag_to_request_median_s", "Flag to verification request, median", "s",
           "from the flag's commit (its request is written in the same transaction) to the "
           "platform's acknowledgement of delivery; delivered requests; median"),
        _c("flag_to_request_p95_s", "Flag to verification request, 95th percentile", "s",
           "as above; 95th percentile (linear interpolation)"),
        _c("requests_within_share", f"Requests delivered within {w}", "share of requests",
           f"requests delivered within {w} of the flag's commit / all requests (requests "
           "not delivered count as not within); empty without requests"),
        _c("reverify_requests", "Re-verification requests", "requests", "requests of action reverify"),
        _c("reverified", "Passed re-verification", "requests",
           "requests with the outcome reverified (the holder passed; the card is cleared)"),
        _c("failed_reverification", "Failed re-verification", "requests", "requests with the outcome failed"),
        _c("suspend_requests", "Suspension requests", "requests", "requests of action suspend"),
        _c("suspended", "Suspended", "requests", "requests with the outcome suspended"),
        _c("police_confirmed", "Confirmed by police", "requests",
           "requests with the outcome police_confirmed"),
        _c("awaiting_outcome", "Awaiting outcome", "requests", "requests without any outcome yet"),
    ) + interval_columns()


# ---- facts read from the store ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Card:
    """A card first flagged in the period, with what the report needs of it."""

    imsi: int
    carrier: str
    channel: str
    cell: str | None          # last located cell up to the month; None: no activity recorded
    flagged_at: datetime      # event time of its first flag
    kinds: frozenset[str]
    verdict: str              # confirm | dismiss | '' (none)
    first_activity: datetime | None

    @property
    def involved(self) -> bool:
        return self.verdict != "dismiss"

    @property
    def confirmed(self) -> bool:
        return self.verdict == "confirm"


@dataclass(frozen=True, slots=True)
class Request:
    line_imsi: int
    action: str
    created_at: datetime
    delivered_at: datetime | None
    outcomes: frozenset[str]


@dataclass(frozen=True, slots=True)
class RigFact:
    id: str
    sims: int
    members: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MonthFacts:
    active: active.Active
    cards: list[Card]


async def _month_facts(conn: asyncpg.Connection, start: datetime, end: datetime) -> MonthFacts:
    rows = await conn.fetch(
        "WITH firsts AS (SELECT imsi, min(flagged_at) AS flagged_at, array_agg(DISTINCT kind) AS kinds "
        "  FROM flags GROUP BY imsi HAVING min(flagged_at) >= $1 AND min(flagged_at) < $2) "
        "SELECT f.imsi, f.flagged_at, f.kinds, coalesce(r.carrier, $4) AS carrier, "
        "  coalesce(r.channel, $4) AS channel, "
        "  (SELECT verdict FROM feedback b WHERE b.imsi = f.imsi "
        "   ORDER BY recorded_at DESC, id DESC LIMIT 1) AS verdict, "
        "  (SELECT min(first_at) FROM sim_activity a WHERE a.imsi = f.imsi) AS first_activity, "
        "  (SELECT last_cell FROM sim_activity a WHERE a.imsi = f.imsi AND a.month <= $3 "
        "   ORDER BY month DESC LIMIT 1) AS cell "
        "FROM firsts f LEFT JOIN registrations r USING (imsi) ORDER BY f.imsi",
        start, end, start.date(), NO_REGISTRATION)
    cards = [Card(r["imsi"], r["carrier"], r["channel"], r["cell"], r["flagged_at"],
                  frozenset(r["kinds"]), r["verdict"] or "", r["first_activity"]) for r in rows]
    return MonthFacts(await active.read(conn, start.date()), cards)


async def _requests(conn: asyncpg.Connection, imsis: list[int]) -> list[Request]:
    rows = await conn.fetch(
        "SELECT o.line_imsi, o.action, o.created_at, o.delivered_at, "
        "  coalesce(array_agg(v.outcome) FILTER (WHERE v.outcome IS NOT NULL), '{}') AS outcomes "
        "FROM verification_outbox o LEFT JOIN verification_outcomes v USING (request_id) "
        "WHERE o.action = ANY($2::text[]) AND o.line_imsi = ANY($1::bigint[]) "
        "GROUP BY o.id ORDER BY o.id", imsis, list(LINE_ACTIONS))
    return [Request(r["line_imsi"], r["action"], r["created_at"],
                    r["delivered_at"], frozenset(r["outcomes"])) for r in rows]


async def _rigs(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[RigFact]:
    rows = await conn.fetch("SELECT id, sims, members FROM rigs WHERE first_at >= $1 AND "
                            "first_at < $2 ORDER BY id", start, end)
    return [RigFact(r["id"], r["sims"], tuple(int(m) for m in json.loads(r["members"])))
            for r in rows]


async def _sim_places(conn: asyncpg.Connection, imsis: list[int], month: date
                      ) -> dict[int, tuple[str, str | None]]:
    """(carrier, cell up to the month) of SIMs that are not among the month's cards."""
    rows = await conn.fetch(
        "SELECT i AS imsi, coalesce(r.carrier, $3) AS carrier, "
        "  (SELECT last_cell FROM sim_activity a WHERE a.imsi = i AND a.month <= $2 "
        "   ORDER BY month DESC LIMIT 1) AS cell "
        "FROM unnest($1::bigint[]) AS i LEFT JOIN registrations r ON r.imsi = i",
        imsis, month, NO_REGISTRATION)
    return {r["imsi"]: (r["carrier"], r["cell"]) for r in rows}


# ---- measures -----------------------------------------------------------------------------

def _quantile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values, float), q * 100)), 1) if values else None


def _rate(n: int, d: int, min_population: int = 1, per: float = 10_000.0) -> float | None:
    """n per ``per`` of d; None without d, or when d is below ``min_population``."""
    return round(n / d * per, 2) if d and d >= min_population else None


Z95 = 1.959964      # the normal quantile of a two-sided 95 % interval


def wilson(n: int, d: int, per: float = 10_000.0, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of the proportion n / d, times ``per``: (low, high), or
    (None, None) without d. Unlike n / d +- z * se it stays within [0, per] and is honest
    for small d and for n = 0: 2 of 64 is 312.5 per 10,000, somewhere in 86-1,069."""
    if d <= 0:
        return None, None
    p = n / d
    denom = 1 + z * z / d
    centre = (p + z * z / (2 * d)) / denom
    half = z * math.sqrt(p * (1 - p) / d + z * z / (4 * d * d)) / denom
    return round(max(0.0, centre - half) * per, 2), round(min(1.0, centre + half) * per, 2)


def _share(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _first_to_flag(c: Card) -> float | None:
    if c.first_activity is None:
        return None
    return max(0.0, (c.flagged_at - c.first_activity).total_seconds())


def _delay(r: Request) -> float | None:
    return None if r.delivered_at is None else max(0.0, (r.delivered_at - r.created_at).total_seconds())


def _group_row(active: int, cards: list[Card], rigs: list[tuple[RigFact, int]],
               requests: list[Request], within_s: int, min_population: int) -> tuple:
    involved = [c for c in cards if c.involved]
    timed = [t for c in involved if (t := _first_to_flag(c)) is not None]
    delays = [d for r in requests if (d := _delay(r)) is not None]
    outcome = Counter(o for r in requests for o in r.outcomes)
    action = Counter(r.action for r in requests)
    return (
        active, len(cards), sum(c.confirmed for c in cards), len(involved),
        _rate(len(involved), active, min_population),
        len(rigs), sum(n for _, n in rigs), max((r.sims for r, _ in rigs), default=0),
        sum("bulk_registration" in c.kinds for c in cards),
        len(timed), _quantile(timed, 0.5), _quantile(timed, 0.95),
        len(requests), _quantile(delays, 0.5), _quantile(delays, 0.95),
        _share(sum(d <= within_s for d in delays), len(requests)),
        action["reverify"], outcome["reverified"], outcome["failed"], action["suspend"],
        outcome["suspended"], outcome["police_confirmed"], sum(not r.outcomes for r in requests),
    ) + wilson(len(involved), active)


def _grouped(keys: list[str], active: dict[str, int], cards: list[Card], key_of_card,
             rig_groups: dict[str, list[tuple[RigFact, int]]], requests: list[Request],
             within_s: int, min_population: int) -> list[tuple]:
    by_key: dict[str, list[Card]] = defaultdict(list)
    for c in cards:
        by_key[key_of_card(c)].append(c)
    req_by_key: dict[str, list[Request]] = defaultdict(list)
    card_key = {c.imsi: key_of_card(c) for c in cards}
    for r in requests:
        req_by_key[card_key[r.line_imsi]].append(r)
    return [(k,) + _group_row(active.get(k, 0), by_key.get(k, []), rig_groups.get(k, []),
                              req_by_key.get(k, []), within_s, min_population) for k in keys]


def _order(keys: set[str], rank: dict[str, float | None]) -> list[str]:
    """Worst first: by rate, then name; groups without a rate (none active, or fewer than
    the minimum population) last."""
    return sorted(keys, key=lambda k: (rank.get(k) is None, -(rank.get(k) or 0.0), k))


# ---- the report ---------------------------------------------------------------------------

async def gather(pool: asyncpg.Pool, month: str, config: ReportConfig = ReportConfig(),
                 now: datetime | None = None) -> Report:
    """The report of ``month`` (``YYYY-MM``) from the store."""
    start, end = parse_month(month)
    generated = (now or datetime.now(UTC)).replace(microsecond=0)
    async with pool.acquire() as conn:
        try:    # the lookups audited since the last report, counted once (a read-only
            await lookup_counts.fold(conn)     # store leaves them to the report's scan)
        except asyncpg.PostgresError as e:
            log.warning("lookup counts not folded: %s", e)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        facts = await _month_facts(conn, start, end)
        cards = facts.cards
        card_by_imsi = {c.imsi: c for c in cards}
        requests = await _requests(conn, sorted(card_by_imsi))
        rigs = await _rigs(conn, start, end)
        others = sorted({m for r in rigs for m in r.members} - set(card_by_imsi))
        places = await _sim_places(conn, others, start.date()) if others else {}
        prev_start = _prev_month(start)
        prev = await _month_facts(conn, prev_start, start)
        trend = [(start, facts)]
        t = prev_start
        for _ in range(config.trend_months - 1):
            trend.append((t, prev if t == prev_start else await _month_facts(conn, t, _next_month(t))))
            t = _prev_month(t)
        lookups = await _lookups(conn, start, end)
        coverage, notes = await _coverage(conn, start, end, bool(cards), bool(facts.active.by_cell),
                                          config)
    await active.keep(pool, [f.active for _, f in trend] + [prev.active])

    def carrier_of(imsi: int) -> str:
        return card_by_imsi[imsi].carrier if imsi in card_by_imsi else places[imsi][0]

    def region_of_cell(cell: str | None) -> str:
        return NO_ACTIVITY if cell is None else config.region_of(cell)

    def region_of(imsi: int) -> str:
        cell = card_by_imsi[imsi].cell if imsi in card_by_imsi else places[imsi][1]
        return region_of_cell(cell)

    def rig_groups(key_of) -> dict[str, list[tuple[RigFact, int]]]:
        out: dict[str, list[tuple[RigFact, int]]] = defaultdict(list)
        for rig in rigs:
            for k, n in Counter(key_of(m) for m in rig.members).items():
                out[k].append((rig, n))
        return out

    w = config.within_s
    # carriers
    active_carrier: Counter[str] = Counter()
    for (carrier, _), n in facts.active.by_carrier_channel.items():
        active_carrier[carrier] += n
    carrier_rigs = rig_groups(carrier_of)
    keys = set(active_carrier) | {c.carrier for c in cards} | set(carrier_rigs)
    rows = _grouped(sorted(keys), active_carrier, cards, lambda c: c.carrier, carrier_rigs,
                    requests, w, config.min_population)
    per_lookup = lookups.by_carrier
    carrier_rows = [(r[0], config.operator_type(r[0])) + r[1:] + (per_lookup.get(r[0], 0),)
                    for r in rows]
    rate_i = 1 + 1 + 4   # key, type, active, flagged, confirmed, involved, rate
    rank = {r[0]: r[rate_i] for r in carrier_rows}
    order = {k: i for i, k in enumerate(_order(keys, rank))}
    carrier_rows.sort(key=lambda r: order[r[0]])
    gcols = group_columns(w, config.min_population)
    carriers = Table(
        "carriers", "Carriers and brands",
        "one row per carrier or brand (network operators and virtual operators), as registered; "
        "worst rate first", (
            _c("carrier", "Carrier / brand", "", "the registration's carrier; "
               f"{NO_REGISTRATION} for SIMs without a registration record"),
            _c("operator_type", "Operator type", "",
               "network operator, or virtual operator on its host network (config [report])"),
        ) + gcols + (
            _c("police_lookups", "Police lookups", "lookups",
               "police lookups in the month whose number (MSISDN or IMSI) is registered with "
               "this carrier"),),
        tuple(carrier_rows))

    # regions
    active_region: Counter[str] = Counter()
    for cell, n in facts.active.by_cell.items():
        active_region[config.region_of(cell)] += n
    region_rigs = rig_groups(region_of)
    rkeys = set(active_region) | {region_of_cell(c.cell) for c in cards} | set(region_rigs)
    rrows = _grouped(sorted(rkeys), active_region, cards, lambda c: region_of_cell(c.cell),
                     region_rigs, requests, w, config.min_population)
    rrank = {r[0]: r[5] for r in rrows}
    rorder = {k: i for i, k in enumerate(_order(rkeys, rrank))}
    rrows.sort(key=lambda r: rorder[r[0]])
    regions = Table(
        "regions", "Regions",
        "one row per region: a card's region is that of the cell of its last located record "
        "up to the month, by the cell-prefix table of config [report] regions", (
            _c("region", "Region", "", "region of the card's last located cell in or before the "
               f"month; '{NO_ACTIVITY}': no recorded activity; 'unlocated': records without a "
               "cell; 'unmapped': a cell no prefix of the table matches"),) + gcols,
        tuple(rrows))

    channels = _channels(facts, prev, start, prev_start, config.min_population)
    trend_t = _trend(trend, config.min_population)
    tta = _time_to_action(cards, requests, w)
    lookups_t = lookups.table(w)
    first_times = tuple(sorted(t for c in cards if c.involved and (t := _first_to_flag(c)) is not None))
    delays = tuple(sorted(d for r in requests if (d := _delay(r)) is not None))
    return Report(
        month=month, start=start, end=end, generated_at=generated,
        tables=(carriers, regions, channels, trend_t, tta, lookups_t) + coverage,
        definitions=definitions(config),
        coverage_notes=notes, first_activity_to_flag_s=first_times, flag_to_request_s=delays,
        rigs_found=len(rigs))


def definitions(config: ReportConfig) -> tuple[tuple[str, str], ...]:
    w = _within(config.within_s)
    return (
        ("Period", "a calendar month in UTC; event times (when a call or registration happened) "
                   "place records, flags and activity in it"),
        ("Active subscriber", "a SIM with at least one CDR or signalling record in the month"),
        ("Flagged card", "a SIM whose first flag (any kind) falls in the month; each card is "
                         "counted once, in the month of its first flag"),
        ("Fraud-involved card", "a flagged card not cleared: confirmed fraud (an analyst, or "
                                "the platform's outcome failed / suspended / police_confirmed), "
                                "or still without a verdict. Dismissed cards and cards whose "
                                "holder passed re-verification are not fraud-involved"),
        ("Confirmed fraud card", "a flagged card whose latest verdict is a confirmation"),
        ("Verdicts and outcomes", "as recorded when the report was generated (they arrive after "
                                  "the month; a later run may differ)"),
        ("Rate", "fraud-involved cards per 10,000 active subscribers of the same carrier, "
                 f"region or channel; given, and ranked, from {config.min_population:,} active "
                 "subscribers on ([report] min_population): below that a few cards make a "
                 "large rate by chance, and the group is listed after the ranked ones"),
        ("95% interval", "each rate's Wilson score interval at 95 %, per 10,000 (columns "
                         "*_low and *_high): where the true rate plausibly lies given how "
                         "few subscribers it is measured on; given for small groups too"),
        ("Rig", "flagged SIMs grouped because they share devices, sit together in a cell with "
                "machine-like traffic, or come from one bulk registration; counted in the month "
                "of its first flag, for every carrier / region holding one of its cards"),
        ("Bulk-registered card", "a card with a bulk_registration flag (many cards on one ID "
                                 "document, one channel, consecutive ICCIDs, minutes apart)"),
        ("First activity to flag", "event time of a card's first flag minus that of its first "
                                   "recorded record; activity is recorded from migration 006 on"),
        ("Flag to verification request", "the flag's commit to the platform's acknowledgement "
                                         "of the re-verification or suspension request"),
        (f"Within {w}", f"the service level of the carrier-police mechanism ({config.within_s} s)"),
        ("Percentiles", "median and 95th percentile with linear interpolation between closest "
                        "ranks; empty when nothing was measured"),
        ("Police lookup", "a request to POST /v1/lookups, as the audit log holds it, dated by "
                          "the event time of the store's data when it was made (the newest "
                          "record taken in): a month replayed later counts the lookups made "
                          "on its data; rows without it are dated by when they were made"),
    )


def _channels(cur: MonthFacts, prev: MonthFacts, start: datetime, prev_start: datetime,
              min_population: int) -> Table:
    def per_channel(f: MonthFacts) -> tuple[Counter, Counter]:
        active: Counter[str] = Counter()
        for (_, ch), n in f.active.by_carrier_channel.items():
            active[ch] += n
        return active, Counter(c.channel for c in f.cards if c.involved)

    a, inv = per_channel(cur)
    pa, pinv = per_channel(prev)
    keys = {k for k, n in inv.items() if n} | {k for k, n in pinv.items() if n}
    rows = []
    for k in keys:
        rate, prate = _rate(inv[k], a[k], min_population), _rate(pinv[k], pa[k], min_population)
        rows.append([k, a[k], inv[k], rate, pinv[k], prate, inv[k] - pinv[k],
                     round(rate - prate, 2) if rate is not None and prate is not None else None,
                     *wilson(inv[k], a[k])])
    rows.sort(key=lambda r: (-r[2], -(r[3] or 0.0), r[0]))
    pm = prev_start.strftime("%Y-%m")
    return Table(
        "channels", "Problem sales channels",
        f"sales channels (dealer codes) with fraud-involved cards this month or in {pm}, ranked "
        "by fraud-involved cards, then rate", (
            _c("rank", "Rank", "", "1 = most fraud-involved cards"),
            _c("channel", "Sales channel", "", "the registration's channel (dealer code)"),
            _c("active_subscribers", "Active subscribers", "SIMs",
               "SIMs registered through the channel with activity in the month"),
            _c("fraud_involved_cards", "Fraud-involved cards", "SIMs",
               "as in the carrier table, for cards registered through the channel"),
            _c("fraud_per_10k", "Fraud-involved per 10,000", "per 10,000 active SIMs",
               "fraud_involved_cards / active_subscribers x 10,000; empty below "
               f"{min_population:,} active subscribers ([report] min_population)"),
            _c("prev_fraud_involved_cards", f"Fraud-involved cards {pm}", "SIMs",
               "the same in the previous month"),
            _c("prev_fraud_per_10k", f"Per 10,000 {pm}", "per 10,000 active SIMs",
               "the same in the previous month"),
            _c("change_cards", "Change in cards", "SIMs", "this month minus the previous"),
            _c("change_per_10k", "Change in rate", "per 10,000 active SIMs",
               "this month's rate minus the previous month's; empty when either is"),
        ) + interval_columns(), tuple(tuple([i + 1] + r) for i, r in enumerate(rows)))


def _trend(months: list[tuple[datetime, MonthFacts]], min_population: int) -> Table:
    rows = []
    for start, f in sorted(months, key=lambda m: m[0]):
        active: Counter[str] = Counter()
        for (carrier, _), n in f.active.by_carrier_channel.items():
            active[carrier] += n
        inv = Counter(c.carrier for c in f.cards if c.involved)
        for k in sorted(set(active) | set(inv)):
            rows.append((start.strftime("%Y-%m"), k, active[k], inv[k],
                         _rate(inv[k], active[k], min_population), *wilson(inv[k], active[k])))
    return Table(
        "trend", "Monthly trend", "one row per month and carrier, the report's month last", (
            _c("month", "Month", "", "calendar month (UTC)"),
            _c("carrier", "Carrier / brand", "", "as in the carrier table"),
            _c("active_subscribers", "Active subscribers", "SIMs", "as in the carrier table"),
            _c("fraud_involved_cards", "Fraud-involved cards", "SIMs",
               "as in the carrier table (verdicts as of now)"),
            _c("fraud_per_10k", "Fraud-involved per 10,000", "per 10,000 active SIMs",
               "as in the carrier table (empty below the minimum population)"),
        ) + interval_columns(), tuple(rows))


TTA_BINS = ((0, 900, "up to 15 min"), (900, 3600, "15-60 min"), (3600, 3 * 3600, "1-3 h"),
            (3 * 3600, 6 * 3600, "3-6 h"), (6 * 3600, 86400, "6-24 h"),
            (86400, float("inf"), "over 24 h"))
REQUEST_BINS = ((0, 60, "up to 1 min"), (60, 180, "1-3 min"), (180, 600, "3-10 min"),
                (600, 3600, "10-60 min"), (3600, float("inf"), "over 1 h"))


def _time_to_action(cards: list[Card], requests: list[Request], within_s: int) -> Table:
    rows = []
    first = [t for c in cards if c.involved and (t := _first_to_flag(c)) is not None]
    untimed = sum(1 for c in cards if c.involved and c.first_activity is None)
    for lo, hi, label in TTA_BINS:
        rows.append(("first activity to flag", label, sum(lo <= t < hi for t in first)))
    rows.append(("first activity to flag", "no recorded activity", untimed))
    delays = [_delay(r) for r in requests]
    for lo, hi, label in REQUEST_BINS:
        rows.append(("flag to verification request", label,
                     sum(d is not None and lo <= d < hi for d in delays)))
    pending = Counter("not delivered" for d in delays if d is None)
    rows.append(("flag to verification request", "not delivered", pending["not delivered"]))
    return Table(
        "time_to_action", "Time to action (distribution)",
        "how many fraud-involved cards / requests fall in each time band (lower bound "
        "included, upper excluded)", (
            _c("measure", "Measure", "", "first activity to flag (fraud-involved cards); flag "
               "to verification request (requests for the month's flagged cards)"),
            _c("band", "Band", "", "time band"),
            _c("count", "Count", "cards or requests", "cards (first measure) or requests (second)"),
        ), tuple(rows))


# ---- police lookups -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Lookups:
    rows: tuple[tuple[str, str, int], ...]     # (outcome, reason, count)
    by_carrier: dict[str, int]

    def table(self, within_s: int) -> Table:
        total = sum(n for _, _, n in self.rows)
        answered = sum(n for o, _, n in self.rows if o == "answered")
        w = _within(within_s)
        summary = [("all", "", total, 1.0 if total else None),
                   ("answered", "", answered, _share(answered, total))]
        return Table(
            "lookups", "Police lookups",
            "subscriber lookups by the police in the month (POST /v1/lookups), by outcome and "
            f"reason. Answers are synchronous: an answered lookup was answered within {w} (the "
            "audit row is written as the answer is sent)", (
                _c("outcome", "Outcome", "", "all; answered (within the service level); "
                   "not_found (no data on the number); refused (with its reason code)"),
                _c("reason", "Reason", "", "reason code of a refusal or not-found answer"),
                _c("lookups", "Lookups", "lookups", "requests in the month"),
                _c("share", "Share", "share of all lookups", "lookups / all lookups"),
            ), tuple(summary + [(o, r, n, _share(n, total)) for o, r, n in self.rows
                                if o != "answered"]))


async def _lookups(conn: asyncpg.Connection, start: datetime, end: datetime) -> Lookups:
    rows, carriers = await lookup_counts.month_lookups(conn, start, end)
    return Lookups(tuple(rows), carriers)


# ---- data coverage ------------------------------------------------------------------------

def _reason_class(reason: str) -> str:
    head = reason.split(":", 1)[0] if ":" in reason[:40] else reason
    return re.sub(r"\d+", "N", head).strip()[:80]


def _day_ranges(days: list[date]) -> str:
    """'1-4, 7, 30-31' for a list of days of one month."""
    parts, run = [], []
    for d in sorted(days):
        if run and (d - run[-1]).days == 1:
            run.append(d)
            continue
        if run:
            parts.append(run)
        run = [d]
    if run:
        parts.append(run)
    return ", ".join(f"{r[0].day}" if len(r) == 1 else f"{r[0].day}-{r[-1].day}" for r in parts)


def _feed_note(probe: str, got: dict[date, int], missing: list[date], days: int, month_name: str,
               quarantined: int, rejected: int) -> str:
    """A feed's coverage in words. Two things are kept apart: the days its records are
    dated on (event time: a call's start, a registration's activation), which say when
    things happened, not what was lost (a registrations feed has records only on the days
    cards were activated), and what was lost: rows quarantined, files rejected whole."""
    if got:
        dated = (f"records dated on {counted(len(got), 'day')} of {days} in {month_name}"
                 + (f" (no event dated on days {_day_ranges(missing)})" if missing else
                    " (every day)"))
        taken = f"{counted(sum(got.values()), 'record')} applied"
    else:
        dated = f"no record dated in {month_name}"
        taken = "nothing applied for the month"
    return (f"feed {probe}: {dated}; {taken}; lost: {counted(quarantined, 'row')} quarantined, "
            f"{counted(rejected, 'file')} rejected whole")


async def _coverage(conn: asyncpg.Connection, start: datetime, end: datetime, any_cards: bool,
                    any_active: bool, config: ReportConfig
                    ) -> tuple[tuple[Table, ...], tuple[str, ...]]:
    d0, d1 = start.date(), end.date()
    all_days = [d0 + timedelta(days=i) for i in range((d1 - d0).days)]
    days = await conn.fetch(
        "SELECT probe, day, sum(records)::bigint AS records, count(DISTINCT source) AS files FROM feed_days "
        "WHERE day >= $1 AND day < $2 GROUP BY 1, 2 ORDER BY 1, 2", d0, d1)
    files = await conn.fetch(
        "WITH mine AS (SELECT DISTINCT probe, source FROM feed_days WHERE day >= $1 AND day < $2), "
        "span AS (SELECT min(i.ingested_at) AS lo, max(i.ingested_at) AS hi FROM ingested_files i "
        "  JOIN mine m ON m.probe = i.probe AND m.source = i.name) "
        "SELECT i.probe, i.name, i.status, i.detail FROM ingested_files i "
        "WHERE (i.probe, i.name) IN (SELECT probe, source FROM mine) "
        "OR (i.status <> 'done' AND (i.ingested_at >= $3 AND i.ingested_at < $4 OR "
        "    i.ingested_at BETWEEN (SELECT lo FROM span) AND (SELECT hi FROM span)))",
        d0, d1, start, end)
    quarantined = await conn.fetch(
        "SELECT q.probe, q.reason FROM quarantine q WHERE (q.probe, q.source) IN "
        "(SELECT DISTINCT probe, source FROM feed_days WHERE day >= $1 AND day < $2) "
        "OR (q.probe, q.source) IN (SELECT probe, name FROM ingested_files WHERE status = 'rejected' "
        "    AND name = ANY($3::text[]))",
        d0, d1, [f["name"] for f in files if f["status"] == "rejected"])
    by_probe: dict[str, dict[date, int]] = defaultdict(dict)
    for r in days:
        by_probe[r["probe"]][r["day"]] = r["records"]
    status = defaultdict(Counter)
    for f in files:
        status[f["probe"]][f["status"]] += 1
    q_by = Counter((r["probe"], _reason_class(r["reason"])) for r in quarantined)
    q_probe = Counter(r["probe"] for r in quarantined)
    rows, notes = [], []
    month_name = start.strftime("%B %Y")
    known = {r["probe"] for r in await conn.fetch("SELECT DISTINCT probe FROM ingested_files")}
    if by_probe or status or known:
        notes.append("a feed's days are the event days of its records (a call's start, a "
                     "registration's activation), so a day without records is a day without "
                     "such events in that feed, not lost data: a registrations feed has records "
                     "only on the days cards were activated, and the subscribers registered "
                     "before the month still count. Lost data is counted apart: rows "
                     "quarantined and files rejected whole")
    for probe in sorted(set(by_probe) | set(status) | known):
        got = by_probe.get(probe, {})
        missing = [d for d in all_days if d not in got]
        rows.append((probe, len(got), len(all_days), _day_ranges(missing), status[probe]["done"],
                     status[probe]["rejected"], status[probe]["duplicate"], sum(got.values()),
                     q_probe[probe]))
        notes.append(_feed_note(probe, got, missing, len(all_days), month_name,
                                q_probe[probe], status[probe]["rejected"]))
    if not rows:
        notes.append(f"no feed delivered records for {month_name}: the tables below are empty "
                     "or hold only flags and lookups")
    if any_cards and not any_active:
        notes.append("cards were flagged but no activity is recorded for the month (activity is "
                     "kept from migration 006 on): active subscribers and rates are missing")
    outcomes = await conn.fetchval(
        "SELECT count(*) FROM verification_outcomes WHERE outcome_at >= $1 AND outcome_at < $2",
        start, end)
    notes.append(f"verification platform: {counted(outcomes, 'outcome')} reported for {month_name}; "
                 "outcomes reported later change later runs of this report")
    if not config.regions:
        notes.append("no region table is configured ([report] regions): every located card is "
                     "in region 'unmapped'")
    feeds = Table(
        "coverage_feeds", "Data coverage: feeds",
        "one row per feed (probe): which days of the month it delivered records for; a "
        "record's day is its event time (a call's start, a registration's activation)", (
            _c("feed", "Feed", "", "the probe's name in the configuration"),
            _c("days_with_records", "Days with records", "days",
               "days of the month (UTC, event time) with at least one applied record"),
            _c("days_in_month", "Days in month", "days", "calendar days of the month"),
            _c("missing_days", "Days without records", "days of the month",
               "days on which no record of the feed is dated, as day ranges: days without "
               "such events in the feed (a registrations feed dates a record by the card's "
               "activation), not lost rows (those are quarantined_rows and files_rejected)"),
            _c("files_done", "Files taken in", "files", "files with records for the month"),
            _c("files_rejected", "Files rejected whole", "files",
               "files refused whole (e.g. no header) while the month's files were read"),
            _c("files_duplicate", "Duplicate files", "files",
               "files skipped because their content was already taken in"),
            _c("records", "Records applied", "records", "records of the month applied"),
            _c("quarantined_rows", "Rows quarantined", "rows",
               "malformed or late rows of those files, kept with their reason"),
        ), tuple(rows))
    quarantine = Table(
        "coverage_quarantine", "Data coverage: quarantined rows",
        "quarantined rows of the month's files by feed and kind of reason", (
            _c("feed", "Feed", "", "the probe's name"),
            _c("reason", "Reason", "", "the reason's kind (numbers replaced by N)"),
            _c("rows", "Rows", "rows", "rows quarantined"),
        ), tuple((p, r, n) for (p, r), n in sorted(q_by.items())))
    return (feeds, quarantine), tuple(notes)
