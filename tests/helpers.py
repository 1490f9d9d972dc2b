"""Small networks and paths to the shared data, used by several test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer

# Next to the checkout, not in it: the conformance vectors and FSDD recordings are not committed.
SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance"


def require_file(path: Path) -> Path:
    """``path``, or skip the calling test with the reason that it is missing on this machine."""
    if not path.exists():
        pytest.skip(f"{path} is not available on this machine")
    return path


def make_network(seed: int = 0, recurrent: bool = True) -> Network:
    """A 3-5-4-2 counts network: soft reset, ">" rule, delays 0..6, optionally recurrent layer 2."""
    rng = np.random.default_rng(seed)
    neuron = LIFNeuron(tau=2.0, threshold=1.0, reset="soft", threshold_rule=">")
    hidden0 = SpikingLayer("hidden0", rng.normal(size=(5, 3)), rng.integers(0, 7, (5, 3)), rng.normal(size=5), neuron)
    hidden1 = SpikingLayer("hidden1", rng.normal(size=(4, 5)), rng.integers(0, 7, (4, 5)), np.zeros(4), neuron,
                           rng.normal(size=(4, 4)) if recurrent else None,
                           rng.integers(0, 3, (4, 4)) if recurrent else None)
    readout = Readout("readout", rng.normal(size=(2, 4)), rng.integers(0, 7, (2, 4)), rng.normal(size=2), tau=3.0)
    return Network(3, [hidden0, hidden1], readout, input_kind="counts", dt=0.01, tail_steps=6,
                   metadata={"source": "test", "kernel_size": 7})
