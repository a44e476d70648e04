"""``[probes.kafka]``: where a Kafka probe reads CDRs and how it authenticates.

Pure settings and validation (no Kafka library is imported here), so that a configuration
check needs no broker. Secrets never sit in the configuration: the SASL password and the TLS
key's passphrase come from a file (e.g. a systemd credential) or an environment variable,
and are read only when the consumer is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from detector.tomltable import expect_type
from probes.csvparse import CDR_FIELDS

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
STARTS = ("earliest", "latest")


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str = "goipwatch"
    # column names of the rows in a message, in order (a message carries no header; one
    # that does starts with exactly this line, which is skipped)
    columns: tuple[str, ...] = CDR_FIELDS
    start: str = "earliest"          # where a partition the store has no offset for starts
    batch_messages: int = 5000       # a micro-batch ends at this many messages,
    batch_bytes: int = 16 << 20      # ... this many bytes of message values,
    batch_s: float = 1.0             # ... or this long after its first message
    metadata_s: float = 30.0         # how often new partitions are looked for
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password_file: str = ""
    sasl_password_env: str = ""
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_key_password_file: str = ""
    ssl_key_password_env: str = ""

    @property
    def header(self) -> bytes:
        return ",".join(self.columns).encode()

    def client_settings(self) -> dict[str, str | int | bool]:
        """librdkafka settings, secrets included: pass them to the client, never log them."""
        out: dict[str, str | int | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,       # offsets live in the store's checkpoints
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.security_protocol.startswith("SASL"):
            out["sasl.mechanism"] = self.sasl_mechanism
            out["sasl.username"] = self.sasl_username
            out["sasl.password"] = _secret("sasl_password", self.sasl_password_file,
                                           self.sasl_password_env)
        for key, value in (("ssl.ca.location", self.ssl_ca_file),
                           ("ssl.certificate.location", self.ssl_cert_file),
                           ("ssl.key.location", self.ssl_key_file)):
            if value:
                out[key] = value
        if self.ssl_key_password_file or self.ssl_key_password_env:
            out["ssl.key.password"] = _secret("ssl_key_password", self.ssl_key_password_file,
                                              self.ssl_key_password_env)
        return out

    @classmethod
    def from_toml(cls, table: dict, where: str = "probes.kafka") -> KafkaConfig:
        """Validated settings from a parsed TOML table; ``ValueError`` names the key."""
        if not isinstance(table, dict):
            raise ValueError(f"{where}: must be a table")
        known = {f.name: f for f in fields(cls)}
        for key in ("sasl_password", "ssl_key_password"):
            if key in table:
                raise ValueError(f"{where}.{key}: secrets must not be in the configuration; "
                                 f"use {key}_file or {key}_env")
        values = {}
        for key, value in table.items():
            if key not in known:
                raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
            values[key] = expect_type(f"{where}.{key}", value, known[key].default
                                 if key not in ("bootstrap_servers", "topics") else
                                 ("" if key == "bootstrap_servers" else ()))
        for key in ("bootstrap_servers", "topics"):
            if not values.get(key):
                raise ValueError(f"{where}.{key}: required")
        out = cls(**values)
        out._check(where)
        return out

    def _check(self, where: str) -> None:
        if any(not t.strip() for t in self.topics):
            raise ValueError(f"{where}.topics: a topic name is empty")
        if not self.group_id:
            raise ValueError(f"{where}.group_id: must not be empty")
        if len(set(self.columns)) != len(self.columns) or not all(self.columns):
            raise ValueError(f"{where}.columns: names must be distinct and not empty")
        if self.start not in STARTS:
            raise ValueError(f"{where}.start: one of {', '.join(STARTS)}")
        for key in ("batch_messages", "batch_bytes"):
            if getattr(self, key) < 1:
                raise ValueError(f"{where}.{key}: must be at least 1")
        if not 0.01 <= self.batch_s <= 60:
            raise ValueError(f"{where}.batch_s: must be from 0.01 to 60 seconds")
        if self.metadata_s < 1:
            raise ValueError(f"{where}.metadata_s: must be at least 1 second")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"{where}.security_protocol: one of {', '.join(SECURITY_PROTOCOLS)}")
        sasl = self.security_protocol.startswith("SASL")
        if sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ValueError(f"{where}.sasl_mechanism: one of {', '.join(SASL_MECHANISMS)} "
                                 f"(security_protocol {self.security_protocol})")
            if not self.sasl_username:
                raise ValueError(f"{where}.sasl_username: required with {self.security_protocol}")
            if bool(self.sasl_password_file) == bool(self.sasl_password_env):
                raise ValueError(f"{where}: give exactly one of sasl_password_file and "
                                 f"sasl_password_env with {self.security_protocol}")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password_file \
                or self.sasl_password_env:
            raise ValueError(f"{where}.sasl_*: only with security_protocol SASL_PLAINTEXT or "
                             f"SASL_SSL")
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        ssl_keys = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password_file",
                    "ssl_key_password_env")
        if not tls and any(getattr(self, k) for k in ssl_keys):
            raise ValueError(f"{where}.ssl_*: only with security_protocol SSL or SASL_SSL")
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError(f"{where}: ssl_cert_file and ssl_key_file go together "
                             f"(a client certificate and its key)")
        if self.ssl_key_password_file and self.ssl_key_password_env:
            raise ValueError(f"{where}: give at most one of ssl_key_password_file and "
                             f"ssl_key_password_env")




def _secret(name: str, file: str, env: str) -> str:
    """A secret from its file or environment variable; errors name the key, not the value."""
    if file:
        try:
            value = Path(file).read_text().strip()
        except OSError as e:
            raise ValueError(f"probes.kafka.{name}_file {file}: {e.strerror or 'cannot read'}") \
                from None
        if not value:
            raise ValueError(f"probes.kafka.{name}_file {file}: the file is empty")
        return value
    value = os.environ.get(env, "").strip()
    if not value:
        raise ValueError(f"probes.kafka.{name}_env {env}: the environment variable is not set "
                         f"or empty")
    return value
