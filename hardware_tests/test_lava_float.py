"""Float Lava graphs reproduce the reference simulator (streaming semantics) exactly.

Zero spike mismatches in every hidden layer and the readout membrane equal to 1e-9, on the
reference's time axis, for several samples framed into one Lava run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import moderate_network

from delaydeploy.exporters.lava.graph import simulate_lava
from delaydeploy.ir import Network
from delaydeploy.reference import Simulation, simulate

pytestmark = pytest.mark.lava  # Lava's own models (the lava extra, Python 3.10)

def _assert_matches_reference(network: Network, x: np.ndarray, sim: Simulation) -> None:
    ref = simulate(network, x, semantics="streaming")
    assert len(sim.spikes) == len(ref.spikes)
    for layer, lava_spikes, ref_spikes in zip(network.layers, sim.spikes, ref.spikes):
        assert lava_spikes.shape == ref_spikes.shape and lava_spikes.dtype == torch.float64
        assert ref_spikes.sum() > 0, f"{layer.name} is silent: the comparison would prove little"
        mismatches = int((lava_spikes != ref_spikes).sum())
        assert mismatches == 0, f"{layer.name}: {mismatches} spike mismatches"
    assert sim.readout.shape == ref.readout.shape and sim.readout.dtype == torch.float64
    np.testing.assert_allclose(sim.readout.numpy(), ref.readout.numpy(), rtol=0, atol=1e-9)


def test_conformance_model_streaming(conformance_model) -> None:
    """The official SHD model: folded BatchNorm biases act from each layer's first step, not Lava's."""
    network, x = conformance_model
    _assert_matches_reference(network, x, simulate_lava(network, x, progress=True))


def test_delrec_model(delrec_model) -> None:
    """The official DelRec model: recurrent delays per presynaptic neuron (latency 1 + e)."""
    network, x, vectors = delrec_model
    sim = simulate_lava(network, x)
    _assert_matches_reference(network, x, sim)
    for layer in (0, 1):
        np.testing.assert_array_equal(sim.spikes[layer].numpy(), vectors[f"hidden_spikes_{layer}"])


def test_graded_counts_input() -> None:
    network = moderate_network(10, (9, 12, 8, 4), input_kind="counts")
    x = np.random.default_rng(11).poisson(0.8, (14, 3, 9)).astype(np.float64)
    assert x.max() > 1
    _assert_matches_reference(network, x, simulate_lava(network, x))


@pytest.mark.parametrize("options", [
    dict(recurrent=True),  # DelRec-like: one recurrent delay per presynaptic neuron, latency 1 + e
    dict(reset="soft", recurrent=True),
    dict(reset="soft", threshold_rule=">", tau=1.5, max_delay=9),
], ids=["recurrent", "soft-reset-recurrent", "soft-reset-strict"])
def test_random_networks(spikes_input, options) -> None:
    network = moderate_network(20, (10, 14, 9, 3), **options)
    x = spikes_input(21, 16, 3, 10)
    _assert_matches_reference(network, x, simulate_lava(network, x))


@pytest.mark.parametrize("lanes", [None, 2], ids=["chip-graph", "two-lanes"])
def test_framed_samples_equal_single_runs(spikes_input, lanes) -> None:
    """Four samples in one run (one after the other, or two frames of two lanes) give bit-identical
    results to four separate runs."""
    network = moderate_network(30, (8, 10, 7, 3), recurrent=True, reset="soft")
    x = spikes_input(31, 12, 4, 8)
    framed = simulate_lava(network, x, lanes=lanes)
    for sample in range(x.shape[1]):
        alone = simulate_lava(network, x[:, sample: sample + 1], lanes=lanes)
        for framed_spikes, single_spikes in zip(framed.spikes, alone.spikes):
            assert bool((framed_spikes[:, sample] == single_spikes[:, 0]).all())
        assert bool((framed.readout[:, sample] == alone.readout[:, 0]).all())
    _assert_matches_reference(network, x, framed)
