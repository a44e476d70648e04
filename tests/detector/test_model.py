import json

import numpy as np
import pytest

from detector import model
from detector.features.catalog import FEATURES


def rows(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.poisson(3.0, size=(n, len(FEATURES))).astype(float)


@pytest.fixture
def trained():
    return model.fit(rows(), window=("2026-10-05T00:00:00Z", "2026-10-06T00:00:00Z"), seed=1,
                     n_estimators=50)


def test_saved_model_round_trips_with_its_manifest(tmp_path, trained):
    path, manifest_path = model.save(trained, tmp_path / "m")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["feature_names"] == list(FEATURES)
    assert manifest["rows"] == 400 and manifest["training_window"]["from"].startswith("2026-10-05")
    assert {"scikit-learn", "numpy", "python"} <= set(manifest["versions"])
    loaded = model.load(path)
    x = rows(50, seed=2)
    np.testing.assert_allclose(loaded.anomaly_score(x), trained.anomaly_score(x))
    assert loaded.threshold(0.99) > loaded.threshold(0.5)


def test_flat_forest_equals_scikit_learn(trained):
    x = rows(3000, seed=3) * np.random.default_rng(4).choice([1, 4], size=(3000, len(FEATURES)))
    sk = -trained.pipeline.score_samples(x)
    np.testing.assert_allclose(trained.anomaly_score(x[:500]), sk[:500], atol=1e-12)  # flat path
    np.testing.assert_allclose(trained.anomaly_score(x), sk, atol=1e-12)              # large path


def test_anomalies_score_higher():
    normal = rows(600)
    odd = normal[:20].copy()
    odd[:, :10] = odd[:, :10] * 20 + 50
    m = model.fit(normal, window=("a", "b"), n_estimators=100)
    assert m.anomaly_score(odd).mean() > m.threshold(0.99)


@pytest.mark.parametrize("tamper, message", [
    (lambda p, m: p.write_bytes(p.read_bytes() + b"x"), "checksum differs"),
    (lambda p, m: m.update(feature_names=["a"]), "trained on other features"),
    (lambda p, m: m["versions"].update({"scikit-learn": "0.1.0"}), "saved with scikit-learn 0.1.0"),
    (lambda p, m: m.update(format=99), "manifest format 99"),
])
def test_mismatched_models_are_refused(tmp_path, trained, tamper, message):
    path, manifest_path = model.save(trained, tmp_path / "m")
    manifest = json.loads(manifest_path.read_text())
    tamper(path, manifest)
    if "sha256" in manifest and message != "checksum differs":
        manifest["sha256"] = __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(model.ModelError, match=message):
        model.load(path)


def test_missing_model_or_manifest(tmp_path, trained):
    with pytest.raises(model.ModelError, match="does not exist"):
        model.load(tmp_path / "nothing.skops")
    path, manifest_path = model.save(trained, tmp_path / "m")
    manifest_path.unlink()
    with pytest.raises(model.ModelError, match="has no manifest"):
        model.load(path)


def test_too_little_training_data():
    with pytest.raises(model.ModelError, match="too little training data"):
        model.fit(rows(10), window=("a", "b"))


def test_supervised_layer_round_trips_and_vetoes_what_analysts_dismissed(tmp_path, trained):
    rng = np.random.default_rng(7)
    fraud = rows(30, seed=8) * 10 + 40      # confirmed: far out
    dismissed = rows(30, seed=9) + 1        # dismissed: near the population
    values = np.vstack([fraud, dismissed])
    scores = trained.anomaly_score(values)
    labels = np.r_[np.ones(30), np.zeros(30)]
    both = model.with_reranker(trained, values, scores, labels)
    assert both.manifest["rerank"] == {"confirmed": 30, "dismissed": 30}
    path, _ = model.save(both, tmp_path / "r")
    loaded = model.load(path)
    p = loaded.fraud_probability(values, scores)
    assert p[:30].mean() > 0.9 and p[30:].mean() < 0.1
    assert trained.fraud_probability(values, scores) is None     # no layer, no veto
    assert rng is not None



def test_supervised_layer_does_not_judge_a_card_by_its_age(trained):
    """Confirmed flags are mostly fresh cards: a layer that saw the card's age would learn to
    veto old cards used for fraud (sleeping cards). Two rows that differ only in registration
    features get the same probability."""
    from detector.features.catalog import FEATURES
    age = FEATURES.index("sim_age_days")
    values = np.vstack([rows(30, seed=8) * 10 + 40, rows(30, seed=9) + 1])
    values[:30, age], values[30:, age] = 3, 2000     # confirmed young, dismissed old
    scores = trained.anomaly_score(values)
    both = model.with_reranker(trained, values, scores, np.r_[np.ones(30), np.zeros(30)])
    young, old = values[:1].copy(), values[:1].copy()
    old[0, age] = 2000
    assert both.fraud_probability(young, scores[:1]) == both.fraud_probability(old, scores[:1])


def test_supervised_layer_never_reads_more_rig_like_behaviour_as_less_fraud(trained):
    """Dismissed flags that call more than the confirmed ones (call-centre agents beside young
    gateways) must not teach the layer that more calls mean less fraud: a gateway whose
    fan-out grows keeps its probability."""
    from detector.features.catalog import FEATURES
    calls = [FEATURES.index(f) for f in ("voice_out_24h", "distinct_callees_24h")]
    data = FEATURES.index("data_sessions_24h")
    confirmed, dismissed = rows(30, seed=8) + 1, rows(30, seed=9) + 1
    confirmed[:, calls], dismissed[:, calls] = 20, 200
    confirmed[:, data], dismissed[:, data] = 0, 15       # what does tell them apart
    values = np.vstack([confirmed, dismissed])
    scores = trained.anomaly_score(values)
    both = model.with_reranker(trained, values, scores, np.r_[np.ones(30), np.zeros(30)])
    p = both.fraud_probability(values, scores)
    assert p[:30].mean() > 0.9 and p[30:].mean() < 0.1
    busier = confirmed[:1].copy()
    busier[:, calls] = 400
    assert both.fraud_probability(busier, scores[:1])[0] >= both.fraud_probability(confirmed[:1], scores[:1])[0]

def test_supervised_layer_needs_labels_of_both_kinds(trained):
    values = rows(20)
    with pytest.raises(model.ModelError, match="at least 5 confirmed and 5 dismissed"):
        model.with_reranker(trained, values, trained.anomaly_score(values),
                            np.r_[np.ones(18), np.zeros(2)])


def test_the_shipped_model_loads_with_its_supervised_layer():
    from pathlib import Path
    shipped = model.load(Path(__file__).resolve().parents[2] / "models" / "goipwatch.skops")
    assert shipped.reranker is not None and shipped.manifest["rerank"]["dismissed"] >= 5
