"""What both suites share: fixtures (the conformance vectors, their official state_dicts, the FSDD
recordings) and the hooks that leave out tests marked ``lava`` where Lava is not installed.

Each conftest imports them (importing a fixture or hook into a conftest registers it there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CONFORMANCE, SHARED, require_file


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``lava`` tests where Lava cannot be installed (``make test-core``): they are
    not skipped core paths, they test a target that this interpreter cannot have."""
    from delaydeploy.exporters.lava.env import lava_installed

    if lava_installed():
        return
    lava = [item for item in items if item.get_closest_marker("lava")]
    if lava:
        config.hook.pytest_deselected(items=lava)
        items[:] = [item for item in items if not item.get_closest_marker("lava")]


MODULE_NEEDS_LAVA = "pytestmark = pytest.mark.lava"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out a module marked ``lava`` as a whole where Lava is not installed: such a module
    may import Lava at the top, which would fail its collection. The module's own mark decides,
    so a new Lava module needs no list kept beside it."""
    from delaydeploy.exporters.lava.env import lava_installed

    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_") or lava_installed():
        return None
    lines = collection_path.read_text(encoding="utf-8").splitlines()
    return True if any(line.startswith(MODULE_NEEDS_LAVA) for line in lines) else None


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
