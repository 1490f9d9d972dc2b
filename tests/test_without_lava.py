"""Everything that does not run Lava works without it (Python 3.11-3.13, where lava-nc cannot
install): here with Lava reported missing, under ``make test-core`` with Lava truly absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import delaydeploy.exporters.lava.env as lava_env
from delaydeploy.cli import main
from delaydeploy.demo import _verify


@pytest.fixture
def no_lava(monkeypatch) -> None:
    monkeypatch.setattr(lava_env, "lava_installed", lambda: False)


def test_train_export_and_verify_without_lava(no_lava, tmp_path: Path, capsys) -> None:
    model, nir, loihi2, lava = (tmp_path / name for name in ("m.pt", "m.nir", "q", "b"))
    assert main(["train", "--preset", "synthetic", "--epochs", "1", "--max-samples", "64", "--quiet",
                 "-o", str(model)]) == 0
    assert main(["export", str(model), "--target", "nir", "-o", str(nir)]) == 0
    assert main(["verify", str(nir)]) == 0
    assert main(["export", str(model), "--target", "loihi2", "-o", str(loihi2)]) == 0
    assert main(["verify", str(loihi2), "--backend", "fixed-reference"]) == 0
    assert main(["export", str(model), "--target", "lava", "-o", str(lava)]) == 0  # writing needs no Lava
    capsys.readouterr()
    assert main(["verify", str(lava)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "needs Lava: pip install 'delaydeploy[lava]' on Python 3.10" in error[0], error
    inputs = np.load(lava / "test_vectors.npz")["inputs"]
    assert _verify(lava, inputs)
    assert "written; not run on Lava's CPU backend, which needs Lava: pip install" in capsys.readouterr().out


def test_report_says_which_rung_it_skipped_and_why(no_lava, tmp_path: Path, capsys) -> None:
    from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
    from delaydeploy.config import get_preset
    from delaydeploy.model import DelaySNN
    from delaydeploy.report import load_report

    preset = get_preset("synthetic")
    model = save_checkpoint(checkpoint_of(DelaySNN(preset.network).eval(), preset="synthetic",
                                          train_config=preset.train), tmp_path / "m.pt")
    assert main(["report", str(model), "--max-samples", "8", "--quiet", "-o", str(tmp_path / "r")]) == 0
    assert "Lava fixed point: skipped, pip install 'delaydeploy[lava]' on Python 3.10" in capsys.readouterr().out
    report = load_report(tmp_path / "r")
    assert report["lava"] is None and [r["rung"] for r in report["skipped_rungs"]] == ["Lava fixed point"]
    assert "Lava fixed point" not in [r["rung"] for r in report["ladder"]]
    assert "| Lava fixed point | skipped | | | pip install" in (tmp_path / "r" / "report.md").read_text()
