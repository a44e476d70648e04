"""Settings of the scale-out (the ``[scale]`` table of the configuration)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from detector.tomltable import typed_values

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})*")


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    nats_url: str = "nats://127.0.0.1:4222"
    stream: str = "GOIPWATCH"           # the JetStream stream (made on first use)
    subject_prefix: str = "goipwatch"   # subjects <prefix>.cdr.<partition> and <prefix>.sum.<partition>
    partitions: int = 12                # fixed per stream once made (recorded in the store)
    fetch_batch: int = 256              # messages a worker takes per partition per checkpoint
    duplicate_window_s: int = 7200      # JetStream de-duplication window (Nats-Msg-Id)
    ack_wait_s: int = 60                # a message not acked by then is delivered again
    # workers summarise every caller and their SIMs' contacts with other partitions' numbers,
    # so that the rig stage finds calling groups across partitions (docs/scaling.md: most of
    # the rig stage's input); false: calling groups within a partition only
    calling_groups: bool = True

    @classmethod
    def from_toml(cls, table: dict[str, Any], where: str = "scale") -> "ScaleConfig":
        values = typed_values(cls, table, where)
        cfg = cls(**values)
        cfg.check(where)
        return cfg

    def check(self, where: str = "scale") -> None:
        if not self.nats_url.startswith(("nats://", "tls://")):
            raise ValueError(f"{where}.nats_url: must start with nats:// or tls://")
        if not _NAME.fullmatch(self.stream):
            raise ValueError(f"{where}.stream: letters, digits, _ and - only (at most 64)")
        if not _PREFIX.fullmatch(self.subject_prefix):
            raise ValueError(f"{where}.subject_prefix: dot-separated tokens of letters, digits, _ and -")
        if not 1 <= self.partitions <= 4096:
            raise ValueError(f"{where}.partitions: from 1 to 4096")
        if not 1 <= self.fetch_batch <= 10_000:
            raise ValueError(f"{where}.fetch_batch: from 1 to 10000")
        if self.duplicate_window_s < 60:
            raise ValueError(f"{where}.duplicate_window_s: at least 60")
        if self.ack_wait_s < 5:
            raise ValueError(f"{where}.ack_wait_s: at least 5")

    def subject(self, partition: int) -> str:
        return f"{self.subject_prefix}.cdr.{partition}"

    def summary_subject(self, partition: int) -> str:
        return f"{self.subject_prefix}.sum.{partition}"

    def durable(self, partition: int) -> str:
        """The durable consumer of a partition: named after the partition, not the worker,
        so whichever worker owns the partition next continues it."""
        return f"{self.stream}_p{partition}"
