"""The documentation's tutorial runs as a user runs it, so it cannot rot: train, lower, simulate,
export to NIR, Lava and PyNN, verify each (0 spike mismatches on NIR, Lava and NEST), plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"


@pytest.mark.lava
@pytest.mark.parametrize("script", sorted(path.name for path in TUTORIALS.glob("plot_*.py")))
def test_tutorial_runs_and_every_target_verifies(script, tmp_path):
    done = subprocess.run([sys.executable, str(TUTORIALS / script)], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for target in ("nir  on nir", "lava on lava-cpu", "pynn on nest", "pynn on brian2"):
        assert f"{target:16s}: 0 spike mismatches" in done.stdout, done.stdout
