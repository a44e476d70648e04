"""The console's server-side SVG and the rig summary: escaping, the time axis, cells outside
the rig left unnamed, empty data."""

from __future__ import annotations

from detector.console import charts
from detector.console.pages import summarise

HOUR = 1_790_000_000 // 3600


def test_timeline_places_marks_in_time_order_and_escapes_labels():
    svg = charts.timeline_svg([
        ("<b>sim</b>", [charts.Mark(HOUR * 3600, "raised", "raised <x>"),
                        charts.Mark(HOUR * 3600 + 7200, "confirmed", "confirmed by \"Li\""),
                        charts.Mark(HOUR * 3600 + 3600, "verification_requested", "request")])])
    assert "<b>" not in svg and "&lt;b&gt;sim&lt;/b&gt;" in svg and "raised &lt;x&gt;" in svg
    circles = [part for part in svg.split("<circle")[1:]]
    xs = [float(c.split('cx="')[1].split('"')[0]) for c in circles]
    assert xs[0] == charts.LABEL_W and xs[1] == charts.WIDTH - 20     # first and last event
    assert 'fill="#d9480f"' in circles[0] and 'fill="#2b8a3e"' in circles[1]
    assert svg.count("<path") == 1                                     # the verification diamond


def test_timeline_without_events_says_so():
    assert "No events" in charts.timeline_svg([("460001234560001", [])])


def test_cell_grid_colours_rig_cells_and_does_not_name_others():
    rows = [("a", [(HOUR, "460-00-1-1"), (HOUR - 1, "460-00-1-2"), (HOUR - 3, "460-00-9-9")]),
            ("b", [(HOUR, "460-00-1-1")])]
    svg = charts.cell_grid_svg(rows, ["460-00-1-1", "460-00-1-2"])
    assert "460-00-9-9" not in svg and "a cell outside the rig" in svg
    assert svg.count("<rect") == 4 + 3          # four hours with data, three legend swatches
    assert svg.count(f'fill="{charts.CELL_COLOURS[0]}"') == 3     # two cells and the legend
    assert svg.count(f'fill="{charts.ELSEWHERE}"') == 2


def test_cell_grid_keeps_the_newest_hours():
    rows = [("a", [(HOUR - h, "c") for h in range(100)])]
    svg = charts.cell_grid_svg(rows, ["c"], max_hours=48)
    assert svg.count("<rect") == 48 + 2
    assert "No hourly cell state" in charts.cell_grid_svg([("a", [])], ["c"])


def test_summary_of_a_rig():
    def flag(score, status, *reasons):
        return {"score": score, "status": status, "reasons": list(reasons)}

    s = summarise([flag(0.7, "confirmed", "b", "c"), flag(0.9, "open", "a", "b")])
    assert s == {"score": 0.9, "status": "open", "reasons": ["a", "b", "c"]}
    assert summarise([flag(0.7, "confirmed"), flag(0.9, "confirmed")])["status"] == "confirmed"
    assert summarise([flag(0.7, "confirmed"), flag(0.9, "dismissed")])["status"] == "mixed"


def test_each_timeline_names_its_clock():
    marks = [("a", [charts.Mark(HOUR * 3600, "raised", "raised")])]
    by_event, by_wall = charts.timeline_svg(marks, "event"), charts.timeline_svg(marks, "wall")
    assert charts.BASES["event"] in by_event and charts.BASES["wall"] not in by_event
    assert charts.BASES["wall"] in by_wall
    assert "wall-clock time" in charts.timeline_svg([("a", [])], "wall")
