"""One TShark run per capture, its ``-T fields`` output parsed by pure functions.

``tshark -T fields`` is 10-50x faster than pyshark's PDML, and with ``-E occurrence=a`` it
prints every occurrence of a field: values of one field are joined by the aggregator, fields
by the separator. Both are ASCII control characters (US and RS) so that no SIP header or
Diameter string can contain them.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

SEPARATOR = "\x1e"   # between fields
AGGREGATOR = "\x1f"  # between occurrences of one field

# TShark preferences (``-o name:value``) of a run; none by default (see capture.M3UA_DRAFT6).
DEFAULT_PREFS: tuple[str, ...] = ()

_INVALID_FIELDS = re.compile(r"Some fields aren't valid:\s*\n((?:\t\S+\n?)+)")
_CUT_SHORT = "appears to have been cut short"


class CaptureError(Exception):
    """A capture that cannot be read (or only partly); the message names the file."""


class Row(NamedTuple):
    """One frame: every requested field's occurrences, in the order TShark met them.

    ``columns`` holds TShark's text per field; occurrences are split out only when a mapper
    asks (most of the ~80 fields are empty or never read for a given frame). ``index`` (field
    name -> column) is the run's, shared by its rows. A named tuple: one is built per frame."""

    columns: Sequence[str]
    index: dict[str, int]

    def all(self, name: str) -> tuple[str, ...]:
        i = self.index.get(name)
        if i is None:
            return ()
        v = self.columns[i]
        return tuple(v.split(AGGREGATOR)) if v else ()

    def first(self, name: str) -> str | None:
        i = self.index.get(name)
        if i is None:
            return None
        v = self.columns[i]
        if not v:
            return None
        return v if AGGREGATOR not in v else v[:v.index(AGGREGATOR)]

    def has(self, name: str) -> bool:
        i = self.index.get(name)
        return i is not None and bool(self.columns[i])

    def firsts(self, names: tuple[str, ...]) -> list[str | None]:
        """:meth:`first` of each of ``names``, in one step (a mapper reads its fields so)."""
        index = self.index
        pick = index.picker(names) if isinstance(index, FieldIndex) else _picker(index, names)
        return [(v if AGGREGATOR not in v else v[:v.index(AGGREGATOR)]) if v else None
                for v in pick(self.columns)]


class FieldIndex(dict):
    """Field name -> column of one TShark run, with the column pickers built for it: a
    mapper's fields are picked from a row by one ``itemgetter`` call, not one look-up each."""

    __slots__ = ("_pickers",)

    def __init__(self, fields: Iterable[str]) -> None:
        super().__init__((f, i) for i, f in enumerate(fields))
        self._pickers: dict[tuple[str, ...], Callable] = {}

    def picker(self, names: tuple[str, ...]) -> Callable[[Sequence[str]], Sequence[str]]:
        if (pick := self._pickers.get(names)) is None:
            pick = self._pickers[names] = _picker(self, names)
        return pick


def _picker(index: dict[str, int], names: tuple[str, ...]) -> Callable[[Sequence[str]], Sequence[str]]:
    """The columns of ``names`` from a row's columns; "" for a field this run lacks."""
    positions = [index.get(n) for n in names]
    if None in positions or len(positions) < 2:
        return lambda columns: ["" if i is None else columns[i] for i in positions]
    return itemgetter(*positions)


def parse_fields_output(text: str, fields: Sequence[str]) -> list[Row]:
    """Rows of ``tshark -T fields`` output written with :data:`SEPARATOR`/:data:`AGGREGATOR`.

    A line with the wrong number of fields (a frame cut by the end of a damaged file) is
    dropped rather than misread.
    """
    index = FieldIndex(fields)
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
            index = FieldIndex(self.fields)
            n = len(index)
            with tempfile.TemporaryFile("w+", errors="replace") as err:
                proc = subprocess.Popen(command(self.path, self.fields, self.filter, self.prefs,
                                                self.exe),
                                        stdout=subprocess.PIPE, stderr=err, text=True,
                                        errors="replace", bufsize=PIPE_BYTES)
                _widen(proc.stdout)
                try:
                    for line in proc.stdout:  # _row(), inlined: this runs once per frame
                        cols = line.rstrip("\r\n").split(SEPARATOR)
                        if len(cols) == n and (n > 1 or cols[0]):
                            rows += 1
                            yield Row(cols, index)
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


# TShark and the mapping run side by side, each on a core when the machine has them free.
# A wide pipe lets either run ahead while the other waits for the CPU (a busy machine
# serialises them otherwise, 64 KiB at a time) and is read in few system calls.
PIPE_BYTES = 1 << 20


def _widen(pipe) -> None:
    """Grow the pipe to :data:`PIPE_BYTES` where the system allows (Linux; capped by
    /proc/sys/fs/pipe-max-size): a narrower pipe is slower, not wrong."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def dissect(path: Path, fields: Sequence[str], display_filter: str,
            prefs: Sequence[str] = DEFAULT_PREFS, tshark: str = "tshark") -> Dissection:
    """TShark over ``path``: an iterable of rows, read as TShark writes them."""
    return Dissection(path, fields, display_filter, prefs, tshark)


def _strip_path(message: str, path: Path) -> str:
    """TShark's message without its quoted file name: ours already starts with the path."""
    return re.sub(r'^The file ".*?" ', "", message)


FRAME_FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst")


class FrameInfo(NamedTuple):
    """Where and when a frame was seen: what every protocol mapper needs besides its fields.
    (A named tuple: one is built per frame.)"""

    frame: int
    ts: float
    src: str | None
    dst: str | None

    @property
    def hosts(self) -> frozenset[str]:
        """The two ends, unordered: a request and its answer travel in opposite directions."""
        return _hosts(self.src, self.dst)

    @staticmethod
    def of(row: Row) -> FrameInfo | None:
        frame, ts, src, dst, src6, dst6 = row.firsts(FRAME_FIELDS)
        try:
            frame = int(frame or "")
            ts = float(ts or "")
        except ValueError:
            return None
        # The outermost addresses: IMS SIP inside GTP-U also has the UE's inner ones.
        return FrameInfo(frame, ts, src or src6, dst or dst6)


@functools.lru_cache(maxsize=1 << 12)
def _hosts(src: str | None, dst: str | None) -> frozenset[str]:
    # One set per pair of ends, built once: every message between them is keyed by it.
    return frozenset(h for h in (src, dst) if h)
