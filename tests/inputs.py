"""Where the tests find what the repository does not hold: the shared public captures and TShark.

The captures are found through one setting, ``GOIPWATCH_CAPTURES`` (default: ``captures`` in the
``shared`` folder beside the checkout, ``../shared/captures``). A test that needs them is marked
``@pytest.mark.captures``; one that needs TShark, ``@pytest.mark.tshark``. Where either is missing
the test is skipped with the reason, except under CI (the environment variable ``CI`` set), where
it fails: CI has both, and a silent skip there would hide a broken input.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURES = Path(os.environ.get("GOIPWATCH_CAPTURES") or REPO.parent / "shared" / "captures")


def missing(marker: str) -> str | None:
    """Why a test with ``marker`` cannot run here, or None when it can."""
    if marker == "captures" and not CAPTURES.is_dir():
        return f"the shared captures are not at {CAPTURES} (set GOIPWATCH_CAPTURES)"
    if marker == "tshark" and shutil.which("tshark") is None:
        return "tshark is not installed (Debian package tshark)"
    return None
