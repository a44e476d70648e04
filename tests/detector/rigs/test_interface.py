"""The rig pass: what the pipeline calls, implemented by the rig book and a worker's summaries."""

import pytest

from detector import model as model_mod
from detector.features.engine import FeatureEngine
from detector.pipeline import Pipeline
from detector.rigs.book import RigBook
from detector.rigs.interface import DurableRigPass, RigPass
from detector.rigs.policy import RigPolicy
from detector.scale.summaries import Summaries
from detector.scoring import Policy, Scorer
from detector.testing import cdr_batch, gateway_rows, imei, imsi


@pytest.fixture
def scorer(small_model):
    return Scorer(model_mod.load(small_model), Policy())


def test_the_book_and_a_workers_summaries_are_both_a_rig_pass(scorer):
    book = RigBook(FeatureEngine(), scorer, RigPolicy())
    summaries = Summaries(FeatureEngine(), scorer, 0, RigPolicy())
    assert isinstance(book, RigPass) and isinstance(summaries, RigPass)
    # only the book keeps rigs and evidence for the daemon's checkpoint
    assert isinstance(book, DurableRigPass) and not isinstance(summaries, DurableRigPass)


def test_a_pipeline_runs_with_either_rig_pass(scorer):
    """The same gateway through a pipeline with the book and one with summaries: the book
    adds its rig, the summaries hand back the per-SIM flags as they are and keep the rows."""
    sims = [int(imsi(100 + i)) for i in range(8)]
    ports = [int(imei(900 + p, tac="86000001")) for p in range(4)]
    rows = gateway_rows(sims, ports, "460-00-200-7")
    flags = {}
    for make in (lambda e: RigBook(e, scorer, RigPolicy()), lambda e: Summaries(e, scorer, 0, RigPolicy())):
        engine = FeatureEngine()
        pipe = Pipeline(engine, scorer, 900, rigs=make(engine))
        flags[type(pipe.rigs).__name__] = pipe.feed(cdr_batch(rows)).flags + pipe.score_dirty()
    assert {f.imsi for f in flags["RigBook"]} == {str(s) for s in sims}
    assert len({f.rig_id for f in flags["RigBook"]} - {""}) == 1
    assert {f.rig_id for f in flags["Summaries"]} == {""}
    assert {f.kind for f in flags["Summaries"]} == {"sim_anomaly"}
    assert {f.imsi for f in flags["Summaries"]} <= {f.imsi for f in flags["RigBook"]}
