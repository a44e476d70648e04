"""The command line as a user meets it: wrong inputs get one line naming what and where."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest

from detector.cli import main
from detector.testing import Row, write_cdr
from tests.inputs import REPO

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
    assert "3 input row(s) of 3 rejected" in err
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
