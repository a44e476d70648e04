from pathlib import Path

import pytest

from detector import config


def load(tmp_path: Path, text: str) -> config.Config:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return config.load(p)


def test_example_config_loads_and_paths_are_relative_to_it():
    example = Path(__file__).resolve().parents[2] / "config" / "goipwatch.toml"
    cfg = config.load(example)
    assert cfg.detector.model == example.parent / "../models/goipwatch.skops"
    assert [p.type for p in cfg.probes] == ["registrations_csv", "cdr_csv"]
    assert cfg.detector.policy.score_quantile == 0.995
    assert cfg.features.engine().shared_cells
    assert cfg.report.within_s == 180 and cfg.report.operator_type("Xiaomi Mobile") == \
        "virtual operator on China Unicom"


@pytest.mark.parametrize("text, message", [
    ("[daemon]\nstate_dirr = 'x'\n", r"c.toml: daemon.state_dirr: unknown key"),
    ("[demon]\n", r"unknown section \[demon\]"),
    ("[features]\nlateness_s = 'soon'\n", r"features.lateness_s: expected int"),
    ("[features]\nlateness_s = 90000\n", r"features.lateness_s: must be less than 86400"),
    ("[features]\nshared_cells = 'yes'\n", r"features.shared_cells: expected bool"),
    ("[detector]\nscore_quantile = 1.5\n", r"detector: score_quantile must be in"),
    ("[detector]\nmin_reasons = -1\n", r"^\S*c.toml: detector.min_reasons: must not be negative$"),
    ("[detector]\nabsence_after_s = -1\n", r"^\S*c.toml: detector.absence_after_s: must not be negative$"),
    ("[[probes]]\ntype = 'cdr_ftp'\n", r"probes\[0\].type: one of cdr_csv"),
    ("[[probes]]\ntype = 'cdr_csv'\n", r"probes\[0\]: give 'files' or a 'watch'"),
    ("[[probes]]\ntype = 'cdr_csv'\nwatch = 'd'\n[probes.layout]\ntimezone = 'Mars/Base'\n",
     r"probes\[0\].layout.timezone: unknown time zone 'Mars/Base'"),
    ("[[probes]]\ntype = 'cdr_csv'\nwatch = 'd'\n[probes.layout.columns]\nimsii = 'IMSI'\n",
     r"probes\[0\].layout.columns.imsii: not a field of cdr_csv"),
    ("[daemon\n", r"not valid TOML"),
    ("[report]\nwithin_s = 0\n", r"c.toml: report.within_s: must be 1..86400"),
    ("[report.regions]\n'460-00-x' = 'North'\n", r"c.toml: report.regions.'460-00-x': not a prefix"),
    ("[report]\ntop_channel = 5\n", r"c.toml: report.top_channel: unknown key"),
])
def test_bad_config_names_file_and_key(tmp_path, text, message):
    with pytest.raises(config.ConfigError, match=message):
        load(tmp_path, text)


def test_cells_of_networks_that_do_not_share_a_ran_can_be_kept_apart(tmp_path):
    assert not load(tmp_path, "[features]\nshared_cells = false\n").features.engine().shared_cells


def test_missing_file():
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(Path("/nonexistent/goipwatch.toml"))


def test_cli_reports_config_errors_without_a_traceback(tmp_path, capsys):
    from detector.cli import main
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\ndsn = 5\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "store.dsn: expected str" in err and "Traceback" not in err
