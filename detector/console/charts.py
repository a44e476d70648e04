"""Inline SVG drawn on the server from the timeline and state data: a rig's activity per SIM
over time, and the grid of each member's most used cell per hour. Pure functions; every text
is escaped here, so the result can be put in a page as it is.

Activity runs on two clocks that are never drawn on one axis: flags are dated by the
**event time** of the records behind them (a replayed or backlogged month keeps its dates),
verdicts and verification by the **wall clock** (when they were recorded or reported). On one
axis a month replayed today would pile its flags at one end and its verdicts at the other;
each has its own chart, labelled with its clock (:data:`BASES`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

# marker colour of each kind of event (flag history, verdicts, verification)
EVENT_COLOURS = {"raised": "#d9480f", "rescored": "#f08c00", "confirmed": "#2b8a3e",
                 "confirm": "#2b8a3e", "dismissed": "#868e96", "dismiss": "#868e96",
                 "verification": "#1971c2"}
CELL_COLOURS = ("#4263eb", "#e8590c", "#2f9e44", "#ae3ec9", "#0c8599", "#f59f00", "#c2255c",
                "#5c940d")
ELSEWHERE = "#dee2e6"     # the SIM's top cell that hour is not one of the rig's cells
LABEL_W, ROW_H, WIDTH = 170, 24, 960
# time basis of an event (queries.sim_events_many's "time_basis") -> the axis' caption
BASES = {"event": "event time (UTC) of the records behind each flag",
         "wall": "wall-clock time (UTC) when the verdict or verification was recorded"}


@dataclass(frozen=True, slots=True)
class Mark:
    at: int            # epoch seconds
    kind: str          # raised, confirmed, dismissed, verification, ...
    title: str         # shown on hover


def event_colour(kind: str) -> str:
    if kind.startswith("verification"):
        return EVENT_COLOURS["verification"]
    return EVENT_COLOURS.get(kind, "#495057")


def _stamp(t: int, with_date: bool = True) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M" if with_date else "%H:%M")


def timeline_svg(rows: list[tuple[str, list[Mark]]], basis: str = "event") -> Markup:
    """One row per SIM (label, marks) on a shared time axis of one clock, ``basis`` (a key
    of :data:`BASES`), whose caption is drawn under the axis."""
    caption = BASES[basis]
    times = [m.at for _, marks in rows for m in marks]
    if not times:
        return Markup(f'<p class="muted">No events recorded for these SIMs '
                      f'({escape(caption.split(" (UTC)")[0])}).</p>')
    lo, hi = min(times), max(times)
    if hi - lo < 3600:
        lo, hi = lo - 1800, hi + 1800
    span = hi - lo
    plot_w = WIDTH - LABEL_W - 20
    height = 30 + ROW_H * len(rows) + 10 + 18

    def x(t: int) -> float:
        return LABEL_W + (t - lo) / span * plot_w

    out = [f'<svg class="chart" role="img" aria-label="activity per SIM over {escape(caption)}" '
           f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for i in range(6):
        t = lo + span * i // 5
        xi = x(t)
        out.append(f'<line x1="{xi:.1f}" y1="22" x2="{xi:.1f}" y2="{height - 26}" stroke="#e9ecef"/>')
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(f'<text x="{xi:.1f}" y="14" font-size="11" fill="#495057" '
                   f'text-anchor="{anchor}">{escape(_stamp(t))}</text>')
    for r, (label, marks) in enumerate(rows):
        y = 30 + r * ROW_H + ROW_H / 2
        out.append(f'<text x="4" y="{y + 4:.1f}" font-size="12" font-family="monospace" '
                   f'fill="#212529">{escape(label)}</text>')
        out.append(f'<line x1="{LABEL_W}" y1="{y:.1f}" x2="{WIDTH - 20}" y2="{y:.1f}" '
                   f'stroke="#ced4da"/>')
        for m in sorted(marks, key=lambda m: m.at):
            colour = event_colour(m.kind)
            title = f"<title>{escape(_stamp(m.at))} {escape(m.title)}</title>"
            if m.kind.startswith("verification"):
                cx = x(m.at)
                out.append(f'<path d="M{cx:.1f} {y - 7:.1f} l7 7 l-7 7 l-7 -7 z" '
                           f'fill="{colour}">{title}</path>')
            else:
                out.append(f'<circle cx="{x(m.at):.1f}" cy="{y:.1f}" r="6" fill="{colour}" '
                           f'stroke="#fff">{title}</circle>')
    out.append(f'<text class="axis-caption" x="{LABEL_W}" y="{height - 6}" font-size="11" '
               f'fill="#495057">{escape(caption)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def cell_grid_svg(rows: list[tuple[str, list[tuple[int, str]]]], rig_cells: list[str],
                  max_hours: int = 48) -> Markup:
    """Each SIM (row) by hour (column): the colour of its most used cell that hour when it
    is one of the rig's cells, grey when it is another cell, blank without data. ``rows``
    hold (label, [(epoch hour, cell id)]). Other cells are not named: the console shows an
    analyst the rig's cells, not where a subscriber went otherwise."""
    hours = sorted({h for _, cells in rows for h, _ in cells})
    if not hours:
        return Markup('<p class="muted">No hourly cell state is stored for these SIMs.</p>')
    last = hours[-1]
    first = max(hours[0], last - max_hours + 1)
    columns = list(range(first, last + 1))
    colour_of = {c: CELL_COLOURS[i % len(CELL_COLOURS)] for i, c in enumerate(rig_cells)}
    cw = max(8, min(22, (WIDTH - LABEL_W - 20) // len(columns)))
    legend_rows = (len(rig_cells) + 1 + 2) // 3
    height = 44 + ROW_H * len(rows) + 10 + 18 * legend_rows
    width = max(LABEL_W + cw * len(columns) + 20, LABEL_W + 3 * 230)   # room for the legend
    out = [f'<svg class="chart" role="img" aria-label="most used cell per SIM and hour" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    for i, h in enumerate(columns):
        t = h * 3600
        if i == 0 or t % 86400 == 0:
            out.append(f'<text x="{LABEL_W + i * cw}" y="12" font-size="11" fill="#495057">'
                       f'{escape(datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d"))}</text>')
        if i % 3 == 0:
            out.append(f'<text x="{LABEL_W + i * cw + cw / 2:.1f}" y="34" font-size="10" '
                       f'fill="#868e96" text-anchor="middle">{t // 3600 % 24:02d}</text>')
    for r, (label, cells) in enumerate(rows):
        y = 40 + r * ROW_H
        out.append(f'<text x="4" y="{y + ROW_H / 2 + 4:.1f}" font-size="12" '
                   f'font-family="monospace" fill="#212529">{escape(label)}</text>')
        by_hour = dict(cells)
        for i, h in enumerate(columns):
            cell = by_hour.get(h)
            if cell is None:
                continue
            colour = colour_of.get(cell, ELSEWHERE)
            name = cell if cell in colour_of else "a cell outside the rig"
            out.append(f'<rect x="{LABEL_W + i * cw + 1}" y="{y + 2}" width="{cw - 2}" '
                       f'height="{ROW_H - 4}" fill="{colour}"><title>'
                       f'{escape(_stamp(h * 3600))} {escape(name)}</title></rect>')
    ly = 44 + ROW_H * len(rows) + 10
    for i, (name, colour) in enumerate([*colour_of.items(), ("outside the rig", ELSEWHERE)]):
        lx, yy = LABEL_W + (i % 3) * 230, ly + (i // 3) * 18
        out.append(f'<rect x="{lx}" y="{yy}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{lx + 16}" y="{yy + 10}" font-size="11" fill="#212529">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    return Markup("".join(out))
