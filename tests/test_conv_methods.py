"""The fast DCLS path is the same layer as the reference (DCLS package + conv1d) path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from delaydeploy.config import get_preset
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.importers import import_snn_delays
from delaydeploy.model import DelaySNN
from delaydeploy.training import seed_everything, train


@pytest.mark.parametrize("method", ["auto", "fft", "dft"])
def test_fast_path_reproduces_the_official_continuous_output(method, snn_delays_vectors, state_dict_from):
    checkpoint = import_snn_delays(state_dict_from(snn_delays_vectors, "state_cont"), "shd", hidden=32, layers=2)
    model = checkpoint.build_model()
    model.set_conv_method(method)
    with torch.no_grad():
        out = model(torch.from_numpy(snn_delays_vectors["x"]))
    for layer, spikes in enumerate(out.spikes):
        np.testing.assert_array_equal(spikes.numpy(), snn_delays_vectors[f"spk_cont_{layer}"])
    np.testing.assert_allclose(out.readout.numpy(), snn_delays_vectors["out_cont"], rtol=0, atol=1e-4)


def test_model_gradients_of_every_conv_method_equal_the_reference():
    """Each method forced: at this size ``auto`` would take ``direct`` and leave ``fft`` and ``dft`` untested."""
    config = dataclasses.replace(get_preset("synthetic").network, hidden_sizes=(16, 12))
    torch.manual_seed(0)
    model = DelaySNN(config).double().train()
    x = torch.bernoulli(torch.full((30, 4, config.input_size), 0.3, dtype=torch.float64))
    grads = {}
    for method in ("reference", "direct", "fft", "dft"):
        model.zero_grad()
        model.set_conv_method(method)
        torch.manual_seed(1)  # same dropout masks
        model(x).readout.square().sum().backward()
        grads[method] = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    positions = [name for name in grads["reference"] if name.endswith(".P")]
    assert len(positions) == 3 and all(grads["reference"][name].abs().max() > 0 for name in positions)
    for method in ("direct", "fft", "dft"):
        assert grads[method].keys() == grads["reference"].keys(), method
        for name, reference in grads["reference"].items():
            assert torch.allclose(grads[method][name], reference, rtol=1e-6, atol=1e-9), (method, name)


def _accuracy(method: str) -> float:
    preset = get_preset("synthetic")
    seed_everything(0)
    model = DelaySNN(preset.network)
    model.set_conv_method(method)
    history = train(model, SyntheticTimingDataset("train", num_samples=512),
                    SyntheticTimingDataset("test", num_samples=512),  # 256 left two-sigma noise in the gap
                    dataclasses.replace(preset.train, epochs=4, batch_size=32), device=torch.device("cpu"),
                    progress=False)
    return history[-1].test_accuracy


def test_training_with_the_fast_path_reaches_the_reference_accuracy():
    reference, fast = _accuracy("reference"), _accuracy("auto")
    assert reference > 0.4 and fast > 0.4  # chance is 0.125
    assert abs(fast - reference) <= 0.05
