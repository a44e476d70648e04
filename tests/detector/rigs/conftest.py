"""The pipeline the rig tests run their cases through."""

import pytest
from tests.detector.rigs.cases import new_pipe


@pytest.fixture
def pipe(small_model):
    return new_pipe(small_model)
