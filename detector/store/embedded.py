"""The embedded default store: a private PostgreSQL server in the state directory.

Used when no DSN is configured, so that ``goipwatch demo`` and a first ``goipwatch run``
work on a fresh machine. The server comes from the ``pgserver`` package (PostgreSQL
binaries shipped in a wheel), listens on a Unix socket only, and stops with the process.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedStoreError(RuntimeError):
    pass


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._server = None

    def start(self) -> str:
        """Start (or attach to) the server; returns its DSN."""
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError as e:  # declared dependency; missing only in a broken install
                raise EmbeddedStoreError("no DSN configured and the 'pgserver' package is not "
                                         "installed: install it or set store.dsn") from e
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
            except Exception as e:
                raise EmbeddedStoreError(f"embedded PostgreSQL in {self.data_dir} did not start: "
                                         f"{e}") from e
        log.info("embedded PostgreSQL running", extra={"data_dir": str(self.data_dir)})
        return self._server.get_uri()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
