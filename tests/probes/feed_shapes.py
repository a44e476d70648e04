"""Three real-world feed shapes (docs/feeds.md), written small with a few bad rows, and the
layouts that read them: an MSC CSV export with fractional durations and A/B numbers, an
MSISDN-keyed extract (with its registrations) and an integer-cell call history."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from detector import config
from detector.testing import T0, imei

LOCAL = 8 * 3600          # Asia/Shanghai, where the MSC export writes local time


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    header: str
    rows: list[str]
    bad: dict[int, str]   # line -> what its reason says
    toml: str

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.name}.csv"
        path.write_text("\n".join([self.header, *self.rows]) + "\n")
        return path

    def config_file(self, directory: Path) -> Path:
        path = directory / f"{self.name}.toml"
        path.write_text(self.toml)
        return path

    def layout(self, probe: int = 0):
        return config.parse(tomllib.loads(self.toml)).probes[probe].layout


def _local(t: int) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(t + LOCAL, UTC).strftime("%Y-%m-%d %H:%M:%S")


def msc_export() -> Shape:
    kinds = ("MOC", "MTC", "SMSMO", "MOC", "SMSMT")
    rows = []
    for i in range(36):
        kind = kinds[i % 5]
        sub, other = f"88{i % 6:02d}", f"89{i:02d}"
        a, b = (sub, other) if kind in ("MOC", "SMSMO") else (other, sub)
        duration = "0" if kind.startswith("SMS") else f"{(i * 7) % 40 + (i % 3) * 0.25:.2f}"
        rows.append(f"{kind},{_local(T0 + 3600 + 60 * i)},{duration},{a},{b},{31000 + i % 4},"
                    f"{imei(i % 6)},{4097 + i % 2},N")
    rows.insert(4, f"MOC,{_local(T0)},-3.5,8800,8900,31000,{imei(0)},4097,N")
    rows.insert(9, f"FAX,{_local(T0)},1,8800,8900,31000,{imei(0)},4097,N")
    rows.insert(14, f"MOC,05/10/2026 08:00,1,8800,8900,31000,{imei(0)},4097,N")
    rows.insert(19, f"MOC,{_local(T0)},1,8800,8900,x1,{imei(0)},4097,N")
    return Shape(
        "msc", "Call_Type,Charging_Tm,Call_Duration,A_Num,B_Num,cell_id,IMEI,LOCATION,Roaming",
        rows, {6: "duration_s (Call_Duration): '-3.5'", 11: "record_type (Call_Type): 'FAX'",
               16: "start_time (Charging_Tm): '05/10/2026 08:00'", 21: "cell_id: 'x1'"},
        MSC_TOML)


MSC_TOML = """
[[probes]]
type = "cdr_csv"
name = "msc"
watch = "in"
[probes.layout]
timestamp_format = "%Y-%m-%d %H:%M:%S"
timezone = "Asia/Shanghai"
subscriber_key = "msisdn"
derive = ["msisdn", "result"]
duration_rounding = "up"
cell_format = "ci"
plmn = "460-00"
[probes.layout.columns]
record_type = "Call_Type"
direction = "Call_Type"
start_time = "Charging_Tm"
duration_s = "Call_Duration"
a_number = "A_Num"
b_number = "B_Num"
imei = "IMEI"
lac = "LOCATION"
[probes.layout.values]
record_type = { MOC = "voice", MTC = "voice", SMSMO = "sms", SMSMT = "sms" }
direction = { MOC = "MO", MTC = "MT", SMSMO = "MO", SMSMT = "MT" }
"""


def msisdn_extract() -> Shape:
    rows = []
    for i in range(30):
        served = f"+86138{i % 5:08d}"
        other = f"86139{i:08d}"
        mo = i % 3 != 1
        a, b = (served.lstrip("+"), other) if mo else (other, served.lstrip("+"))
        event = "SMS" if i % 4 == 3 else "CALL"
        dur = "0" if event == "SMS" else str((i * 1700) % 60000)
        ecgi = f"460-00-{12345600 + i % 3}" if i % 2 else str(12345600 + i % 3)
        rows.append(f"{served},{a},{b},{event},{(T0 + 3600 + 60 * i) * 1000},{dur},{ecgi},"
                    f"{4097 + i % 2},{imei(i % 5)[:14]}")
    rows.insert(3, f"+8613800000001,8613900000077,8613900000078,CALL,{T0 * 1000},5000,12345600,4097,")
    rows.insert(8, f"+8613800000001,8613800000001,8613900000078,CALL,{T0},5000,12345600,4097,")
    rows.insert(13, f"+8613800000001,8613800000001,8613900000078,CALL,{T0 * 1000},5000,460-00-999999999,4097,")
    return Shape(
        "extract", "served_msisdn,calling_number,called_number,event,start_ms,duration_ms,ecgi,tac,imei",
        rows, {5: "msisdn (served_msisdn): '+8613800000001' is neither",
               10: "start_time (start_ms): '1791158400' is not between",
               15: "cell_id (ecgi): '460-00-999999999'"},
        EXTRACT_TOML)


EXTRACT_TOML = """
[[probes]]
type = "cdr_csv"
name = "extract"
watch = "in"
[probes.layout]
timestamp_format = "epoch_ms"
subscriber_key = "msisdn"
derive = ["direction", "result"]
duration_unit = "ms"
duration_rounding = "nearest"
cell_format = "ecgi"
plmn = "460-00"
[probes.layout.columns]
msisdn = "served_msisdn"
a_number = "calling_number"
b_number = "called_number"
record_type = "event"
start_time = "start_ms"
duration_s = "duration_ms"
cell_id = "ecgi"
lac = "tac"
[probes.layout.values]
record_type = { CALL = "voice", SMS = "sms" }

[[probes]]
type = "registrations_csv"
name = "subscribers"
watch = "subs"
[probes.layout]
subscriber_key = "msisdn"
timestamp_format = "epoch_s"
[probes.layout.columns]
msisdn = "MSISDN"
activated_at = "opened"
[probes.layout.constants]
channel = "retail"
"""


def extract_registrations(directory: Path) -> Path:
    """Registrations of the extract's subscribers, keyed by MSISDN like its CDRs."""
    lines = ["MSISDN,iccid,opened,id_hash"]
    lines += [f"86138{i:08d},8986001{i:012d},{T0 - 86400 * (i + 1)},{'ab' * 10}{i:04d}"
              for i in range(5)]
    lines.append(f"not-a-number,8986001{9:012d},{T0},{'ab' * 12}")
    path = directory / "subs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def call_history() -> Shape:
    rows = []
    for i in range(30):
        device = 17 + i % 4
        rows.append(f"{device},{T0 + 3600 + 60 * i},{(i * 11) % 50 if i % 5 else 0},"
                    f"{'out' if i % 3 else 'in'},86139{i:08d},{20500 + i % 6},{i % 4}")
    rows.insert(2, f"17,{T0},10,sideways,8613900000001,20500,0")
    rows.insert(7, f",{T0},10,out,8613900000001,20500,0")
    rows.insert(12, f"18,{T0},10,out,8613900000001,cell9,0")
    return Shape(
        "history", "device_id,start_time,duration,in_or_out,other_number,cell_id,status_code",
        rows, {4: "direction (in_or_out): 'sideways'", 9: "subscriber_id (device_id): ''",
               14: "cell_id: 'cell9'"},
        HISTORY_TOML)


HISTORY_TOML = """
[[probes]]
type = "cdr_csv"
name = "history"
watch = "in"
[probes.layout]
timestamp_format = "epoch_s"
subscriber_key = "id"
derive = ["result"]
cell_format = "ci"
plmn = "460-01"
[probes.layout.columns]
subscriber_id = "device_id"
duration_s = "duration"
direction = "in_or_out"
peer = "other_number"
[probes.layout.constants]
record_type = "voice"
imei = ""
msisdn = ""
[probes.layout.values]
direction = { in = "MT", out = "MO" }
"""

SHAPES = (msc_export, msisdn_extract, call_history)
