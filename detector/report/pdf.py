"""PDF output for people: a summary with the period's data coverage, carriers ranked, time to
action, the monthly trend, problem channels, regions, police lookups, and the definitions of
every number shown (matplotlib, Agg backend, A4 landscape)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

from detector.report.tables import Report
from detector.wording import counted

A4 = (11.69, 8.27)
INK, MUTED, ACCENT, WARN = "#1b1f24", "#5b6470", "#2f6690", "#c0392b"
PALETTE = ("#2f6690", "#d1495b", "#edae49", "#66a182", "#8e6c8a", "#00798c", "#6c757d", "#3a3a3a")


def human_s(s: Any) -> str:
    """A duration in seconds, in the unit that reads best."""
    if s is None:
        return "–"
    s = float(s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _num(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _keys(table) -> dict[str, int]:
    return {c.key: i for i, c in enumerate(table.columns)}


def interval_cell(row, k: dict[str, int], what: str = "fraud_per_10k") -> str:
    """The 95 % interval of a rate per 10,000, beside the rate: a ranking reader must see
    that 2 cards of 64 say little (given even where the rate is withheld below the minimum
    population)."""
    low, high = row[k[f"{what}_low"]], row[k[f"{what}_high"]]
    if low is None:
        return "–"
    short = (lambda v: f"{v:,.0f}") if high >= 100 else (lambda v: f"{v:.1f}")
    return f"{short(low)}–{short(high)}"


def _page(plt, title: str, subtitle: str, report: Report):
    fig = plt.figure(figsize=A4)
    fig.text(0.04, 0.955, title, fontsize=17, weight="bold", color=INK, va="top")
    if subtitle:
        fig.text(0.04, 0.915, subtitle, fontsize=9.5, color=MUTED, va="top")
    fig.text(0.04, 0.02, f"goipwatch monthly report {report.month} · period "
             f"{report.start:%Y-%m-%d} – {report.end:%Y-%m-%d} UTC (end excluded) · generated "
             f"{report.generated_at:%Y-%m-%d %H:%M} UTC · definitions on the last two pages",
             fontsize=7, color=MUTED)
    return fig


def _table(fig, rect, headers: list[str], rows: list[list[str]], size: float = 7.5,
           widths: list[float] | None = None, highlight: int | None = None, left: int = 1) -> None:
    """A table whose first ``left`` columns (labels) are left-aligned, numbers right."""
    ax = fig.add_axes(rect)
    ax.axis("off")
    if not rows:
        ax.text(0, 0.9, "(nothing to show for this period)", fontsize=9, color=MUTED)
        return
    t = ax.table(cellText=rows, colLabels=headers, loc="upper left", cellLoc="right",
                 colLoc="center", colWidths=widths)
    t.auto_set_font_size(False)
    t.set_fontsize(size)
    t.scale(1, 1.35)
    for (r, c), cell in t.get_celld().items():
        cell.set_edgecolor("#c9d1da")
        cell.set_linewidth(0.5)
        if r == 0:
            cell.set_facecolor("#dde6f0")
            cell.set_text_props(weight="bold", wrap=True)
            cell.set_height(cell.get_height() * (1 + max(h.count("\n") for h in headers)) * 1.05)
        elif r % 2 == 0:
            cell.set_facecolor("#f5f7fa")
        if c < left and r > 0:
            cell.get_text().set_horizontalalignment("left")
            cell.PAD = 0.04
        if highlight is not None and r == highlight:
            cell.set_text_props(weight="bold")


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _wrap_lines(items: list[str], width: int) -> list[str]:
    out = []
    for item in items:
        out += textwrap.wrap(item, width, subsequent_indent="   ") or [""]
    return out


def _text_block(fig, x: float, y: float, lines: list[str], size: float = 8.5,
                step: float = 0.024, color: str = INK) -> float:
    for line in lines:
        fig.text(x, y, line, fontsize=size, color=color, va="top")
        y -= step
    return y


def _summary(plt, report: Report):
    fig = _page(plt, f"Problem carriers and channels — {report.start:%B %Y}",
                "Monthly report for the sector regulator: fraud-involved SIM cards per carrier, "
                "region and sales channel, time to action, and police lookup service levels", report)
    carriers = report.table("carriers")
    totals = {k: sum(v or 0 for v in carriers.column(k)) for k in
              ("active_subscribers", "flagged_cards", "confirmed_fraud_cards",
               "fraud_involved_cards", "bulk_registered_cards", "verification_requests")}
    rate = totals["fraud_involved_cards"] / totals["active_subscribers"] * 1e4 \
        if totals["active_subscribers"] else None
    first = report.first_activity_to_flag_s
    delays = report.flag_to_request_s
    lookups = report.table("lookups")
    n_lookups = lookups.rows[0][2] if lookups.rows else 0
    answered = lookups.rows[1][3] if len(lookups.rows) > 1 else None
    worst = carriers.rows[0] if carriers.rows and carriers.rows[0][6] is not None else None
    channels = report.table("channels")
    import numpy as np

    tiles = [
        ("Active subscribers", _num(totals["active_subscribers"])),
        ("Flagged cards", _num(totals["flagged_cards"])),
        ("Fraud-involved cards", _num(totals["fraud_involved_cards"])),
        ("per 10,000 subscribers", _num(round(rate, 2)) if rate is not None else "–"),
        ("Confirmed fraud cards", _num(totals["confirmed_fraud_cards"])),
        ("Rigs found", _num(report.rigs_found)),
        ("First activity → flag, median",
         human_s(float(np.median(first))) if first else "–"),
        ("Flag → request, median", human_s(float(np.median(delays))) if delays else "–"),
        ("Police lookups", _num(n_lookups)),
        ("answered within service level", _pct(answered) if n_lookups else "–"),
    ]
    for i, (label, value) in enumerate(tiles):
        x = 0.04 + (i % 5) * 0.188
        y = 0.84 - (i // 5) * 0.13
        fig.patches.append(plt.Rectangle((x, y - 0.105), 0.175, 0.105, transform=fig.transFigure,
                                         facecolor="#f1f4f8", edgecolor="#c9d1da", lw=0.6))
        fig.text(x + 0.01, y - 0.012, label, fontsize=8, color=MUTED, va="top")
        fig.text(x + 0.01, y - 0.045, value, fontsize=17, weight="bold", color=ACCENT, va="top")
    y = 0.56
    fig.text(0.04, y, "In short", fontsize=11, weight="bold", color=INK, va="top")
    lines = []
    if worst is not None:
        lines.append(f"• Highest rate: {worst[0]} ({worst[1]}), {_num(worst[6])} fraud-involved "
                     f"cards per 10,000 active subscribers ({worst[5]} cards).")
    if channels.rows:
        top = channels.rows[0]
        lines.append(f"• Top problem channel: {top[1]} with {top[3]} fraud-involved cards "
                     f"({_num(top[4])} per 10,000), {top[7]:+d} cards on the previous month.")
    bulk = totals["bulk_registered_cards"]
    lines.append(f"• {counted(bulk, 'flagged card')} came from bulk registrations; "
                 f"{counted(totals['verification_requests'], 're-verification / suspension request')} sent.")
    lines.append("• Rates divide by active subscribers of the same carrier; a rig spanning "
                 "carriers counts for each.")
    y = _text_block(fig, 0.05, y - 0.04, _wrap_lines(lines, 150), size=9)
    fig.text(0.04, y - 0.02, "Data coverage of the period", fontsize=11, weight="bold",
             color=INK, va="top")
    _text_block(fig, 0.05, y - 0.06, _wrap_lines([f"• {n}" for n in report.coverage_notes], 150),
                size=8.5, color=INK)
    return fig


def _carriers(plt, report: Report):
    t = report.table("carriers")
    fig = _page(plt, "Carriers ranked by fraud-involved cards per 10,000 subscribers",
                "network operators and virtual operators (brands); worst rate first; counts are "
                "cards first flagged in the month", report)
    ax = fig.add_axes([0.2, 0.56, 0.74, 0.32])
    k = _keys(t)
    rate, low, high = k["fraud_per_10k"], k["fraud_per_10k_low"], k["fraud_per_10k_high"]
    rows = [r for r in t.rows if r[rate] is not None]
    names = [f"{r[0]}" + (" (virtual)" if r[1].startswith("virtual") else "") for r in rows][::-1]
    rates = [r[rate] for r in rows][::-1]
    # the 95 % interval as a whisker: a short bar from few subscribers is not a sure one
    spread = [[r[rate] - r[low] for r in rows][::-1], [r[high] - r[rate] for r in rows][::-1]]
    colors = [PALETTE[1] if "virtual" in n else PALETTE[0] for n in names]
    bars = ax.barh(names, rates, color=colors, xerr=spread or None,
                   error_kw={"ecolor": MUTED, "elinewidth": 0.8, "capsize": 2})
    for b, r in zip(bars, rows[::-1]):
        ax.text(r[high], b.get_y() + b.get_height() / 2,
                f"  {r[rate]:.1f} ({r[low]:.1f}–{r[high]:.1f})  {r[5]} of {r[2]:,}",
                va="center", fontsize=7.5, color=INK)
    ax.set_xlabel("fraud-involved cards per 10,000 active subscribers, with 95 % interval",
                  fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlim(0, max([r[high] for r in rows] or [1]) * 1.5)
    headers = ["Carrier / brand", "Type", "Active\nsubscribers", "Flagged\ncards",
               "Confirmed\nfraud", "Fraud-\ninvolved", "per\n10,000", "95%\ninterval", "Rigs", "Cards in\nrigs",
               "Largest\nrig", "Bulk-reg.\ncards", "Police\nlookups"]
    body = [[r[0], r[1].replace("virtual operator on ", "virtual on "), _num(r[2]), _num(r[3]),
             _num(r[4]), _num(r[5]), _num(r[6]), interval_cell(r, k), _num(r[7]), _num(r[8]),
             _num(r[9]), _num(r[10]), _num(r[-1])] for r in t.rows]
    _table(fig, [0.04, 0.06, 0.92, 0.42], headers, body,
           widths=[0.12, 0.13] + [0.0682] * 11, left=2)
    return fig


def _timing(plt, report: Report):
    t = report.table("carriers")
    fig = _page(plt, "Time to action",
                "from a card's first recorded activity to its flag, and from the flag to the "
                "verification request reaching the platform; re-verification outcomes", report)
    tta = report.table("time_to_action")
    for i, (measure, title, color) in enumerate((
            ("first activity to flag", "First activity → flag (fraud-involved cards)", PALETTE[0]),
            ("flag to verification request", "Flag → verification request delivered", PALETTE[3]))):
        ax = fig.add_axes([0.06 + i * 0.48, 0.55, 0.4, 0.3])
        rows = [r for r in tta.rows if r[0] == measure]
        labels, counts = [r[1] for r in rows], [r[2] for r in rows]
        ax.set_title(title, fontsize=9.5, loc="left")
        if not any(counts):
            ax.axis("off")
            ax.text(0, 0.8, "nothing to show for this period" + (
                "" if i == 0 else ":\nno re-verification or suspension request was written for "
                "the month's cards\n(requests need a [verification] table in the daemon's "
                "configuration)"), fontsize=8.5, color=MUTED, va="top", transform=ax.transAxes)
            continue
        bars = ax.bar(range(len(rows)), counts, color=color)
        if labels and labels[-1] in ("no recorded activity", "not delivered"):
            bars[-1].set_color("#b0b7c0")
        ax.set_xticks(range(len(rows)), labels, rotation=25, ha="right", fontsize=7.5)
        for b, n in zip(bars, counts):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{n}", ha="center",
                    va="bottom", fontsize=7.5)
        ax.set_ylabel("cards" if i == 0 else "requests", fontsize=8)
        ax.yaxis.set_major_locator(_integer_ticks())
        ax.tick_params(axis="y", labelsize=7.5)
        ax.spines[["top", "right"]].set_visible(False)
    within = [c.label for c in t.columns if c.key == "requests_within_share"][0]
    headers = ["Carrier / brand", "Timed\ncards", "1st activity\n→ flag\nmedian",
               "1st activity\n→ flag\np95", "Requests", "Flag →\nrequest\nmedian",
               "Flag →\nrequest\np95", within.replace("Requests delivered ", "Delivered\n"),
               "Re-verify\nrequests", "Passed", "Failed", "Suspend\nrequests", "Suspended",
               "Police\nconfirmed", "Awaiting\noutcome"]
    k = _keys(t)
    body = [[r[0], _num(r[k["timed_cards"]]), human_s(r[k["first_activity_to_flag_median_s"]]),
             human_s(r[k["first_activity_to_flag_p95_s"]]), _num(r[k["verification_requests"]]),
             human_s(r[k["flag_to_request_median_s"]]), human_s(r[k["flag_to_request_p95_s"]]),
             _pct(r[k["requests_within_share"]]), _num(r[k["reverify_requests"]]),
             _num(r[k["reverified"]]), _num(r[k["failed_reverification"]]),
             _num(r[k["suspend_requests"]]), _num(r[k["suspended"]]),
             _num(r[k["police_confirmed"]]), _num(r[k["awaiting_outcome"]])] for r in t.rows]
    _table(fig, [0.04, 0.06, 0.92, 0.36], headers, body, size=7,
           widths=[0.14] + [0.0614] * 14)
    return fig


def _trend(plt, report: Report):
    t = report.table("trend")
    fig = _page(plt, "Monthly trend",
                "fraud-involved cards per 10,000 active subscribers, per carrier, the report's "
                "month last (verdicts as of the report's generation)", report)
    ax = fig.add_axes([0.07, 0.14, 0.62, 0.7])
    months = sorted({r[0] for r in t.rows})
    carriers = sorted({r[1] for r in t.rows})
    for i, c in enumerate(carriers):
        vals = {r[0]: r[4] for r in t.rows if r[1] == c}
        ys = [vals.get(m) for m in months]
        ax.plot(months, [float("nan") if y is None else y for y in ys], marker="o",
                color=PALETTE[i % len(PALETTE)], label=c, lw=1.6)
    ax.set_ylabel("fraud-involved per 10,000 active subscribers", fontsize=8.5)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e3e7ec")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.02, 1))
    months_with = sorted({r[0] for r in t.rows if r[2]})
    missing = [m for m in months if m not in months_with]
    note = [f"Months shown: {months[0]} to {months[-1]}." if months else "No month has data.",
            "A month without active subscribers (no feed, or before activity was recorded) "
            "has no rate and shows as a gap."]
    if missing:
        note.append("Without activity data: " + ", ".join(missing) + ".")
    _text_block(fig, 0.72, 0.55, _wrap_lines(note, 42), size=8, color=MUTED)
    return fig


def _channels(plt, report: Report, top: int):
    t = report.table("channels")
    prev = t.columns[5].label.rsplit(" ", 1)[-1]
    fig = _page(plt, "Problem sales channels",
                f"channels (dealer codes) ranked by fraud-involved cards, then rate; change on "
                f"{prev}; the {top} worst shown (all in the CSV/XLSX)", report)
    rows = list(t.rows[:top])
    ax = fig.add_axes([0.1, 0.62, 0.86, 0.26])
    if rows:
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r[3] for r in rows], width=0.4, color=PALETTE[1],
               label=f"{report.month}")
        ax.bar([x + 0.2 for x in xs], [r[5] for r in rows], width=0.4, color="#b0b7c0",
               label=prev)
        ax.set_xticks(list(xs), [r[1] for r in rows], rotation=45, ha="right", fontsize=7)
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel("fraud-involved cards", fontsize=8)
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.tick_params(axis="y", labelsize=7.5)
    ax.spines[["top", "right"]].set_visible(False)
    headers = ["Rank", "Channel", "Active\nsubscribers", "Fraud-involved\ncards",
               "per\n10,000", "95%\ninterval", f"Cards\n{prev}", f"per 10,000\n{prev}",
               "Change\n(cards)", "Change\n(rate)"]
    k = _keys(t)
    body = [[str(r[0]), r[1], _num(r[2]), _num(r[3]), _num(r[4]), interval_cell(r, k), _num(r[5]),
             _num(r[6]),
             f"{r[7]:+d}", "–" if r[8] is None else f"{r[8]:+.2f}"] for r in rows[:12]]
    _table(fig, [0.04, 0.06, 0.92, 0.42], headers, body,
           widths=[0.05, 0.13] + [0.091] * 8, left=2)
    return fig


def _regions(plt, report: Report):
    t = report.table("regions")
    fig = _page(plt, "Regions",
                "a card's region is that of its last located cell up to the month "
                "(cell-prefix table in config [report] regions); worst rate first", report)
    k = _keys(t)
    headers = ["Region", "Active\nsubscribers", "Flagged\ncards", "Confirmed\nfraud",
               "Fraud-\ninvolved", "per\n10,000", "95%\ninterval", "Rigs", "Bulk-reg.\ncards",
               "1st activity\n→ flag\nmedian", "Flag →\nrequest\nmedian", "Delivered\nwithin\nservice level",
               "Passed\nre-verif.", "Suspended"]
    body = [[r[0], _num(r[k["active_subscribers"]]), _num(r[k["flagged_cards"]]),
             _num(r[k["confirmed_fraud_cards"]]), _num(r[k["fraud_involved_cards"]]),
             _num(r[k["fraud_per_10k"]]), interval_cell(r, k), _num(r[k["rigs"]]),
             _num(r[k["bulk_registered_cards"]]),
             human_s(r[k["first_activity_to_flag_median_s"]]),
             human_s(r[k["flag_to_request_median_s"]]), _pct(r[k["requests_within_share"]]),
             _num(r[k["reverified"]]), _num(r[k["suspended"]])] for r in t.rows[:22]]
    _table(fig, [0.04, 0.06, 0.92, 0.8], headers, body, widths=[0.13] + [0.067] * 13)
    return fig


def _lookups_coverage(plt, report: Report):
    fig = _page(plt, "Police lookups and data coverage",
                "lookups as the audit log holds them; which feeds delivered which days", report)
    lk = report.table("lookups")
    fig.text(0.04, 0.86, "Police lookups", fontsize=11, weight="bold", va="top")
    _table(fig, [0.04, 0.56, 0.44, 0.28], ["Outcome", "Reason", "Lookups", "Share"],
           [[r[0], r[1] or "", _num(r[2]), _pct(r[3])] for r in lk.rows],
           widths=[0.3, 0.4, 0.15, 0.15], left=2)
    fig.text(0.52, 0.86, "How to read", fontsize=11, weight="bold", va="top")
    _text_block(fig, 0.52, 0.82, _wrap_lines([lk.description], 70), size=8, color=MUTED)
    cov = report.table("coverage_feeds")
    fig.text(0.04, 0.5, "Feeds", fontsize=11, weight="bold", va="top")
    _table(fig, [0.04, 0.28, 0.92, 0.2],
           ["Feed", "Days with\nrecords", "Days without records", "Files\ntaken in",
            "Files rejected\nwhole", "Duplicate\nfiles", "Records\napplied", "Rows\nquarantined"],
           [[r[0], f"{r[1]} of {r[2]}", r[3] or "none", _num(r[4]), _num(r[5]), _num(r[6]),
             _num(r[7]), _num(r[8])] for r in cov.rows],
           widths=[0.12, 0.08, 0.32, 0.08, 0.1, 0.08, 0.1, 0.1], left=3)
    q = report.table("coverage_quarantine")
    fig.text(0.04, 0.22, "Quarantined rows by reason", fontsize=11, weight="bold", va="top")
    _table(fig, [0.04, 0.05, 0.6, 0.15], ["Feed", "Reason", "Rows"],
           [[r[0], r[1], _num(r[2])] for r in q.rows[:6]], widths=[0.2, 0.65, 0.15], left=2)
    return fig


def _definitions(plt, report: Report):
    fig = _page(plt, "Definitions", "what every number in this report counts", report)
    y = 0.87
    for term, meaning in report.definitions:
        fig.text(0.04, y, term, fontsize=8.5, weight="bold", va="top", color=INK)
        lines = textwrap.wrap(meaning, 120)
        y = _text_block(fig, 0.25, y, lines, size=8.5, step=0.022) - 0.008
    return fig


def _column_definitions(plt, report: Report):
    fig = _page(plt, "Definitions: columns of the carrier and region tables",
                "label [unit]: what is counted (the CSV's columns.csv and the XLSX sheets hold "
                "the same for every table)", report)
    carriers = report.table("carriers")
    y = 0.87
    for c in carriers.columns:
        fig.text(0.04, y, c.label, fontsize=7.6, weight="bold", va="top", color=INK)
        fig.text(0.255, y, c.unit or "", fontsize=7, va="top", color=MUTED)
        lines = textwrap.wrap(c.definition, 128)
        y = _text_block(fig, 0.36, y, lines, size=7.6, step=0.0165) - 0.006
    return fig


def pdf_bytes(report: Report, top_channels: int = 20) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    # dated when the report was generated, not when it was drawn: the same report renders
    # to the same bytes wherever it is drawn (in the API's worker process or the CLI)
    with PdfPages(buf, metadata={"Title": f"goipwatch monthly report {report.month}",
                                 "Creator": "goipwatch report",
                                 "CreationDate": report.generated_at}) as pdf:
        for make in (_summary, _carriers, _timing, _trend,
                     lambda p, r: _channels(p, r, top_channels), _regions, _lookups_coverage,
                     _definitions, _column_definitions):
            fig = make(plt, report)
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def write_pdf(report: Report, path: Path, top_channels: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(report, top_channels))
    return path
