"""Bit-accurate Lava graphs of FixedNetworks reproduce the integer reference exactly.

The networks are drawn directly in integers (no quantisation involved): exact spikes and the
exact integer readout membrane, on the reference's time axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from delaydeploy.exporters.lava.graph import simulate_lava
from delaydeploy.fixed_point import FixedNetwork
from delaydeploy.fixed_reference import simulate_fixed
from delaydeploy.reference import Simulation

pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)

def _assert_matches_integer_reference(ref: Simulation, network: FixedNetwork, sim: Simulation) -> None:
    assert len(sim.spikes) == len(ref.spikes)
    for layer, lava_spikes, ref_spikes in zip(network.layers, sim.spikes, ref.spikes):
        ref_spikes = torch.as_tensor(ref_spikes, dtype=torch.float64)
        assert lava_spikes.shape == ref_spikes.shape and lava_spikes.dtype == torch.float64
        assert ref_spikes.sum() > 0, f"{layer.name} is silent: the comparison would prove little"
        mismatches = int((lava_spikes != ref_spikes).sum())
        assert mismatches == 0, f"{layer.name}: {mismatches} spike mismatches"
    assert sim.readout.dtype == torch.int64
    np.testing.assert_array_equal(sim.readout.numpy(), np.asarray(ref.readout, dtype=np.int64))
    assert bool((sim.prediction() == ref.prediction()).all())


@pytest.mark.parametrize("options", [
    dict(),
    dict(recurrent=True),
    dict(reset="soft", recurrent=True),
    dict(reset="soft", weight_exp=1),
    dict(recurrent=True, weight_exp=-2),  # every (step, delay) group is floored on its own
], ids=["hard", "recurrent", "soft-reset-recurrent", "soft-reset-positive-exp", "recurrent-negative-exp"])
def test_random_fixed_networks(random_fixed_network, spikes_input, options) -> None:
    network = random_fixed_network(40, [10, 14, 9, 3], **options)
    x = spikes_input(41, 16, 3, 10)
    _assert_matches_integer_reference(simulate_fixed(network, x), network, simulate_lava(network, x))


def test_graded_input_payloads(random_fixed_network) -> None:
    """Analog input sent as integer payloads ``round(x * input_scale)`` on graded spikes."""
    network = random_fixed_network(50, [9, 12, 8, 4], input_kind="analog", input_scale=4.0, recurrent=True)
    x = np.random.default_rng(51).random((14, 3, 9)) * 3.0 * (np.random.default_rng(52).random((14, 3, 9)) < 0.4)
    _assert_matches_integer_reference(simulate_fixed(network, x), network, simulate_lava(network, x))


@pytest.mark.parametrize("lanes", [None, 2], ids=["chip-graph", "two-lanes"])
def test_framed_fixed_samples_equal_single_runs(random_fixed_network, spikes_input, lanes) -> None:
    network = random_fixed_network(60, [8, 10, 7, 3], recurrent=True, reset="soft")
    x = spikes_input(61, 12, 3, 8)
    framed = simulate_lava(network, x, lanes=lanes)
    assert framed.readout.dtype == torch.int64
    for sample in range(x.shape[1]):
        alone = simulate_lava(network, x[:, sample: sample + 1], lanes=lanes)
        for framed_spikes, single_spikes in zip(framed.spikes, alone.spikes):
            assert framed_spikes.sum() > 0
            assert bool((framed_spikes[:, sample] == single_spikes[:, 0]).all())
        assert bool((framed.readout[:, sample] == alone.readout[:, 0]).all())


def test_quantized_conformance_model(conformance_model) -> None:
    """The official SHD model quantised (weight_exp < 0, folded BatchNorm biases as mantissa << exponent)."""
    from delaydeploy.quantize import quantize

    network, x = conformance_model
    fixed = quantize(network, calibration=x)
    _assert_matches_integer_reference(simulate_fixed(fixed, x), fixed, simulate_lava(fixed, x))
