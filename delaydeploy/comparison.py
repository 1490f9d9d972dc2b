"""Two simulations compared spike for spike: the one definition of agreement.

Every check of delaydeploy (``verify``, ``compare``, the bundle's test vectors) calls
:func:`compare`: every hidden spike equal, the readout within a tolerance (``1e-9`` for
float64 simulations, 0 for integers), and the earliest place they part named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from delaydeploy.errors import DelayDeployError
from delaydeploy.reference import Simulation

#: The largest readout difference that counts as agreement between float64 simulations.
READOUT_TOLERANCE = 1e-9


@dataclass
class Divergence:
    """The first place two simulations disagree."""

    layer: str
    step: int
    sample: int
    neuron: int
    expected: float
    actual: float

    def __str__(self) -> str:
        return (f"first divergence: {self.layer}, neuron {self.neuron}, time step {self.step}, sample {self.sample}: "
                f"expected {self.expected!r}, got {self.actual!r}")


@dataclass
class Comparison:
    """Outcome of comparing a backend's simulation with the oracle's."""

    spike_mismatches: dict[str, int] = field(default_factory=dict)
    readout_max_error: float = 0.0
    readout_mismatches: int = 0  # readout entries beyond the tolerance
    first_divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        return self.first_divergence is None


def compare(expected: Simulation, actual: Simulation, layer_names: list[str],
            readout_tolerance: float = READOUT_TOLERANCE) -> Comparison:
    """Count spike mismatches per layer, the readout error, and find the earliest divergence."""
    result = Comparison()
    candidates: list[Divergence] = []
    pairs = list(zip(expected.spikes, actual.spikes)) + [(expected.readout, actual.readout)]
    for name, (want, got) in zip([*layer_names, "readout"], pairs):
        want, got = want.detach().cpu().double(), got.detach().cpu().double()
        if want.shape != got.shape:
            raise DelayDeployError(f"{name}: shapes differ, expected {tuple(want.shape)}, got {tuple(got.shape)}")
        if name == "readout":
            error = (want - got).abs()
            result.readout_max_error = float(error.max()) if error.numel() else 0.0
            bad = error > readout_tolerance
            result.readout_mismatches = int(bad.sum())
        else:
            bad = want != got
            result.spike_mismatches[name] = int(bad.sum())
        if bad.any():
            step, sample, neuron = (int(i) for i in torch.nonzero(bad)[0])
            candidates.append(Divergence(name, step, sample, neuron, float(want[step, sample, neuron]),
                                         float(got[step, sample, neuron])))
    if candidates:
        result.first_divergence = min(candidates, key=lambda d: d.step)
    return result
