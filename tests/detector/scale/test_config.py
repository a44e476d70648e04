"""The [scale] table: defaults, validation naming the key, worker partition arguments."""

from pathlib import Path

import pytest

from detector import config
from detector.scale.commands import worker_partitions


def load(tmp_path: Path, text: str) -> config.Config:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return config.load(p)


def test_defaults_and_subjects(tmp_path):
    cfg = load(tmp_path, "[scale]\n")
    assert cfg.scale.partitions == 12 and cfg.scale.nats_url == "nats://127.0.0.1:4222"
    assert cfg.scale.subject(3) == "goipwatch.cdr.3"
    assert cfg.scale.summary_subject(3) == "goipwatch.sum.3"
    assert cfg.scale.durable(3) == "GOIPWATCH_p3"
    assert load(tmp_path, "").scale is None


@pytest.mark.parametrize("text, message", [
    ("[scale]\npartitions = 0\n", r"c.toml: scale.partitions: from 1 to 4096"),
    ("[scale]\npartitions = '12'\n", r"scale.partitions: must be an integer"),
    ("[scale]\nnats_url = 'http://x'\n", r"scale.nats_url: must start with nats://"),
    ("[scale]\nstream = 'a.b'\n", r"scale.stream: letters, digits"),
    ("[scale]\nsubject_prefix = 'a.>'\n", r"scale.subject_prefix: dot-separated"),
    ("[scale]\nduplicate_window_s = 1\n", r"scale.duplicate_window_s: at least 60"),
    ("[scale]\nfetch_batches = 1\n", r"scale.fetch_batches: unknown key"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(config.ConfigError, match=message):
        load(tmp_path, text)


def test_worker_partitions(tmp_path):
    cfg = load(tmp_path, "[scale]\npartitions = 6\n")
    assert worker_partitions(cfg, 1, 3, None) == (1, 4)
    assert worker_partitions(cfg, None, None, "0,2-3") == (0, 2, 3)
    with pytest.raises(config.ConfigError, match=r"--partitions: \[7\] not in 0..5"):
        worker_partitions(cfg, None, None, "7")
    with pytest.raises(config.ConfigError, match="give --partitions, or --index and --of"):
        worker_partitions(cfg, None, None, None)
    with pytest.raises(config.ConfigError, match=r"no \[scale\] section"):
        worker_partitions(load(tmp_path, ""), 0, 1, None)
