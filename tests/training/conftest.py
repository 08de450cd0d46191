"""The training recipes run as subprocesses of the heavy environment's Python (PyTorch is never
installed in the service's environment; ``make heavy-env`` builds it, ``make test`` depends on it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO

TRAIN_PYTHON = REPO / ".venv-heavy" / "bin" / "python"


@pytest.fixture(scope="module")
def train_python() -> Path:
    if not TRAIN_PYTHON.is_file():
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{TRAIN_PYTHON} is missing: `make heavy-env` builds it")
        pytest.skip(f"{TRAIN_PYTHON} is missing (`make heavy-env` builds it)")
    return TRAIN_PYTHON
