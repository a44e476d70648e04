"""The anomaly model: a scikit-learn pipeline (log scaling + IsolationForest) with a manifest.

A model is two files: ``NAME.skops`` (the pipeline, saved with skops, which loads only the
types it is told to trust instead of running pickled code) and ``NAME.json`` (the manifest:
feature names, library versions, training window, row count, checksum, the training score
distribution and per-feature reference percentiles). Loading checks all of it and refuses a
mismatch with a :class:`ModelError` that says what differs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sklearn
import skops
import skops.io as sio
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from detector import __version__
from detector.features.catalog import CATALOG, FEATURES
from detector.forest import FlatForest

MANIFEST_FORMAT = 4     # 4: the supervised layer no longer takes the registration features
# Types the pipeline is made of; anything else in a model file is refused.
TRUSTED_TYPES = frozenset({
    "numpy.log1p", "numpy.ufunc", "numpy.dtype", "numpy.ndarray",
    "sklearn.ensemble._iforest.IsolationForest", "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree", "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "numpy.random._mt19937.MT19937", "numpy.random.mtrand.RandomState",
    "numpy.random._pcg64.PCG64", "numpy.random._generator.Generator",
    "builtins.slice",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.preprocessing._data.StandardScaler",
})
# The model shipped with goipwatch: the daemon's default, and the prior that calibration to the
# watched population starts from (detector/calibration.py).
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models" / "goipwatch.skops"
# Below this many analyst labels of each kind the supervised layer is not trained.
RERANK_MIN_LABELS = 5
QUANTILE_GRID = np.linspace(0.0, 1.0, 2001)
# Voice-derived ratios are compared only among SIMs that make this many calls in 24 h.
CALLERS_MIN_VOICE_OUT = 5


class ModelError(RuntimeError):
    """A model that cannot be used; the message names the file and the mismatch."""


@dataclass(frozen=True, slots=True)
class TrainedModel:
    pipeline: Pipeline
    manifest: dict
    reranker: Pipeline | None = None      # supervised layer from analysts' labels, if trained
    forest: FlatForest = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "forest", FlatForest.from_iforest(self.pipeline[-1]))

    def anomaly_score(self, values: np.ndarray) -> np.ndarray:
        """Higher is more anomalous, in (0, 1]: the pipeline's negated ``score_samples``,
        computed by :class:`FlatForest`."""
        return -self.forest.score_samples(self.pipeline[:-1].transform(values))

    def fraud_probability(self, values: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
        """The supervised layer's probability that each row is fraud (None without one)."""
        if self.reranker is None or not len(values):
            return None if self.reranker is None else np.empty(0)
        return self.reranker.predict_proba(rerank_inputs(values, scores))[:, 1]

    def threshold(self, quantile: float) -> float:
        """The anomaly score that ``quantile`` of the training rows stay below."""
        return float(np.interp(quantile, QUANTILE_GRID, self.manifest["score_quantiles"]))

    def reference(self, feature: str) -> dict[str, float]:
        return self.manifest["reference"][feature]


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "skops": skops.__version__,
            "goipwatch": __version__}


def reference_percentiles(values: np.ndarray, highs: np.ndarray, lows: np.ndarray) -> dict[str, dict[str, float]]:
    """Percentiles per feature: of the SIM-days' highest values where high is rig-like, of
    their lowest where low is (ratios over calls among callers only), else of snapshots."""
    callers = values[:, FEATURES.index("voice_out_24h")] >= CALLERS_MIN_VOICE_OUT
    out = {}
    for i, feat in enumerate(CATALOG):
        if feat.suspicious == "high":
            col = highs[np.isfinite(highs[:, i]), i]
        elif feat.suspicious == "low":
            col = lows[np.isfinite(lows[:, i]), i]
        else:
            col = values[callers, i] if feat.needs_calls else values[:, i]
        if not len(col):
            col = np.zeros(1)
        q = np.percentile(col, [0.1, 1, 50, 99, 99.9])
        out[feat.name] = dict(zip(("p001", "p01", "p50", "p99", "p999"), map(float, q)),
                              rows=int(len(col)))
    return out


def fit(values: np.ndarray, *, window: tuple[str, str], seed: int = 0,
        n_estimators: int = 200, max_rows: int = 200_000, highs: np.ndarray | None = None,
        lows: np.ndarray | None = None) -> TrainedModel:
    """Fit the pipeline on feature rows (snapshots of the baseline window); ``highs`` and
    ``lows`` (each SIM-day's extremes) set the reason percentiles, ``values`` when absent."""
    if values.ndim != 2 or values.shape[1] != len(FEATURES):
        raise ModelError(f"training rows need {len(FEATURES)} feature columns, got {values.shape}")
    if len(values) < 50:
        raise ModelError(f"too little training data: {len(values)} SIM-days (need at least 50)")
    rng = np.random.default_rng(seed)
    rows = values if len(values) <= max_rows else values[rng.choice(len(values), max_rows, replace=False)]
    pipeline = Pipeline([
        ("log", FunctionTransformer(np.log1p)),  # counts are heavy-tailed
        ("iforest", IsolationForest(n_estimators=n_estimators, random_state=seed)),
    ]).fit(rows)
    model = TrainedModel(pipeline, {})
    scores = model.anomaly_score(rows)
    manifest = {
        "format": MANIFEST_FORMAT,
        "feature_names": list(FEATURES),
        "versions": versions(),
        "training_window": {"from": window[0], "to": window[1]},
        "rows": int(len(values)),
        "rows_fitted": int(len(rows)),
        "params": {"n_estimators": n_estimators, "seed": seed},
        "score_quantiles": np.quantile(scores, QUANTILE_GRID).round(6).tolist(),
        "reference": reference_percentiles(values, values if highs is None else highs,
                                values if lows is None else lows),
    }
    return TrainedModel(pipeline, manifest)


# The supervised layer judges behaviour. Registration features say who sold a card, not what it
# does: fitted on confirmed flags, which are mostly fresh cards, the layer would learn to wave
# through old cards used for fraud (sleeping cards, bought real-name cards). Registration
# stays evidence for the rules (cards on one ID, bulk runs).
_RERANK_FEATURES = np.array([f.family != "registration" for f in CATALOG])


# The direction each input may take in the layer: a feature's rig-like side may only raise
# the probability of fraud (+1 high, -1 low), a context feature (no rig-like side) goes either
# way, and the anomaly score may only raise it. Unconstrained, a linear layer learns from its
# dismissed flags (call-centre agents, couriers: heavy callers) that more calls mean less
# fraud, and holds back a gateway whose fan-out keeps growing.
_RERANK_SIGNS = np.r_[np.array([{"high": 1.0, "low": -1.0}.get(f.suspicious, 0.0)
                                for f in CATALOG])[_RERANK_FEATURES], 1.0]


def rerank_inputs(values: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return np.column_stack([np.log1p(np.maximum(values[:, _RERANK_FEATURES], 0)), scores])


def _signed_logit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
    """L2 logistic regression with balanced classes (as scikit-learn's, ``C`` = ``c``) whose
    coefficients keep the signs of ``_RERANK_SIGNS`` (L-BFGS-B with bounds)."""
    from scipy.optimize import minimize
    from scipy.special import expit

    weight = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    sign = np.where(y == 1, 1.0, -1.0)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta, b = theta[:-1], theta[-1]
        margin = sign * (x @ beta + b)
        grad_m = -weight * sign * expit(-margin)       # d/dz of w*log(1+exp(-s z))
        value = c * float(weight @ np.logaddexp(0.0, -margin)) + 0.5 * float(beta @ beta)
        return value, np.r_[c * (x.T @ grad_m) + beta, c * grad_m.sum()]

    bounds = [(0.0, None) if sg > 0 else (None, 0.0) if sg < 0 else (None, None)
              for sg in _RERANK_SIGNS] + [(None, None)]
    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B",
                     bounds=bounds, options={"maxiter": 2000}).x
    logit = LogisticRegression(C=c, class_weight="balanced")
    logit.classes_ = np.array([0.0, 1.0])
    logit.coef_, logit.intercept_ = theta[None, :-1], theta[-1:]
    logit.n_features_in_ = x.shape[1]
    return logit


def with_reranker(model: TrainedModel, values: np.ndarray, scores: np.ndarray,
                  labels: np.ndarray) -> TrainedModel:
    """``model`` plus a supervised layer fitted on flagged rows that analysts labelled
    (1 confirmed fraud, 0 dismissed): it re-ranks what the anomaly policy flags. Logistic
    regression with balanced classes: labels are few, and a simple model says why. Its
    weights keep the rig-like direction of each feature (``_RERANK_SIGNS``)."""
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    if min(pos, neg) < RERANK_MIN_LABELS:
        raise ModelError(f"the supervised layer needs at least {RERANK_MIN_LABELS} confirmed and "
                         f"{RERANK_MIN_LABELS} dismissed flags; have {pos} and {neg}")
    x = rerank_inputs(values, scores)
    scale = StandardScaler().fit(x)
    logit = _signed_logit(scale.transform(x), np.asarray(labels, float), c=0.5)
    reranker = Pipeline([("scale", scale), ("logit", logit)])
    manifest = dict(model.manifest, rerank={"confirmed": pos, "dismissed": neg})
    return TrainedModel(model.pipeline, manifest, reranker)


def save(model: TrainedModel, path: Path) -> tuple[Path, Path]:
    """Write ``path`` (.skops) and its manifest (.json); returns both paths."""
    path = path.with_suffix(".skops")
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump({"anomaly": model.pipeline, "rerank": model.reranker}, path,
             compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    manifest = dict(model.manifest, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                    file=path.name)
    manifest_path = path.with_suffix(".json")
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path, manifest_path


def default_path(configured: Path) -> Path:
    """The configured model if it is there, else the shipped one (``score`` run outside the
    checkout finds it too)."""
    return configured if Path(configured).with_suffix(".skops").is_file() else SHIPPED_MODEL


def load(path: Path) -> TrainedModel:
    """Load a model and refuse it unless its manifest matches this build."""
    path = Path(path).with_suffix(".skops")
    manifest_path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist (train one with 'goipwatch train')")
    if not manifest_path.is_file():
        raise ModelError(f"model {path} has no manifest {manifest_path.name}; refusing to load it")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelError(f"manifest {manifest_path} is not JSON: {e}") from e
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        raise ModelError(f"model {path}: checksum differs from its manifest (file changed?)")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"model {path}: manifest format {manifest.get('format')} "
                         f"is not {MANIFEST_FORMAT}")
    if manifest.get("feature_names") != list(FEATURES):
        raise ModelError(f"model {path} was trained on other features "
                         f"({manifest.get('feature_names')}); this build computes {list(FEATURES)}")
    have, want = versions(), manifest.get("versions", {})
    for lib in ("scikit-learn", "numpy"):
        if _minor(have[lib]) != _minor(want.get(lib, "")):
            raise ModelError(f"model {path} was saved with {lib} {want.get(lib)}, "
                             f"this machine has {have[lib]}; retrain it")
    untrusted = set(sio.get_untrusted_types(data=data)) - TRUSTED_TYPES
    if untrusted:
        raise ModelError(f"model {path} holds types outside the pipeline's: {sorted(untrusted)}")
    parts = sio.loads(data, trusted=sorted(sio.get_untrusted_types(data=data)))
    return TrainedModel(parts["anomaly"], manifest, parts["rerank"])


def pipeline_bytes(model: TrainedModel) -> bytes:
    """The anomaly pipeline alone, as skops bytes (a calibrated live model in the store)."""
    return sio.dumps({"anomaly": model.pipeline, "rerank": None}, compression=zipfile.ZIP_DEFLATED)


def from_pipeline_bytes(data: bytes, manifest: dict, where: str) -> TrainedModel:
    """The inverse of :func:`pipeline_bytes`, refusing types outside the pipeline's."""
    untrusted = set(sio.get_untrusted_types(data=data)) - TRUSTED_TYPES
    if untrusted:
        raise ModelError(f"{where} holds types outside the pipeline's: {sorted(untrusted)}")
    parts = sio.loads(data, trusted=sorted(sio.get_untrusted_types(data=data)))
    return TrainedModel(parts["anomaly"], manifest)


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])
