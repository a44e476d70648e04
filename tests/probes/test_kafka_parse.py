"""Kafka messages → CDR batches without a broker: rows of many messages parsed at once, bad
ones named by topic/partition@offset and line; the probe's settings validated."""

from dataclasses import astuple

import numpy as np
import pytest

from detector import config
from detector.testing import T0, Row, imsi
from probes.csvparse import CDR_FIELDS, Layout
from probes.kafka import Received, parse_messages
from probes.kafka_config import KafkaConfig

HEADER = list(CDR_FIELDS)


def csv(*rows: Row) -> bytes:
    return b"".join((",".join(astuple(r)) + "\n").encode() for r in rows)


def test_rows_of_many_messages_keep_their_message_and_line():
    msgs = [
        Received("cdr", 0, 10, csv(Row(), Row(imsi=imsi(2)))),
        Received("cdr", 0, 11, None),                                        # tombstone
        Received("cdr", 1, 7, (",".join(HEADER) + "\n").encode() + csv(Row(imsi="4600"), Row(imsi=imsi(3)))),
        Received("cdr", 1, 8, b"\xff\xfe not utf-8\n" + csv(Row(imsi=imsi(4))).rstrip(b"\n")),
        Received("cdr", 2, 0, ",".join(HEADER).encode()),                    # header only
        Received("cdr", 2, 1, b"voice,MO\n"),
    ]
    parsed, lines = parse_messages(msgs, HEADER, Layout())
    assert sorted(parsed.batch.imsi.tolist()) == sorted(int(imsi(n)) for n in (1, 2, 3, 4))
    where = sorted((r.source, r.line, r.reason.split(":")[0]) for r in parsed.rejected)
    assert where == [("cdr/0@11", 0, "empty message (no value)"),
                     ("cdr/1@7", 2, "imsi"),          # line 1 is the header it skipped
                     ("cdr/1@8", 1, "not UTF-8"),
                     ("cdr/2@0", 0, "message holds no rows"),
                     ("cdr/2@1", 1, "expected 10 fields, found 2")]
    # kept rows point back at their message too (late records are quarantined from these)
    kept = sorted(lines.locate(int(x)) for x in parsed.batch.line)
    assert kept == [("cdr/0@10", 1), ("cdr/0@10", 2), ("cdr/1@7", 3), ("cdr/1@8", 2)]


def test_a_layout_maps_feed_columns_and_values():
    cols = ["CALL_TYPE", "DIR", "START", "DUR", "IMSI", "MSISDN", "IMEI", "PEER", "CELL", "RESULT"]
    layout = Layout(columns=dict(zip(CDR_FIELDS, cols)), values={"record_type": {"MOC": "voice"}},
                    timestamp_format="%Y%m%d%H%M%S", timezone="Asia/Shanghai")
    row = Row(record_type="MOC", start_time="20261005160000")
    parsed, _ = parse_messages([Received("t", 0, 0, csv(row))], cols, layout)
    assert not parsed.rejected and parsed.batch.ts.tolist() == [T0 + 8 * 3600]   # 16:00 +08:00
    assert np.all(parsed.batch.record_type == 0)


def kafka_probe(extra: str) -> str:
    return f"""
[[probes]]
type = "kafka"
name = "k"
[probes.kafka]
bootstrap_servers = "broker:9093"
topics = ["cdr"]
{extra}
"""


@pytest.mark.parametrize("extra, message", [
    ("sasl_password = 'hunter2'", r"probes\[0\].kafka.sasl_password: secrets must not be in"),
    ("topic = 'cdr'", r"probes\[0\].kafka.topic: unknown key"),
    ("batch_s = 'fast'", r"probes\[0\].kafka.batch_s: expected float"),
    ("start = 'middle'", r"probes\[0\].kafka.start: one of earliest, latest"),
    ("security_protocol = 'SASL_SSL'\nsasl_mechanism = 'PLAIN'\nsasl_username = 'gw'",
     r"exactly one of sasl_password_file and sasl_password_env"),
    ("security_protocol = 'SASL_SSL'\nsasl_mechanism = 'GSSAPI'",
     r"probes\[0\].kafka.sasl_mechanism: one of PLAIN"),
    ("ssl_ca_file = '/etc/ca.pem'", r"probes\[0\].kafka.ssl_\*: only with security_protocol SSL"),
    ("columns = ['record_type', 'direction']", r"probes\[0\].kafka.columns: header lacks column\(s\) "
                                               r"start_time"),
    ("batch_messages = 0", r"probes\[0\].kafka.batch_messages: must be at least 1"),
])
def test_bad_kafka_settings_name_the_key(tmp_path, extra, message):
    p = tmp_path / "c.toml"
    p.write_text(kafka_probe(extra))
    with pytest.raises(config.ConfigError, match=message):
        config.load(p)


def test_a_kafka_probe_reads_no_files_and_needs_its_table(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[[probes]]\ntype = 'kafka'\nname = 'k'\n")
    with pytest.raises(config.ConfigError, match=r"probes\[0\].kafka: a probe of type kafka needs"):
        config.load(p)
    p.write_text(kafka_probe("").replace('name = "k"', 'name = "k"\nwatch = "d"'))
    with pytest.raises(config.ConfigError, match=r"probes\[0\]: a kafka probe reads topics, not"):
        config.load(p)


def test_secrets_come_from_files_or_the_environment_and_stay_out_of_the_config(tmp_path, monkeypatch):
    secret = tmp_path / "kafka-password"
    secret.write_text("correct horse battery staple\n")
    p = tmp_path / "c.toml"
    p.write_text(kafka_probe(f"""security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "goipwatch"
sasl_password_file = "{secret}"
ssl_ca_file = "/etc/goipwatch/kafka-ca.pem"
"""))
    kafka = config.load(p).probes[0].kafka
    assert "correct horse" not in repr(kafka)
    settings = kafka.client_settings()
    assert settings["sasl.password"] == "correct horse battery staple"
    assert settings["security.protocol"] == "sasl_ssl" and settings["enable.auto.commit"] is False
    by_env = KafkaConfig.from_toml({"bootstrap_servers": "b:9092", "topics": ["cdr"],
                                    "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                                    "sasl_username": "gw", "sasl_password_env": "GW_KAFKA_PW"})
    with pytest.raises(ValueError, match="sasl_password_env GW_KAFKA_PW: the environment variable is not set"):
        by_env.client_settings()
    monkeypatch.setenv("GW_KAFKA_PW", "from-the-environment")
    assert by_env.client_settings()["sasl.password"] == "from-the-environment"
