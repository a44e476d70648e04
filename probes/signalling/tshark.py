"""One TShark run per capture, its ``-T fields`` output parsed by pure functions.

``tshark -T fields`` is 10-50x faster than pyshark's PDML, and with ``-E occurrence=a`` it
prints every occurrence of a field: values of one field are joined by the aggregator, fields
by the separator. Both are ASCII control characters (US and RS) so that no SIP header or
Diameter string can contain them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = "\x1e"   # between fields
AGGREGATOR = "\x1f"  # between occurrences of one field

# TShark preferences (``-o name:value``) of a run; none by default (see capture.M3UA_DRAFT6).
DEFAULT_PREFS: tuple[str, ...] = ()

_INVALID_FIELDS = re.compile(r"Some fields aren't valid:\s*\n((?:\t\S+\n?)+)")
_CUT_SHORT = "appears to have been cut short"


class CaptureError(Exception):
    """A capture that cannot be read (or only partly); the message names the file."""


@dataclass(frozen=True, slots=True)
class Row:
    """One frame: every requested field's occurrences, in the order TShark met them."""

    values: tuple[tuple[str, ...], ...]
    index: dict[str, int] = field(compare=False)

    def all(self, name: str) -> tuple[str, ...]:
        i = self.index.get(name)
        return self.values[i] if i is not None else ()

    def first(self, name: str) -> str | None:
        v = self.all(name)
        return v[0] if v else None

    def has(self, name: str) -> bool:
        return bool(self.all(name))


def parse_fields_output(text: str, fields: Sequence[str]) -> list[Row]:
    """Rows of ``tshark -T fields`` output written with :data:`SEPARATOR`/:data:`AGGREGATOR`.

    A line with the wrong number of fields (a frame cut by the end of a damaged file) is
    dropped rather than misread.
    """
    index = {f: i for i, f in enumerate(fields)}
    rows = []
    for line in text.split("\n"):
        if not line:
            continue
        cols = line.rstrip("\r").split(SEPARATOR)
        if len(cols) != len(fields):
            continue
        rows.append(Row(tuple(tuple(c.split(AGGREGATOR)) if c else () for c in cols), index))
    return rows


def invalid_fields(stderr: str) -> list[str]:
    """Field names TShark refused (``Some fields aren't valid``): other versions rename some."""
    m = _INVALID_FIELDS.search(stderr)
    return [line.strip() for line in m.group(1).splitlines() if line.strip()] if m else []


def damage(stderr: str) -> str | None:
    """TShark's own words for a damaged or unreadable capture, or None when it read it all."""
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("tshark: ") and "Running as user" not in line:
            return line.removeprefix("tshark: ")
    return None


def command(path: Path, fields: Iterable[str], display_filter: str,
            prefs: Iterable[str] = DEFAULT_PREFS, tshark: str = "tshark") -> list[str]:
    cmd = [tshark, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields",
           "-E", f"separator={SEPARATOR}", "-E", f"aggregator={AGGREGATOR}",
           "-E", "occurrence=a", "-E", "quote=n"]
    for p in prefs:
        cmd += ["-o", p]
    for f in fields:
        cmd += ["-e", f]
    return cmd


@dataclass(frozen=True, slots=True)
class Dissection:
    rows: list[Row]
    error: str | None            # set when the file is damaged; rows hold what came before
    dropped_fields: tuple[str, ...] = ()


def dissect(path: Path, fields: Sequence[str], display_filter: str,
            prefs: Sequence[str] = DEFAULT_PREFS, tshark: str = "tshark") -> Dissection:
    """Run TShark once over ``path`` (twice if this TShark lacks some fields)."""
    exe = shutil.which(tshark)
    if exe is None:
        raise CaptureError(f"{path}: cannot dissect: {tshark} is not installed "
                           "(Debian: apt-get install tshark)")
    if not path.is_file():
        raise CaptureError(f"{path}: no such capture file")
    fields = list(fields)
    dropped: list[str] = []
    for _ in range(2):
        proc = subprocess.run(command(path, fields, display_filter, prefs, exe),
                              capture_output=True, text=True, errors="replace", check=False)
        bad = invalid_fields(proc.stderr)
        if not bad:
            break
        dropped += bad
        fields = [f for f in fields if f not in bad]
    rows = parse_fields_output(proc.stdout, fields)
    problem = damage(proc.stderr) if proc.returncode != 0 or _CUT_SHORT in proc.stderr else None
    if proc.returncode != 0 and problem is None:
        problem = f"tshark exited with status {proc.returncode}"
    if problem and not rows and _CUT_SHORT not in problem:
        raise CaptureError(f"{path}: {_strip_path(problem, path)}")
    return Dissection(rows, f"{path}: {_strip_path(problem, path)}" if problem else None,
                      tuple(dropped))


def _strip_path(message: str, path: Path) -> str:
    """TShark's message without its quoted file name: ours already starts with the path."""
    return re.sub(r'^The file ".*?" ', "", message)


FRAME_FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst")


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Where and when a frame was seen: what every protocol mapper needs besides its fields."""

    frame: int
    ts: float
    src: str | None
    dst: str | None

    @property
    def hosts(self) -> frozenset[str]:
        """The two ends, unordered: a request and its answer travel in opposite directions."""
        return frozenset(h for h in (self.src, self.dst) if h)

    @staticmethod
    def of(row: Row) -> FrameInfo | None:
        try:
            frame = int(row.first("frame.number") or "")
            ts = float(row.first("frame.time_epoch") or "")
        except ValueError:
            return None
        # The outermost addresses: IMS SIP inside GTP-U also has the UE's inner ones.
        src = row.first("ip.src") or row.first("ipv6.src")
        dst = row.first("ip.dst") or row.first("ipv6.dst")
        return FrameInfo(frame, ts, src, dst)
