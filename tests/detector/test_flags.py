"""Flags and rigs as records: what the store, verification and the APIs name."""

import dataclasses
import subprocess
import sys

import pytest

from detector.flags import Flag, Rig
from detector.records import iso


def test_naming_a_flag_or_a_rig_loads_no_numerical_code():
    code = ("import sys, detector.flags; "
            "print(sorted(m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_rigs_summary_names_its_window_as_event_times_are_written_everywhere():
    rig = Rig("rig-0011223344", {"460000000000001", "460000000000002"}, {"35000000000001"}, {"460-00-1-1"},
              1_700_000_000, 1_700_003_600, {"cell": "3 machine-like SIMs", "devices": "2 SIMs rotate"})
    assert rig.summary() == (f"2 SIMs; 1 device; 1 cell; active {iso(1_700_000_000)} .. {iso(1_700_003_600)}; "
                             "2 SIMs rotate; 3 machine-like SIMs")


@pytest.mark.parametrize("record, name", [(Flag("460000000000001", "8613800000000", 0.7, 100, ("why",)), "kind"),
                                          (Rig("rig-0011223344"), "last")])
def test_flags_and_rigs_are_frozen(record, name):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, name, 0)


def test_a_rigs_summary_counts_in_words():
    one = Rig("rig-1", {"460000000000001", "460000000000002"}, {"35000000000001"}, {"460-00-1-1"},
              0, 60)
    many = dataclasses.replace(one, devices={"35000000000001", "35000000000002"},
                               cells={"460-00-1-1", "460-00-1-2", "460-00-1-3"})
    assert one.summary().startswith("2 SIMs; 1 device; 1 cell; ")
    assert many.summary().startswith("2 SIMs; 2 devices; 3 cells; ")
    assert dataclasses.replace(one, devices=set(), cells=set()).summary().startswith("2 SIMs; active ")
