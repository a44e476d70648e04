"""``goipwatch score`` and ``goipwatch train`` as a user runs them (the flags.csv contract)."""

import csv
import json

from detector.cli import main
from detector.testing import Row, write_cdr

HEADER = ["imsi", "msisdn", "score", "flagged_at", "rig_id", "reasons"]


def read(path):
    with path.open() as fh:
        return list(csv.reader(fh))


def labels(world):
    with (world / "labels.csv").open() as fh:
        return {r["imsi"]: r for r in csv.DictReader(fh)}


def test_score_flags_the_rigs_of_a_world_with_reasons(tmp_path, small_world, small_model, capsys):
    out = tmp_path / "flags.csv"
    assert main(["score", "--cdr", str(small_world / "cdr.csv"), "--subscribers",
                 str(small_world / "subscribers.csv"), "--model", str(small_model),
                 "--out", str(out)]) == 0
    rows = read(out)
    assert rows[0] == HEADER
    flags = [dict(zip(HEADER, r)) for r in rows[1:]]
    truth = labels(small_world)
    fraud = [f for f in flags if truth[f["imsi"]]["label"] == "fraud"]
    assert len(fraud) >= 0.8 * len(flags), "most flags should be fraud SIMs"
    assert len({truth[f["imsi"]]["rig_id"] for f in fraud}) >= 3, "several rigs should be found"
    for f in flags:
        assert f["flagged_at"].endswith("Z") and 0 < float(f["score"]) <= 1
        assert f["reasons"] and "percentile of subscribers" in f["reasons"] or "cards" in f["reasons"] \
            or "SIMs in cell" in f["reasons"] or "device" in f["reasons"]
    rigs = [json.loads(x) for x in (tmp_path / "flags.rigs.jsonl").read_text().splitlines()]
    assert rigs and all(r["rig_id"].startswith("rig-") and len(r["sims"]) >= 2 for r in rigs)
    in_rigs = {s for r in rigs for s in r["sims"]}
    assert {f["imsi"] for f in flags if f["rig_id"]} == in_rigs
    assert "flagged in" in capsys.readouterr().err


def test_score_without_model_fits_on_the_input(tmp_path, small_world):
    out = tmp_path / "flags.csv"
    assert main(["score", "--cdr", str(small_world / "cdr.csv"), "--out", str(out)]) == 0
    rows = read(out)
    assert rows[0] == HEADER and len(rows) > 1
    truth = labels(small_world)
    assert sum(truth[r[0]]["label"] == "fraud" for r in rows[1:]) >= 0.8 * (len(rows) - 1)


def test_score_keeps_bad_rows_aside(tmp_path, small_world, small_model, capsys):
    bad = write_cdr(tmp_path / "bad.csv", [Row(), Row(imsi="x"), Row(result="lost")])
    out = tmp_path / "flags.csv"
    assert main(["score", "--cdr", str(small_world / "cdr.csv"), str(bad), "--model",
                 str(small_model), "--out", str(out)]) == 0
    rejected = read(tmp_path / "flags.rejected.csv")
    assert rejected[0] == ["source", "line", "reason", "raw"]
    assert [(r[0], r[1]) for r in rejected[1:]] == [("bad.csv", "3"), ("bad.csv", "4")]
    err = capsys.readouterr().err
    total = sum(1 for _ in (small_world / "cdr.csv").open()) - 1 + 3
    assert f"2 input rows of {total} rejected" in err
    assert "commonest: imsi: … must be 15 digits (1); result: … is not a result" in err


def test_train_writes_model_and_manifest(tmp_path, small_world):
    out = tmp_path / "m.skops"
    assert main(["train", "--cdr", str(small_world / "cdr.csv"), "--subscribers",
                 str(small_world / "subscribers.csv"), "--start", "2026-10-05T00:00:00Z",
                 "--end", "2026-10-06T00:00:00Z", "--out", str(out)]) == 0
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["training_window"]["from"].startswith("2026-10-05")
    assert manifest["training_window"]["to"] < "2026-10-06"


def test_unreadable_model_is_a_clear_error(tmp_path, small_world, capsys):
    assert main(["score", "--cdr", str(small_world / "cdr.csv"), "--model",
                 str(tmp_path / "none.skops"), "--out", str(tmp_path / "f.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_with_analysts_verdicts_adds_the_supervised_layer(tmp_path, small_world, small_model):
    # verdicts on the flags of a first run: half confirmed, half dismissed
    first = tmp_path / "flags.csv"
    assert main(["score", "--cdr", str(small_world / "cdr.csv"), "--subscribers",
                 str(small_world / "subscribers.csv"), "--model", str(small_model),
                 "--out", str(first)]) == 0
    flagged = [r[0] for r in read(first)[1:]]
    assert len(flagged) >= 10
    # confirmations and dismissals in two files (two teams, two regions): one set of verdicts
    confirmed, dismissed = tmp_path / "confirmed.csv", tmp_path / "dismissed.csv"
    confirmed.write_text("imsi,label\n" + "".join(f"{imsi},confirm\n" for imsi in flagged[1::2]))
    dismissed.write_text("imsi,label\n" + "".join(f"{imsi},dismiss\n" for imsi in flagged[::2]))
    out = tmp_path / "m.skops"
    # the same baseline window as small_model, so that its replay raises the same flags
    assert main(["train", "--cdr", str(small_world / "cdr.csv"), "--subscribers",
                 str(small_world / "subscribers.csv"), "--start", "2026-10-05T00:00:00Z",
                 "--end", "2026-10-06T00:00:00Z", "--confirmed", str(confirmed), str(dismissed),
                 "--out", str(out)]) == 0
    rerank = json.loads(out.with_suffix(".json").read_text())["rerank"]
    assert rerank["confirmed"] >= 5 and rerank["dismissed"] >= 5
    assert main(["score", "--cdr", str(small_world / "cdr.csv"), "--model", str(out),
                 "--out", str(tmp_path / "again.csv")]) == 0


def test_bad_verdicts_file_is_a_clear_error(tmp_path, small_world, capsys):
    bad = tmp_path / "v.csv"
    bad.write_text("imsi,label\n460000000000001,maybe\n")
    assert main(["train", "--cdr", str(small_world / "cdr.csv"), "--confirmed", str(bad),
                 "--out", str(tmp_path / "m.skops")]) == 2
    assert "v.csv:2: label 'maybe'" in capsys.readouterr().err


def test_imsis_and_imeis_with_leading_zeros_keep_their_15_digits(tmp_path, small_world, zero_world,
                                                                  small_model):
    """PLMN 001-01 and TACs 01xxxxxx: identifiers held as numbers lose their leading zeros;
    flags.csv and flags.rigs.jsonl give them back in full, and the flags are those of the
    same world under its own identifiers."""
    from detector.ids import parse_imei, parse_imsi
    from tests.conftest import to_test_plmn

    # the model as it is: the two worlds are the same traffic, but where the zero world's
    # identifiers collide (IMEIs that differ only in their first two digits) a few SIMs'
    # features differ, and a model calibrated on the whole population would move with them
    plain = tmp_path / "plain.toml"
    plain.write_text("[detector.calibration]\nenabled = false\n")

    def score(world, out):
        assert main(["score", "--cdr", str(world / "cdr.csv"), "--subscribers",
                     str(world / "subscribers.csv"), "--model", str(small_model),
                     "--config", str(plain), "--out", str(out)]) == 0
        flags = [dict(zip(HEADER, r)) for r in read(out)[1:]]
        rigs = [json.loads(x) for x in out.with_name(out.stem + ".rigs.jsonl").read_text().splitlines()]
        return flags, rigs

    flags, rigs = score(zero_world, tmp_path / "zero" / "flags.csv")
    assert flags and rigs
    for f in flags:
        assert f["imsi"].startswith("00101") and parse_imsi(f["imsi"]).digits == f["imsi"]
    for r in rigs:
        assert all(s.startswith("00101") and len(s) == 15 for s in r["sims"])
        assert all(d.startswith("01") and parse_imei(d).imei == d for d in r["devices"])
    assert {f["imsi"] for f in flags if f["rig_id"]} == {s for r in rigs for s in r["sims"]}

    same, _ = score(small_world, tmp_path / "own" / "flags.csv")
    assert sorted((to_test_plmn(f["imsi"]), f["flagged_at"], f["score"], f["reasons"]) for f in same) == \
        sorted((f["imsi"], f["flagged_at"], f["score"], f["reasons"]) for f in flags)
