"""Data-parallel training with torchrun: 2 CPU processes (gloo) on the synthetic task."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from delaydeploy.checkpoint import load_checkpoint


def test_torchrun_two_processes(tmp_path: Path):
    output = tmp_path / "ddp.pt"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "delaydeploy", "train",
               "--preset", "synthetic", "--epochs", "2", "--max-samples", "96", "--quiet", "-o", str(output)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("saved ") == 1  # rank 0 alone logs and checkpoints
    checkpoint = load_checkpoint(output)
    assert checkpoint.metrics["processes"] == 2
    assert len(checkpoint.metrics["history"]["epoch"]) == 2
    model = checkpoint.build_model()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert list(tmp_path.iterdir()) == [output]  # no temporary files left behind
