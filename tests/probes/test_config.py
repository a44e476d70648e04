import subprocess
import sys

import pytest

from detector import config as detector_config
from probes.config import PROBE_TYPES, ProbeConfig


@pytest.mark.parametrize("module", ["probes.config", "probes.files", "probes.kafka"])
def test_a_probe_imports_none_of_the_model_scoring_or_store(module):
    # a fresh interpreter: this one has the whole detector loaded already
    code = (f"import sys, {module}; print(' '.join(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('sklearn', 'scipy', 'skops', 'asyncpg', 'aiohttp') "
            "or m in ('detector.config', 'detector.pipeline', 'detector.model'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_the_detector_parses_probe_tables_into_the_probes_own_settings(tmp_path):
    cfg = detector_config.parse({"probes": [{"type": "cdr_csv", "files": ["a.csv"]}]},
                                base=tmp_path)
    assert type(cfg.probes[0]) is ProbeConfig
    assert cfg.probes[0] == ProbeConfig(type="cdr_csv", name="cdr_csv-0", files=(tmp_path / "a.csv",))
    assert detector_config.ProbeConfig is ProbeConfig
    assert detector_config.PROBE_TYPES is PROBE_TYPES
