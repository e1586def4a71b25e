from __future__ import annotations

from pathlib import Path

import pytest

from allo.assistant.analysis import Analyzer
from allo.assistant.nlu.training import load_analyzer, train_and_save
from allo.config import DEFAULT_DATA_DIR

MODEL_PATH = Path("var/nlu/model.npz")


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    """The real model, as `make test` builds it (trained here if it is missing)."""
    if not MODEL_PATH.exists():
        train_and_save(DEFAULT_DATA_DIR, MODEL_PATH)
    return load_analyzer(MODEL_PATH, DEFAULT_DATA_DIR)
