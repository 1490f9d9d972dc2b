"""Lowering: the trained model with rounded delays and the reference of its IR agree exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import warmed_model

from delaydeploy.config import NetworkConfig
from delaydeploy.lowering import lower
from delaydeploy.reference import simulate

CONFIGS = {
    "dcls_streaming": NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=1.5),
    "dcls_official": NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=1.5,
                                   semantics="official"),
    "delrec_soft_reset": NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=2.0,
                                       reset="soft", batchnorm=False, bias=True, recurrent_layers=(True, True),
                                       max_recurrent_delay=6),
    "no_delays": NetworkConfig(input_size=10, hidden_sizes=(16,), num_classes=4, delays="none", bias=True),
    "fixed_delays": NetworkConfig(input_size=10, hidden_sizes=(16,), num_classes=4, kernel_size=7, delays="fixed"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rounded_model_equals_reference_of_its_ir(name):
    config = CONFIGS[name]
    model = warmed_model(config, seed=3, warm_batches=3)
    network = lower(model)
    x = torch.bernoulli(torch.full((25, 5, config.input_size), 0.3, dtype=torch.float64))
    with torch.no_grad():
        out = model(x, rounded=True)
    result = simulate(network, x, semantics=config.semantics)
    assert len(out.spikes) == len(result.spikes) == len(config.hidden_sizes)
    total_spikes = 0
    for model_spikes, reference_spikes in zip(out.spikes, result.spikes):
        assert torch.equal(model_spikes, reference_spikes)
        total_spikes += int(model_spikes.sum())
    assert total_spikes > 0
    assert torch.allclose(out.readout, result.readout, rtol=0, atol=1e-9)


def test_lowering_folds_batchnorm_and_rounds_delays():
    config = CONFIGS["dcls_streaming"]
    model = warmed_model(config, seed=1, warm_batches=3)
    network = lower(model)
    block = model.blocks[0]
    norm = block.norm
    scale = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach().numpy()
    np.testing.assert_allclose(network.layers[0].weights, block.synapses.weight.detach().numpy() * scale[:, None])
    np.testing.assert_allclose(network.layers[0].bias,
                               (norm.bias - norm.running_mean * norm.weight / torch.sqrt(norm.running_var + norm.eps))
                               .detach().numpy())
    positions = block.synapses.position.detach().numpy()
    np.testing.assert_array_equal(network.layers[0].delays, config.kernel_size // 2 - np.round(positions))
    assert network.tail_steps == 3 * (config.kernel_size // 2)
    assert network.metadata["kernel_size"] == config.kernel_size


def test_recurrent_delays_are_per_presynaptic_neuron():
    model = warmed_model(CONFIGS["delrec_soft_reset"], seed=2, warm_batches=3)
    network = lower(model)
    delays = network.layers[1].recurrent_delays
    assert np.all(delays == delays[0:1])  # every row the same: one delay per source neuron
    np.testing.assert_array_equal(delays[0], torch.round(model.blocks[1].neuron.recurrent_delays).detach().numpy())
    assert network.layers[1].neuron.reset == "soft"


def test_round_delays_makes_recurrent_continuous_equal_rounded():
    config = dataclasses.replace(CONFIGS["delrec_soft_reset"], delays="none")
    model = warmed_model(config, seed=4, warm_batches=3)
    model.set_recurrent_sigma(2.0)
    x = torch.bernoulli(torch.full((20, 3, 10), 0.3, dtype=torch.float64))
    with torch.no_grad():
        assert not torch.equal(model(x, rounded=True).readout, model(x).readout)
        model.round_delays()
        assert torch.equal(model(x, rounded=True).readout, model(x).readout)
