"""Helpers to build feeds in tests (shipped so that probe and plug-in authors can use them)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from detector.ids import luhn_check_digit
from detector.records import CdrBatch
from probes.csvparse import CDR_FIELDS, REGISTRATION_FIELDS

T0 = 1_791_158_400  # 2026-10-05T00:00:00Z, the simulator's default start
START = T0 + 2 * 86400 + 9 * 3600  # after a 2-day world, in office hours (UTC)


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


def cdr_batch(rows) -> CdrBatch:
    """A batch from rows of (t, imsi, imei, cell, peer, direction, record_type, result,
    duration), with numeric codes (detector.records)."""
    rows = sorted(rows)
    cells = sorted({r[3] for r in rows})

    def col(i: int, dtype=np.int64) -> np.ndarray:
        return np.array([r[i] for r in rows], dtype)

    return CdrBatch(ts=col(0), imsi=col(1), imei=col(2),
                    cell=np.array([cells.index(r[3]) for r in rows], np.int32), peer=col(4),
                    direction=col(5, np.int8), record_type=col(6, np.int8), result=col(7, np.int8),
                    duration=col(8, np.int32), msisdn=col(1) % 10**11 + 8613000000000,
                    line=np.arange(len(rows)), cells=tuple(cells))


def gateway_rows(sims, devices, cell, hours=6, gap_s=70, rotate_s=1800, victim0=8613500000000):
    """Ports of a gateway calling fresh numbers back to back; SIMs rotate over the ports."""
    rows, victim = [], victim0
    for port, dev in enumerate(devices):
        for k in range(hours * 3600 // gap_s):
            t = START + k * gap_s + port * 7
            sim = sims[(port + (t - START) // rotate_s) % len(sims)]
            answered = k % 5 == 0
            rows.append((t, sim, dev, cell, victim, 0, 0, 0 if answered else 1, 20 if answered else 0))
            victim += 1
    return rows


def daemon_config(tmp: Path, dsn: str, model: Path, sections: str, log_level: str = "info") -> Path:
    """A daemon config file in ``tmp``: state there, the store at ``dsn``, ``model``, scoring at
    once when idle, and ``sections`` (probes, [ops], ...) as TOML."""
    cfg = tmp / f"goipwatch-{uuid.uuid4().hex[:6]}.toml"
    cfg.write_text(f"""
[daemon]
state_dir = {json.dumps(str(tmp / "state"))}
idle_score_s = 0.0
log_level = "{log_level}"
[store]
dsn = {json.dumps(dsn)}
[detector]
model = {json.dumps(str(model))}
{sections}""")
    return cfg


@asynccontextmanager
async def store_pool(dsn: str, seed: Callable[[object], Awaitable[None]] | None = None
                     ) -> AsyncIterator[object]:
    """A connection pool on the store at ``dsn``, migrated as the daemon's is, filled by
    ``await seed(pool)`` when given, and closed afterwards."""
    from detector.store import db

    pool = await db.connect(dsn)
    try:
        if seed is not None:
            await seed(pool)
        yield pool
    finally:
        await pool.close()
