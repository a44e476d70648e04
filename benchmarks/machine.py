"""What a benchmark ran on: CPU model, cores, memory and versions, printed with its figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine(**versions: str) -> dict:
    """The machine, plus the versions the caller names (``numpy=np.__version__``, ...)."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), **versions}
