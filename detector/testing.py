"""Helpers to build feeds in tests (shipped so that probe and plug-in authors can use them)."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from pathlib import Path

from detector.ids import luhn_check_digit
from probes.csvparse import CDR_FIELDS, REGISTRATION_FIELDS

T0 = 1_791_158_400  # 2026-10-05T00:00:00Z


def imei(n: int, tac: str = "35209900") -> str:
    body = f"{tac}{n:06d}"
    return body + str(luhn_check_digit(body))


def imsi(n: int, plmn: str = "46000") -> str:
    return f"{plmn}{n:010d}"


def msisdn(n: int) -> str:
    return f"86138{n:08d}"


@dataclass(frozen=True, slots=True)
class Row:
    record_type: str = "voice"
    direction: str = "MO"
    start_time: str = "2026-10-05T08:00:00Z"
    duration_s: str = "30"
    imsi: str = imsi(1)
    msisdn: str = msisdn(1)
    imei: str = imei(1)
    peer: str = "8613900000000"
    cell_id: str = "460-00-4097-1"
    result: str = "answered"


def at(seconds: int) -> str:
    from detector.records import iso
    return iso(T0 + seconds)


def write_cdr(path: Path, rows: list[Row] | list[tuple], header: tuple[str, ...] = CDR_FIELDS) -> Path:
    lines = [",".join(header)]
    lines += [",".join(astuple(r) if isinstance(r, Row) else r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_registrations(path: Path, rows: list[tuple[str, ...]], carrier: bool = False) -> Path:
    header = REGISTRATION_FIELDS + (("carrier",) if carrier else ())
    path.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n")
    return path
