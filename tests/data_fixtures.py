"""Fixtures both suites use: the conformance vectors, their official state_dicts, the FSDD recordings.

Each conftest imports them (importing a fixture into a conftest registers it there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CONFORMANCE, SHARED, require_file


@pytest.fixture(scope="session")
def snn_delays_vectors() -> dict[str, np.ndarray]:
    """The official SNN-delays conformance file (rounded and continuous states, outputs)."""
    with np.load(require_file(CONFORMANCE / "snn_delays_shd_small.npz")) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def delrec_vectors() -> dict[str, np.ndarray]:
    """The official DelRec conformance file (SHD model, float64)."""
    with np.load(require_file(CONFORMANCE / "delrec_shd.npz")) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="session")
def state_dict_from():
    """``state_dict_from(vectors, prefix)``: the ``prefix/<key>`` entries as a torch state_dict."""

    def extract(vectors: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
        return {key[len(prefix) + 1:]: torch.from_numpy(np.array(value)) for key, value in vectors.items()
                if key.startswith(prefix + "/")}

    return extract


@pytest.fixture(scope="session")
def fsdd_dir() -> Path:
    return require_file(SHARED / "data" / "fsdd" / "recordings")
