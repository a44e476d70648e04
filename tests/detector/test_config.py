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


CDR = "[[probes]]\ntype = 'cdr_csv'\nwatch = 'd'\n[probes.layout]\n"
REG = "[[probes]]\ntype = 'registrations_csv'\nwatch = 'd'\n[probes.layout]\n"


@pytest.mark.parametrize("text, message", [
    (CDR + "subscriber_key = 'iccid'\n", r"layout.subscriber_key: one of 'imsi', 'msisdn', 'id'"),
    (CDR + "subscriber_key = 'id'\n", r"layout.subscriber_key: 'id' reads the column named by "
                                       r"columns.subscriber_id"),
    (CDR + "subscriber_key = 'msisdn'\n[probes.layout.columns]\nimsi = 'IMSI'\n",
     r"layout.columns.imsi: with subscriber_key = 'msisdn' the IMSI is derived"),
    (CDR + "[probes.layout.constants]\nrecord_type = 'call'\n",
     r"layout.constants.record_type: 'call' must be one of voice, sms, data"),
    (CDR + "[probes.layout.constants]\nrecord_type = 'sms'\nresult = 'answered'\n",
     r"layout.constants.result: 'answered' is not a result of sms records"),
    (CDR + "[probes.layout.constants]\nimsi = '460001234567890'\n",
     r"layout.constants.imsi: not a field a constant can give"),
    (CDR + "[probes.layout.constants]\nmsisdn = ''\n",
     r"layout.constants.msisdn: '' may be empty only when subscribers are keyed by an id"),
    (CDR + "[probes.layout.constants]\nimei = '123'\n", r"layout.constants.imei: '123' is not valid"),
    (CDR + "[probes.layout.constants]\ncell_id = '460-00-1-1'\n[probes.layout.columns]\ncell_id = 'CELL'\n",
     r"layout: cell_id is given more than once"),
    (CDR + "derive = ['duration_s']\n", r"layout.derive: a list of result, direction, msisdn"),
    (CDR + "derive = ['result']\n[probes.layout.values]\nresult = { A = 'answered' }\n",
     r"layout.values.result: result is not read from a column"),
    (CDR + "derive = ['direction']\n", r"layout.derive: direction is derived from the A and B numbers"),
    (CDR + "[probes.layout.columns]\na_number = 'A'\n", r"layout.columns.b_number: a_number and b_number go together"),
    (CDR + "[probes.layout.columns]\na_number = 'A'\nb_number = 'B'\n",
     r"layout.derive: with A and B numbers, derive either direction"),
    (CDR + "derive = ['msisdn']\n[probes.layout.columns]\na_number = 'A'\nb_number = 'B'\npeer = 'P'\n",
     r"layout.columns.peer: with A and B numbers the peer is the other party"),
    (CDR + "duration_unit = 'min'\n", r"layout.duration_unit: one of 's', 'ms', not 'min'"),
    (CDR + "duration_rounding = 'down'\n", r"layout.duration_rounding: one of 'none', 'up', 'nearest'"),
    (CDR + "timestamp_format = 'epoch_us'\n", r"layout.timestamp_format: must be a strptime format .* epoch_s or epoch_ms"),
    (CDR + "cell_format = 'ci'\n", r"layout.plmn: cell_format 'ci' needs the PLMN"),
    (CDR + "cell_format = 'ci'\nplmn = '46-00'\n", r"layout.plmn: '46-00' is not MCC-MNC"),
    (CDR + "plmn = '460-00'\n", r"layout.plmn: used with cell_format 'ci' or 'ecgi' only"),
    (CDR + "[probes.layout.columns]\nlac = 'LAC'\n", r"layout.columns.lac: a LAC column goes with cell_format"),
    (CDR + "[probes.layout.values]\ndirection = { O = 'out' }\n",
     r"layout.values.direction: 'out' is not a direction \(MO, MT\)"),
    (REG + "derive = ['result']\n", r"layout.derive: only a CDR feed \(cdr_csv, kafka\) takes it"),
    (REG + "[probes.layout.constants]\nchannel = ''\n", r"layout.constants.channel: '' must not be empty"),
    (REG + "[probes.layout.columns]\na_number = 'A'\n", r"layout.columns.a_number: not a field of registrations_csv"),
])
def test_bad_layout_keys_are_named(tmp_path, text, message):
    with pytest.raises(config.ConfigError, match=message):
        load(tmp_path, text)


def test_a_layout_of_every_new_key_loads():
    from tests.probes.feed_shapes import SHAPES

    for make in SHAPES:
        layout = make().layout()
        assert layout.subscriber_key in ("msisdn", "id") and layout.cell_format in ("ci", "ecgi")
    history = SHAPES[2]().layout()
    assert history.constants == {"record_type": "voice", "imei": "", "msisdn": ""}
    assert history.derive == ("result",) and history.plmn == "460-01"
    assert SHAPES[0]().layout().duration_rounding == "up"
