"""Settings of the subscriber-lookup API (the ``[api]`` table of the configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.api.grounds import DEFAULT_CASE_REF, DEFAULT_LEGAL_BASES, GroundsPolicy, check_settings
from detector.tomltable import typed_values

DEFAULT_OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "goipwatch.yaml"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: str = ""              # server certificate chain (PEM); empty: plain HTTP
    tls_key: str = ""               # its private key (PEM)
    client_ca: str = ""             # CA bundle for client certificates (mutual TLS)
    require_client_cert: bool = False  # refuse the TLS handshake without a client certificate
    tokens_file: str = ""           # credentials: token hashes, clients, certificates (TOML)
    token_ttl_s: int = 900          # lifetime of tokens issued by POST /oauth/token
    rate_per_s: float = 5.0         # requests per second per client (token bucket refill)
    burst: int = 20                 # bucket size
    max_body_bytes: int = 16384
    max_subscribers: int = 50       # SIMs answered for one number (an IMEI may carry several)
    openapi: str = ""               # the OpenAPI description served; empty: the repository's
    console: bool = True            # the analysts' web console under /console (analyst clients)
    console_session_ttl_s: int = 28800  # a console login lasts this long (then log in again)
    credentials_poll_s: float = 1.0     # how often tokens_file is checked for a change
    failed_auth_per_min: float = 6.0    # failed authentications allowed per address / client
    failed_auth_burst: int = 10         # ... saved up (then: 429 too_many_failures)
    legal_bases: tuple[str, ...] = DEFAULT_LEGAL_BASES   # the grounds a lookup may state
    case_ref_pattern: str = DEFAULT_CASE_REF             # what a case reference looks like
    audit_anchor_file: str = ""         # the chain's head appended here (another volume)
    audit_anchor_interval_s: int = 300  # ... this often when it moved
    # the lookups audited lately are folded into the report's monthly counts this often
    # (detector/api/count_folding.py); 0: only when a report is made
    lookup_fold_interval_s: int = 15

    @classmethod
    def from_toml(cls, table: dict[str, Any], where: str = "api") -> "ApiConfig":
        """Validated settings from a parsed TOML table; ``ValueError`` names ``where.key``."""
        values = typed_values(cls, table, where)
        cfg = cls(**values)
        cfg._check(where)
        return cfg

    def _check(self, where: str) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{where}.{key}: {why}")

        if not self.host:
            raise bad("host", "must not be empty")
        if not 0 <= self.port <= 65535:
            raise bad("port", "must be 0..65535")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise bad("tls_key" if self.tls_cert else "tls_cert",
                      "tls_cert and tls_key go together")
        if self.client_ca and not self.tls_cert:
            raise bad("client_ca", "mutual TLS needs tls_cert and tls_key")
        if self.require_client_cert and not self.client_ca:
            raise bad("require_client_cert", "needs client_ca")
        if not self.tokens_file and not self.client_ca and self.enabled:
            raise bad("tokens_file", "the API needs credentials: tokens_file and/or client_ca")
        if not 60 <= self.token_ttl_s <= 86400:
            raise bad("token_ttl_s", "must be 60..86400 seconds")
        if not self.rate_per_s > 0:
            raise bad("rate_per_s", "must be > 0")
        if self.burst < 1:
            raise bad("burst", "must be at least 1")
        if not 256 <= self.max_body_bytes <= 1 << 20:
            raise bad("max_body_bytes", "must be 256..1048576")
        if not 1 <= self.max_subscribers <= 1000:
            raise bad("max_subscribers", "must be 1..1000")
        if not 300 <= self.console_session_ttl_s <= 86400:
            raise bad("console_session_ttl_s", "must be 300..86400 seconds")
        if not 0.1 <= self.credentials_poll_s <= 60:
            raise bad("credentials_poll_s", "must be 0.1..60 seconds")
        if not self.failed_auth_per_min > 0:
            raise bad("failed_auth_per_min", "must be > 0")
        if self.failed_auth_burst < 1:
            raise bad("failed_auth_burst", "must be at least 1")
        check_settings(self.legal_bases, self.case_ref_pattern, where)
        if not 10 <= self.audit_anchor_interval_s <= 86400:
            raise bad("audit_anchor_interval_s", "must be 10..86400 seconds")
        if not 0 <= self.lookup_fold_interval_s <= 3600:
            raise bad("lookup_fold_interval_s", "must be 0..3600 seconds (0: only with a report)")

    @property
    def grounds(self) -> GroundsPolicy:
        return GroundsPolicy(self.legal_bases, self.case_ref_pattern)

    @property
    def openapi_path(self) -> Path:
        return Path(self.openapi) if self.openapi else DEFAULT_OPENAPI
