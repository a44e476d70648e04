"""``[verification]``: where and how line-verification requests are sent.

The shared secret never sits in the configuration: ``secret_file`` names a file holding it
(e.g. a systemd credential) or ``secret_env`` an environment variable; exactly one of them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from detector.verify.policy import ActionPolicy

MIN_SECRET_BYTES = 16


@dataclass(frozen=True, slots=True)
class SenderConfig:
    url: str
    secret_file: str = ""
    secret_env: str = ""
    timeout_s: float = 10.0          # one POST, connect to last byte
    max_attempts: int = 40           # then the request is a dead letter (~18 min of retries)
    backoff_base_s: float = 2.0      # retry n waits uniform(0, min(cap, base * 2**(n-1)))
    backoff_cap_s: float = 60.0
    suppress_s: float = 86400.0      # no second request per line and action within this
    poll_s: float = 1.0              # how often an idle sender looks for due requests
    concurrency: int = 4             # requests in flight
    police_lead_min_sims: int = 10   # rigs this large also get a police lead
    suspend_min_sims: int = 3        # members of rigs this large (with evidence) are suspended
    max_skew_s: float = 300.0        # status callbacks: accepted timestamp skew

    @property
    def policy(self) -> ActionPolicy:
        return ActionPolicy(suspend_min_sims=self.suspend_min_sims,
                            police_lead_min_sims=self.police_lead_min_sims,
                            suppress_s=self.suppress_s)

    @property
    def lease_s(self) -> float:
        """How long a claimed request stays claimed: past it, a crashed sender's request is
        due again."""
        return self.timeout_s + 30.0

    def load_secret(self) -> bytes:
        """The shared secret, from the file or environment variable configured."""
        if self.secret_file:
            try:
                raw = Path(self.secret_file).read_bytes().strip()
            except OSError as e:
                raise ValueError(f"verification.secret_file {self.secret_file}: "
                                 f"{e.strerror or 'cannot read'}") from None
            where = f"verification.secret_file {self.secret_file}"
        else:
            raw = os.environ.get(self.secret_env, "").strip().encode()
            where = f"verification.secret_env {self.secret_env}"
            if not raw:
                raise ValueError(f"{where}: the environment variable is not set or empty")
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(f"{where}: the secret must be at least {MIN_SECRET_BYTES} bytes")
        return raw

    @classmethod
    def from_toml(cls, table: dict, where: str = "[verification]") -> SenderConfig:
        """Validated settings from a parsed TOML table; ``ValueError`` names the key."""
        if not isinstance(table, dict):
            raise ValueError(f"{where}: must be a table")
        if "secret" in table:
            raise ValueError(f"{where}: secret must not be in the configuration; use secret_file "
                             f"or secret_env")
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
        url = table.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError(f"{where}: url is required (the platform's request endpoint)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: url must be an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError(f"{where}: url must not carry credentials")
        secret_file, secret_env = table.get("secret_file", ""), table.get("secret_env", "")
        for key, v in (("secret_file", secret_file), ("secret_env", secret_env)):
            if not isinstance(v, str):
                raise ValueError(f"{where}: {key} must be a string")
        if bool(secret_file) == bool(secret_env):
            raise ValueError(f"{where}: set exactly one of secret_file or secret_env "
                             f"(the shared secret is never in the configuration)")
        kw: dict = {"url": url, "secret_file": secret_file, "secret_env": secret_env}

        def number(key: str, lo: float, integer: bool = False, hi: float = math.inf) -> None:
            if key not in table:
                return
            v = table[key]
            ok = isinstance(v, int) if integer else isinstance(v, int | float)
            if isinstance(v, bool) or not ok or not math.isfinite(v):
                kind = "an integer" if integer else "a number"
                raise ValueError(f"{where}: {key} must be {kind}")
            if not lo <= v <= hi:
                bound = f"between {lo} and {hi}" if hi != math.inf else f"at least {lo}"
                raise ValueError(f"{where}: {key} must be {bound}")
            kw[key] = v

        number("timeout_s", 0.05, hi=600)
        number("max_attempts", 1, integer=True, hi=1000)
        number("backoff_base_s", 0.001, hi=3600)
        number("backoff_cap_s", 0.001, hi=86400)
        number("suppress_s", 0, hi=365 * 86400)
        number("poll_s", 0.01, hi=600)
        number("concurrency", 1, integer=True, hi=256)
        number("police_lead_min_sims", 2, integer=True)
        number("suspend_min_sims", 2, integer=True)
        number("max_skew_s", 1, hi=3600)
        cfg = cls(**kw)
        if cfg.backoff_cap_s < cfg.backoff_base_s:
            raise ValueError(f"{where}: backoff_cap_s must not be below backoff_base_s")
        return cfg
