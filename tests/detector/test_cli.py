"""The command line as a user meets it: wrong inputs get one line naming what and where."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from detector.cli import main
from detector.testing import Row, write_cdr
from tests.inputs import REPO

MODEL = REPO / "models" / "goipwatch.skops"     # a few dozen rows are too few to fit one
TRACE = REPO / "tests" / "probes" / "signalling" / "traces" / "sip_invite_burst.pcap"


def test_a_directory_given_as_a_cdr_file_is_refused_with_what_to_give(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["score", "--cdr", str(tmp_path), "--out", str(tmp_path / "flags.csv")])
    assert e.value.code == 2
    assert f"{tmp_path} is a directory: name its files" in capsys.readouterr().err


def test_when_every_row_is_refused_the_reasons_are_kept_and_counted(tmp_path, capsys):
    cdr = write_cdr(tmp_path / "cdr.csv", [Row(imsi="8800"), Row(imsi="8801"),
                                           Row(duration_s="12.5")])
    out = tmp_path / "out" / "flags.csv"
    assert main(["score", "--cdr", str(cdr), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    rejected = (tmp_path / "out" / "flags.rejected.csv").read_text().splitlines()
    assert rejected[0] == "source,line,reason,raw" and len(rejected) == 4
    assert "3 input rows of 3 rejected" in err
    assert "imsi: … must be 15 digits (2)" in err and "duration_s: …" in err
    assert "no records" in err          # and then why nothing was scored


@pytest.mark.parametrize("content, says", [
    (b"", "an empty file"),
    (b"record_type,direction,start_time\nvoice,MO,2026-10-05T08:00:00Z\n",
     "header lacks column(s) duration_s"),
    (gzip.compress(b"record_type,direction\n"), "header lacks column(s) start_time"),
    (bytes(range(7, 200)), "neither a capture (pcap, pcapng) nor a CDR file (CSV, BER)"),
])
def test_inspect_says_what_is_wrong_with_a_file_that_is_no_capture(tmp_path, capsys, content, says):
    """A file that is not a capture is read as a CDR file (CSV or BER, plain or compressed):
    what keeps it from being one is said in one line."""
    f = tmp_path / "feed"
    f.write_bytes(content)
    assert main(["inspect", str(f)]) == 2
    err = capsys.readouterr().err
    assert "feed" in err and says in err


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; from detector.cli import main; "
                             "sys.exit(main(sys.argv[1:]))", *args], cwd=REPO,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.tshark
def test_a_reader_that_stops_early_ends_the_output_quietly():
    """``goipwatch inspect F | head``: the reader closes the pipe; no traceback, exit 0."""
    proc = _cli("inspect", "--jsonl", str(TRACE), stdout=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.tshark
def test_inspect_loads_no_part_of_the_detector_it_does_not_use(tmp_path):
    probe = ("import sys; from detector.cli import main; main(['inspect', sys.argv[1]]); "
             "heavy = [m for m in ('sklearn', 'scipy', 'skops', 'pyarrow', 'aiohttp', 'asyncpg', "
             "'detector.config', 'detector.pipeline') if m in sys.modules]; "
             "print('loaded:', heavy, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", probe, str(TRACE)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert "loaded: []" in out.stderr, out.stderr


# ---- feeds in their own layouts: score --config and check-feed ---------------------------

from tests.probes.feed_shapes import SHAPES, extract_registrations, msc_export, msisdn_extract  # noqa: E402


@pytest.mark.parametrize("make", SHAPES, ids=lambda m: m.__name__)
def test_score_reads_each_shape_through_the_configured_layout(tmp_path, capsys, make):
    shape = make()
    out = tmp_path / "flags.csv"
    extra = ["--subscribers", str(extract_registrations(tmp_path))] if shape.name == "extract" else []
    assert main(["score", "--config", str(shape.config_file(tmp_path)), "--cdr",
                 str(shape.write(tmp_path)), *extra, "--model", str(MODEL), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "imsi,msisdn,score,flagged_at,rig_id,reasons"
    rejected = (tmp_path / "flags.rejected.csv").read_text().splitlines()
    assert len(rejected) == 1 + len(shape.bad) + (1 if extra else 0)
    assert f"{len(shape.rows) - len(shape.bad)} records" in capsys.readouterr().err


def test_check_feed_counts_rows_names_reasons_with_lines_and_shows_canonical_rows(tmp_path, capsys):
    shape = msc_export()
    code = main(["check-feed", "--config", str(shape.config_file(tmp_path)), str(shape.write(tmp_path))])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{len(shape.rows)} rows: {len(shape.rows) - 4} map, 4 refused" in out
    assert "1 × record_type (Call_Type): … is not one of voice, sms, data (values such as 'FAX') — line 11" in out
    assert "1 × start_time (Charging_Tm): … does not match" in out and "— line 16" in out
    assert "pseudo IMSIs, MCC 999" in out and "rounded up to the next whole second" in out
    assert "LAC from column LOCATION" in out
    sample = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(sample) == 5 and sample[0]["line"] == 2 and sample[0]["pseudo_imsi"] == "msisdn"
    assert sample[0]["imsi"].startswith("999") and sample[0]["cell_id"] == "460-00-4097-31000"


def test_check_feed_exits_0_when_every_row_maps_and_picks_the_probe_by_the_header(tmp_path, capsys):
    shape = msisdn_extract()
    cfg = shape.config_file(tmp_path)
    subs = extract_registrations(tmp_path)
    subs.write_text("\n".join(subs.read_text().splitlines()[:-1]) + "\n")   # no bad row
    assert main(["check-feed", "--config", str(cfg), str(subs)]) == 0
    out = capsys.readouterr().out
    assert "registrations, read with the layout of 'subscribers' (registrations_csv)" in out
    assert "5 rows: 5 map, 0 refused" in out and '"carrier": "unknown (pseudo IMSI)"' in out
    assert main(["check-feed", "--config", str(cfg), "--probe", "nope", str(subs)]) == 2
    assert "no CSV or CDR probe is named 'nope' (they are: 'extract', 'subscribers')" in \
        capsys.readouterr().err


def test_check_feed_explains_all_rows_refused_for_one_reason(tmp_path, capsys):
    shape = msc_export()
    cfg = shape.config_file(tmp_path)
    cfg.write_text(shape.toml.replace('duration_rounding = "up"\n', ""))
    feed = tmp_path / "fractions.csv"
    feed.write_text(shape.header + "\n" + "\n".join(r for r in shape.rows if ",0," not in r
                                                    and "FAX" not in r and "x1" not in r
                                                    and "05/10" not in r and "-3.5" not in r) + "\n")
    assert main(["check-feed", "--config", str(cfg), str(feed)]) == 1
    out = capsys.readouterr().out
    assert "rows are refused, every one for the same reason: duration_s (Call_Duration): … is " \
           "not whole seconds from 0 to 86400 (values such as '0.00', '7.25'" in out
    assert "set layout.duration_rounding = 'up' or 'nearest'" in out


def test_check_feed_says_which_column_the_header_lacks_and_lists_the_header(tmp_path, capsys):
    shape = msc_export()
    cfg = shape.config_file(tmp_path)
    feed = tmp_path / "renamed.csv"
    feed.write_text(shape.header.replace("B_Num", "BNUM") + "\n" + "\n".join(shape.rows) + "\n")
    assert main(["check-feed", "--config", str(cfg), str(feed)]) == 2
    err = capsys.readouterr().err
    assert "the header lacks column(s) the layout names: probe 'msc' (cdr_csv) reads 'B_Num' " \
           "(layout.columns.b_number)" in err
    assert "The header's columns are: Call_Type, Charging_Tm, Call_Duration, A_Num, BNUM" in err


def test_a_constant_that_is_no_valid_value_stops_check_feed_naming_the_key(tmp_path, capsys):
    shape = msc_export()
    cfg = shape.config_file(tmp_path)
    cfg.write_text(shape.toml + '[probes.layout.constants]\nimei = "none"\n')
    assert main(["check-feed", "--config", str(cfg), str(shape.write(tmp_path))]) == 2
    assert "probes[0].layout.constants.imei: 'none' is not valid" in capsys.readouterr().err


def test_inspect_marks_pseudo_imsis(tmp_path, capsys):
    shape = msc_export()
    assert main(["inspect", "--config", str(shape.config_file(tmp_path)),
                 str(shape.write(tmp_path))]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert all(r["pseudo_imsi"] == "msisdn" for r in rows if "rejected" not in r)
    assert "IMSIs are pseudo IMSIs derived from the msisdn" in captured.err
