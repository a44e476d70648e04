"""A probe's settings: one ``[[probes]]`` table of the configuration, validated.

The settings live beside the probes that read them, so that importing a probe does not
import the detector's model, scoring and store (scikit-learn, SciPy, asyncpg):
:mod:`detector.config` parses the tables into :class:`ProbeConfig` and says what is wrong in
one, naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probes.csvparse import CDR_FIELDS, REGISTRATION_FIELDS, REGISTRATION_OPTIONAL
from probes.kafka_config import KafkaConfig
from probes.schema import Layout

# probe type -> the canonical fields of its feed (a capture has none: TShark dissects it)
PROBE_TYPES = {"cdr_csv": CDR_FIELDS, "registrations_csv": REGISTRATION_FIELDS + REGISTRATION_OPTIONAL,
               "pcap": (), "kafka": CDR_FIELDS}


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    type: str                            # a key of PROBE_TYPES
    name: str
    files: tuple[Path, ...] = ()
    watch: Path | None = None
    settle_s: float = 2.0
    poll_s: float = 1.0
    ignore: tuple[str, ...] = ("*.tmp", "*.part", ".*")
    block_bytes: int = 32 << 20
    layout: Layout = Layout()
    kafka: KafkaConfig | None = None     # type kafka: [probes.kafka]
