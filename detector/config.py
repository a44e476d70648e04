"""Configuration: one TOML file → frozen, validated settings.

Every key is documented in config/goipwatch.toml. Unknown keys, wrong types and bad values
raise :class:`ConfigError` naming the file and the key, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detector import ids
from detector.features.engine import FeatureEngine
from detector.pipeline import SCORING_INTERVAL_S
from detector.rigs.policy import RigPolicy
from detector.tomltable import expect_type
from detector.scoring import Policy
from detector.api.config import ApiConfig
from detector.ops import OpsConfig
from detector.report.config import ReportConfig
from detector.scale.config import ScaleConfig
from detector.verify.config import SenderConfig
from probes.csvparse import CDR_FIELDS, ISO_UTC, FeedError, Layout, check_header
from probes import schema
from probes.config import PROBE_TYPES, ProbeConfig   # ProbeConfig: also imported from here
from probes.kafka_config import KafkaConfig


class ConfigError(ValueError):
    """The configuration cannot be used; says which file, which key and why."""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    state_dir: Path = Path("/var/lib/goipwatch")
    flags_jsonl: str = "flags.jsonl"
    idle_score_s: float = 60.0
    log_level: str = "info"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    dsn: str = ""                 # empty: an embedded PostgreSQL in state_dir/pg
    dsn_file: str = ""            # a file holding the DSN (keeps passwords out of the config)
    pool_size: int = 4


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    lateness_s: int = 3600
    utc_offset_h: int = 8
    # senders of verification codes (number prefixes): China's 1069 SMS service range
    code_senders: tuple[str, ...] = ("1069",)
    # cell ids differing only in their MNC name one radio cell (RAN sharing)
    shared_cells: bool = True

    def engine(self) -> FeatureEngine:
        return FeatureEngine(lateness_s=self.lateness_s, utc_offset_h=self.utc_offset_h,
                             code_senders=self.code_senders, shared_cells=self.shared_cells)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    model: Path = Path("models/goipwatch.skops")
    scoring_interval_s: int = SCORING_INTERVAL_S
    policy: Policy = Policy()
    rigs: RigPolicy = RigPolicy()


@dataclass(frozen=True, slots=True)
class Config:
    source: str = "<defaults>"
    daemon: DaemonConfig = DaemonConfig()
    store: StoreConfig = StoreConfig()
    features: FeatureConfig = FeatureConfig()
    detector: DetectorConfig = DetectorConfig()
    probes: tuple[ProbeConfig, ...] = field(default_factory=tuple)
    verification: SenderConfig | None = None    # [verification]: line-verification requests
    api: ApiConfig | None = None                 # [api]: subscriber lookups, status callbacks
    ops: OpsConfig | None = None                 # [ops]: /livez, /readyz, /metrics
    report: ReportConfig = ReportConfig()        # [report]: the monthly regulator report
    scale: ScaleConfig | None = None             # [scale]: publisher and workers over NATS JetStream

    def path(self, value: str | Path) -> Path:
        """A path from the config: relative ones are relative to the state directory."""
        p = Path(value)
        return p if p.is_absolute() else self.daemon.state_dir / p


def _section(where: str, data: Any, cls: type, base: Path, skip: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table")
    known = {f.name: f for f in fields(cls) if f.name not in skip}
    out = {}
    for key, value in data.items():
        if key in skip:
            continue
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        out[key] = _coerce(f"{where}.{key}", value, known[key].default, base)
    return out


def _coerce(where: str, value: Any, default: Any, base: Path) -> Any:
    path = isinstance(default, (Path, type(None)))     # a path, relative to the config file
    try:
        value = expect_type(where, value, "" if path else default)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if path:
        return base / value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{where}: must not be negative")
    return value


_LAYOUT_KEYS = ("columns", "values", "constants", "derive", "subscriber_key", "timestamp_format",
                "timezone", "duration_unit", "duration_rounding", "cell_format", "plmn")
_CDR_ONLY = ("derive", "duration_unit", "duration_rounding", "cell_format", "plmn")
_VALUE_MAPS = {"record_type": ("voice", "sms", "data"), "direction": ("MO", "MT"),
               "result": ("answered", "unanswered", "busy", "failed", "delivered", "ok")}

_RESULTS_OF = {"voice": ("answered", "unanswered", "busy", "failed"), "sms": ("delivered", "failed"),
               "data": ("ok",)}


def _layout(where: str, data: Any, probe_type: str) -> Layout:
    """A probe's [probes.layout] table (config/goipwatch.toml documents every key)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a table")
    cdr = probe_type in ("cdr_csv", "kafka")
    for key in data:
        if key not in _LAYOUT_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(_LAYOUT_KEYS))})")
        if key in _CDR_ONLY and not cdr:
            raise ConfigError(f"{where}.{key}: only a CDR feed (cdr_csv, kafka) takes it")
    canonical = PROBE_TYPES[probe_type]
    sources = schema.CDR_SOURCES if cdr else schema.REGISTRATION_SOURCES

    def choice(key: str, options, default: str) -> str:
        value = data.get(key, default)
        if value not in options:
            raise ConfigError(f"{where}.{key}: one of {', '.join(map(repr, options))}, not {value!r}")
        return value

    def table(key: str) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{where}.{key}: must be a table")
        return value

    columns = table("columns")
    for key, value in columns.items():
        if key not in canonical + sources:
            raise ConfigError(f"{where}.columns.{key}: not a field of {probe_type} "
                              f"({', '.join(canonical + sources)})")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.columns.{key}: must be a column name")
    key = choice("subscriber_key", schema.SUBSCRIBER_KEYS, "imsi")
    derive = data.get("derive", [])
    if not isinstance(derive, list) or not all(d in schema.CDR_DERIVED for d in derive):
        raise ConfigError(f"{where}.derive: a list of {', '.join(schema.CDR_DERIVED)}")
    constants = table("constants")
    allowed = schema.CDR_CONSTANTS if cdr else schema.REGISTRATION_CONSTANTS
    draft = Layout(subscriber_key=key)
    for name, value in constants.items():
        if name not in allowed:
            raise ConfigError(f"{where}.constants.{name}: not a field a constant can give "
                              f"({', '.join(allowed)})")
        if not isinstance(value, str):
            raise ConfigError(f"{where}.constants.{name}: must be a string")
        if (why := schema.constant_problem(name, value, draft)) is not None:
            raise ConfigError(f"{where}.constants.{name}: {value!r} {why}")
    rtype, result = constants.get("record_type"), constants.get("result")
    if rtype and result and result not in _RESULTS_OF[rtype]:
        raise ConfigError(f"{where}.constants.result: {result!r} is not a result of "
                          f"{rtype} records ({', '.join(_RESULTS_OF[rtype])})")
    twice = [f for f in canonical if (f in columns) + (f in constants) + (f in derive) > 1]
    if twice:
        raise ConfigError(f"{where}: {twice[0]} is given more than once (a field comes from one "
                          "of columns, constants and derive)")
    _check_subscriber(where, key, columns)
    _check_parties(where, columns, constants, derive)
    values = table("values")
    for name, mapping in values.items():
        if name not in _VALUE_MAPS or not cdr:
            raise ConfigError(f"{where}.values.{name}: only record_type, direction and result "
                              "of cdr_csv take value maps")
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ConfigError(f"{where}.values.{name}: must map feed values to canonical ones")
        bad = [v for v in mapping.values() if v not in _VALUE_MAPS[name]]
        if bad:
            raise ConfigError(f"{where}.values.{name}: {bad[0]!r} is not a {name} "
                              f"({', '.join(_VALUE_MAPS[name])})")
        if name in constants or name in derive:
            raise ConfigError(f"{where}.values.{name}: {name} is not read from a column")
    tz = data.get("timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as e:
        raise ConfigError(f"{where}.timezone: unknown time zone {tz!r}") from e
    fmt = data.get("timestamp_format", ISO_UTC)
    if not isinstance(fmt, str) or ("%" not in fmt and fmt not in schema.EPOCH_FORMATS):
        raise ConfigError(f"{where}.timestamp_format: must be a strptime format like "
                          "'%Y-%m-%d %H:%M:%S', or epoch_s or epoch_ms")
    cell_format = choice("cell_format", schema.CELL_FORMATS, "canonical")
    plmn = _plmn(where, data.get("plmn", ""), cell_format)
    if "lac" in columns and cell_format == "canonical":
        raise ConfigError(f"{where}.columns.lac: a LAC column goes with cell_format 'ci' or "
                          "'ecgi' (a canonical cell holds its LAC)")
    return Layout(columns=dict(columns), values={k: dict(v) for k, v in values.items()},
                  timestamp_format=fmt, timezone=tz, constants=dict(constants),
                  derive=tuple(derive), subscriber_key=key,
                  duration_unit=choice("duration_unit", tuple(schema.DURATION_UNITS), "s"),
                  duration_rounding=choice("duration_rounding", schema.DURATION_ROUNDING, "none"),
                  cell_format=cell_format, plmn=plmn)


def _check_subscriber(where: str, key: str, columns: dict) -> None:
    if key != "imsi" and "imsi" in columns:
        raise ConfigError(f"{where}.columns.imsi: with subscriber_key = {key!r} the IMSI is "
                          "derived (a pseudo IMSI), not read")
    if key == "id" and "subscriber_id" not in columns:
        raise ConfigError(f"{where}.subscriber_key: 'id' reads the column named by "
                          "columns.subscriber_id, which is not given")
    if key != "id" and "subscriber_id" in columns:
        raise ConfigError(f"{where}.columns.subscriber_id: read only with subscriber_key = 'id'")


def _check_parties(where: str, columns: dict, constants: dict, derive: list) -> None:
    """A and B numbers: the peer is the party that is not the subscriber, and either the
    direction tells which party the subscriber is, or the subscriber's number does."""
    a, b = "a_number" in columns, "b_number" in columns
    if a != b:
        raise ConfigError(f"{where}.columns.{'b_number' if a else 'a_number'}: a_number and "
                          "b_number go together (the calling and the called number)")
    by_parties = [d for d in derive if d in ("direction", "msisdn")]
    if not a:
        if by_parties:
            raise ConfigError(f"{where}.derive: {by_parties[0]} is derived from the A and B "
                              "numbers: give columns.a_number and columns.b_number")
        return
    if len(by_parties) != 1:
        raise ConfigError(f"{where}.derive: with A and B numbers, derive either direction (from "
                          "the subscriber's msisdn column) or msisdn (from the direction)")
    if "peer" in columns or "peer" in constants:
        raise ConfigError(f"{where}.columns.peer: with A and B numbers the peer is the other party")
    if by_parties == ["direction"] and "msisdn" in constants:
        raise ConfigError(f"{where}.constants.msisdn: deriving the direction compares the "
                          "subscriber's msisdn column with A and B")


def _plmn(where: str, value: Any, cell_format: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}.plmn: must be a string like '460-00'")
    if value:
        try:
            ids.canonical_cell(f"{value}-0-0")
        except ids.InvalidIdentifier as e:
            raise ConfigError(f"{where}.plmn: {value!r} is not MCC-MNC ({e.why})") from None
    if cell_format == "ci" and not value:
        raise ConfigError(f"{where}.plmn: cell_format 'ci' needs the PLMN of the cells "
                          "(MCC-MNC, e.g. '460-00')")
    if value and cell_format == "canonical":
        raise ConfigError(f"{where}.plmn: used with cell_format 'ci' or 'ecgi' only")
    return value


def parse(data: dict, source: str = "<config>", base: Path = Path(".")) -> Config:
    top = {"daemon", "store", "features", "detector", "probes", "verification", "api", "ops",
           "report", "scale"}
    for key in data:
        if key not in top:
            raise ConfigError(f"{source}: unknown section [{key}] (known: {', '.join(sorted(top))})")
    daemon = DaemonConfig(**_section(f"{source}: daemon", data.get("daemon", {}), DaemonConfig, base))
    if daemon.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: daemon.log_level: one of debug, info, warning, error")
    store = StoreConfig(**_section(f"{source}: store", data.get("store", {}), StoreConfig, base))
    feats = FeatureConfig(**_section(f"{source}: features", data.get("features", {}), FeatureConfig, base))
    if feats.lateness_s >= 86_400:
        raise ConfigError(f"{source}: features.lateness_s: must be less than 86400 (the 24 h window)")
    if not -12 <= feats.utc_offset_h <= 14:
        raise ConfigError(f"{source}: features.utc_offset_h: must be from -12 to 14")
    bad = [p for p in feats.code_senders if not (p.isdigit() and 1 <= len(p) <= 15)]
    if bad:
        raise ConfigError(f"{source}: features.code_senders: {bad[0]!r} is not a number prefix")
    det_raw = dict(data.get("detector", {}))
    # the policies' knobs sit flat in [detector], beside its own keys
    nested = {"policy": Policy, "rigs": RigPolicy}
    taken = {name: {k: det_raw.pop(k) for k in list(det_raw) if k in {f.name for f in fields(cls)}}
             for name, cls in nested.items()}
    det = _section(f"{source}: detector", det_raw, DetectorConfig, base, skip=tuple(nested))
    for name, cls in nested.items():
        try:
            det[name] = cls(**_section(f"{source}: detector", taken[name], cls, base))
        except ConfigError:
            raise                      # names its key already
        except ValueError as e:
            raise ConfigError(f"{source}: detector: {e}") from e
    if det.get("scoring_interval_s", SCORING_INTERVAL_S) < 60:
        raise ConfigError(f"{source}: detector.scoring_interval_s: at least 60")
    probes = []
    raw_probes = data.get("probes", [])
    if not isinstance(raw_probes, list):
        raise ConfigError(f"{source}: probes: must be an array of tables ([[probes]])")
    names = set()
    for i, raw in enumerate(raw_probes):
        where = f"{source}: probes[{i}]"
        if not isinstance(raw, dict) or raw.get("type") not in PROBE_TYPES:
            raise ConfigError(f"{where}.type: one of {', '.join(PROBE_TYPES)}")
        values = _section(where, raw, ProbeConfig, base, skip=("layout", "files", "kafka"))
        files = raw.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ConfigError(f"{where}.files: must be a list of paths")
        values["files"] = tuple(base / f for f in files)
        if raw["type"] == "pcap" and "layout" in raw:
            raise ConfigError(f"{where}.layout: a pcap probe has no layout (TShark dissects it)")
        values["layout"] = _layout(f"{where}.layout", raw.get("layout", {}), raw["type"])
        values.setdefault("name", f"{raw['type']}-{i}")
        if values["name"] in names:
            raise ConfigError(f"{where}.name: {values['name']!r} is used twice")
        names.add(values["name"])
        if raw["type"] == "kafka":
            values["kafka"] = _kafka(where, raw, values["layout"])
        elif "kafka" in raw:
            raise ConfigError(f"{where}.kafka: only a probe of type kafka reads Kafka")
        elif not values["files"] and values.get("watch") is None:
            raise ConfigError(f"{where}: give 'files' or a 'watch' directory")
        probes.append(ProbeConfig(**values))
    return Config(source=source, daemon=daemon, store=store, features=feats,
                  detector=DetectorConfig(**det), probes=tuple(probes),
                  verification=_optional(data, "verification", SenderConfig, source),
                  api=_optional(data, "api", ApiConfig, source),
                  ops=_optional(data, "ops", OpsConfig, source),
                  report=_optional(data, "report", ReportConfig, source) or ReportConfig(),
                  scale=_optional(data, "scale", ScaleConfig, source))


def _kafka(where: str, raw: dict, layout: Layout) -> KafkaConfig:
    """A kafka probe's [probes.kafka] table; its rows' columns must cover the layout."""
    if raw.get("files") or raw.get("watch") is not None:
        raise ConfigError(f"{where}: a kafka probe reads topics, not 'files' or 'watch'")
    if "kafka" not in raw:
        raise ConfigError(f"{where}.kafka: a probe of type kafka needs a [probes.kafka] table")
    try:
        kafka = KafkaConfig.from_toml(raw["kafka"], f"{where}.kafka")
        check_header(list(kafka.columns), layout, CDR_FIELDS, f"{where}.kafka.columns")
    except (ValueError, FeedError) as e:
        raise ConfigError(str(e)) from e
    return kafka


def _optional(data: dict, key: str, cls, source: str):
    """A section whose type validates itself (``from_toml``), or None when absent."""
    if key not in data:
        return None
    try:
        return cls.from_toml(data[key], f"{source}: {key}")
    except ValueError as e:
        raise ConfigError(str(e)) from e


def load(path: Path) -> Config:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such configuration file") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return parse(data, str(path), path.parent)
