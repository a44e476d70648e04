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
import tempfile
from collections.abc import Iterable, Iterator, Sequence
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
    """One frame: every requested field's occurrences, in the order TShark met them.

    ``columns`` holds TShark's text per field; occurrences are split out only when a mapper
    asks (most of the ~80 fields are empty or never read for a given frame)."""

    columns: tuple[str, ...]
    index: dict[str, int] = field(compare=False)

    def all(self, name: str) -> tuple[str, ...]:
        i = self.index.get(name)
        if i is None or not self.columns[i]:
            return ()
        return tuple(self.columns[i].split(AGGREGATOR))

    def first(self, name: str) -> str | None:
        i = self.index.get(name)
        return self.columns[i].partition(AGGREGATOR)[0] if i is not None and self.columns[i] else None

    def has(self, name: str) -> bool:
        i = self.index.get(name)
        return i is not None and bool(self.columns[i])


def parse_fields_output(text: str, fields: Sequence[str]) -> list[Row]:
    """Rows of ``tshark -T fields`` output written with :data:`SEPARATOR`/:data:`AGGREGATOR`.

    A line with the wrong number of fields (a frame cut by the end of a damaged file) is
    dropped rather than misread.
    """
    index = {f: i for i, f in enumerate(fields)}
    rows = (_row(line, index) for line in text.split("\n"))
    return [r for r in rows if r is not None]


def _row(line: str, index: dict[str, int]) -> Row | None:
    cols = line.rstrip("\r\n").split(SEPARATOR)
    return Row(tuple(cols), index) if len(cols) == len(index) and line.strip("\r\n") else None


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


class Dissection:
    """TShark's rows of ``path``, read while TShark still runs (so that a caller's Python
    work on them overlaps TShark's own on the other core). Iterate once; ``error`` (the
    file is damaged: the rows are those before the damage) and ``dropped_fields`` (fields
    this TShark does not know) are set when the iteration ends. A file that gives no row at
    all raises :class:`CaptureError` naming it."""

    def __init__(self, path: Path, fields: Sequence[str], display_filter: str,
                 prefs: Sequence[str] = DEFAULT_PREFS, tshark: str = "tshark") -> None:
        exe = shutil.which(tshark)
        if exe is None:
            raise CaptureError(f"{path}: cannot dissect: {tshark} is not installed "
                               "(Debian: apt-get install tshark)")
        if not path.is_file():
            raise CaptureError(f"{path}: no such capture file")
        self.path, self.fields, self.filter, self.prefs, self.exe = \
            path, list(fields), display_filter, list(prefs), exe
        self.error: str | None = None
        self.dropped_fields: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Row]:
        for _ in range(2):          # again without the fields this TShark refused
            rows = 0
            index = {f: i for i, f in enumerate(self.fields)}
            with tempfile.TemporaryFile("w+", errors="replace") as err:
                proc = subprocess.Popen(command(self.path, self.fields, self.filter, self.prefs,
                                                self.exe),
                                        stdout=subprocess.PIPE, stderr=err, text=True,
                                        errors="replace")
                try:
                    for line in proc.stdout:
                        row = _row(line, index)
                        if row is not None:
                            rows += 1
                            yield row
                finally:
                    proc.stdout.close()
                    returncode = proc.wait()
                err.seek(0)
                stderr = err.read()
            bad = invalid_fields(stderr)
            if not bad or rows:
                break
            self.dropped_fields += tuple(bad)
            self.fields = [f for f in self.fields if f not in bad]
        problem = damage(stderr) if returncode != 0 or _CUT_SHORT in stderr else None
        if returncode != 0 and problem is None:
            problem = f"tshark exited with status {returncode}"
        if problem and not rows and _CUT_SHORT not in problem:
            raise CaptureError(f"{self.path}: {_strip_path(problem, self.path)}")
        self.error = f"{self.path}: {_strip_path(problem, self.path)}" if problem else None


def dissect(path: Path, fields: Sequence[str], display_filter: str,
            prefs: Sequence[str] = DEFAULT_PREFS, tshark: str = "tshark") -> Dissection:
    """TShark over ``path``: an iterable of rows, read as TShark writes them."""
    return Dissection(path, fields, display_filter, prefs, tshark)


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
