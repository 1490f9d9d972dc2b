"""Recurrent-delay (DelRec) models deploy exactly: NIR, Lava float and Lava fixed point.

Two models, each with a hard and a soft reset: one trained briefly here on the synthetic
task (``synthetic_delrec`` preset, small), and the official DelRec SHD model imported with
``import_delrec`` from its conformance file (its soft variant swaps the reset in the IR).
Every target must give 0 spike mismatches in every hidden layer and the readout of its
oracle: the float reference to 1e-9, or the integer reference exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.datasets import pad_collate
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.exporters.nir import network_to_nir
from delaydeploy.exporters.nir_executor import simulate_nir
from delaydeploy.fixed_reference import simulate_fixed
from delaydeploy.ir import Network
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN
from delaydeploy.quantize import quantize
from delaydeploy.reference import Simulation, simulate
from delaydeploy.training import seed_everything, train

MODELS = ("trained-hard", "trained-soft", "official-hard", "official-soft")


def _train_small(reset: str) -> DelaySNN:
    """A small recurrent-delay model after one short epoch on the synthetic task (seconds)."""
    preset = get_preset("synthetic_delrec")
    network = dataclasses.replace(preset.network, hidden_sizes=(12,), reset=reset)
    config = dataclasses.replace(preset.train, epochs=1, batch_size=32)
    seed_everything(0)
    model = DelaySNN(network)
    train(model, SyntheticTimingDataset("train", num_samples=96), SyntheticTimingDataset("test", num_samples=8),
          config, device=torch.device("cpu"), progress=False)
    return model


def _synthetic_inputs(samples: int) -> np.ndarray:
    test_set = SyntheticTimingDataset("test", num_samples=samples)
    return pad_collate([test_set[i] for i in range(samples)])[0].double().numpy()


def _with_reset(network: Network, reset: str) -> Network:
    layers = [dataclasses.replace(layer, neuron=dataclasses.replace(layer.neuron, reset=reset))
              for layer in network.layers]
    return dataclasses.replace(network, layers=layers)


@pytest.fixture(scope="module", params=MODELS)
def deployable(request) -> tuple[Network, np.ndarray]:
    """``(network, input)`` of one of :data:`MODELS`, with recurrent delays of more than one value."""
    source, reset = request.param.split("-")
    if source == "trained":
        network, x = lower(_train_small(reset)), _synthetic_inputs(4)
    else:  # imported by import_delrec and lowered (conftest), with its official input
        network, x, _ = request.getfixturevalue("delrec_model")
        network = _with_reset(network, reset)
    recurrent = [layer for layer in network.layers if layer.is_recurrent]
    assert recurrent and all(np.unique(layer.recurrent_delays).size > 1 for layer in recurrent)
    assert all(layer.neuron.reset == reset for layer in network.layers)
    return network, x


def _assert_same(expected: Simulation, actual: Simulation, network: Network, *, exact: bool) -> None:
    assert len(actual.spikes) == len(expected.spikes) == len(network.layers)
    for layer, want, got in zip(network.layers, expected.spikes, actual.spikes):
        want = torch.as_tensor(want, dtype=torch.float64)
        assert want.sum() > 0, f"{layer.name} is silent: the comparison would prove little"
        assert got.shape == want.shape
        mismatches = int((got != want).sum())
        assert mismatches == 0, f"{layer.name}: {mismatches} spike mismatches"
    if exact:
        assert actual.readout.dtype == torch.int64
        np.testing.assert_array_equal(actual.readout.numpy(), np.asarray(expected.readout, dtype=np.int64))
    else:
        np.testing.assert_allclose(actual.readout.numpy(), expected.readout.numpy(), rtol=0, atol=1e-9)


def test_nir(deployable) -> None:
    network, x = deployable
    _assert_same(simulate(network, x), simulate_nir(network_to_nir(network), x), network, exact=False)


@pytest.mark.lava
def test_lava_float(deployable) -> None:
    from delaydeploy.exporters.lava.graph import simulate_lava

    network, x = deployable
    _assert_same(simulate(network, x), simulate_lava(network, x), network, exact=False)


@pytest.mark.lava
def test_lava_fixed_point(deployable) -> None:
    from delaydeploy.exporters.lava.graph import simulate_lava

    network, x = deployable
    fixed = quantize(network, calibration=x)
    recurrent = [layer.is_recurrent for layer in network.layers]
    assert [layer.recurrent_delays is not None for layer in fixed.layers] == recurrent
    _assert_same(simulate_fixed(fixed, x), simulate_lava(fixed, x), network, exact=True)


@pytest.mark.lava
def test_cli_export_and_verify_bundles(tmp_path, capsys) -> None:
    """The user's path: checkpoint -> ``delaydeploy export`` (lava, loihi2) -> ``delaydeploy verify``."""
    checkpoint = tmp_path / "delrec.pt"
    save_checkpoint(checkpoint_of(_train_small("soft"), preset="synthetic_delrec"), checkpoint)
    inputs = tmp_path / "x.npy"
    np.save(inputs, _synthetic_inputs(3))
    assert main(["verify", str(checkpoint), "--input", str(inputs)]) == 0  # torch model vs the IR reference
    for target in ("lava", "loihi2"):
        bundle = tmp_path / f"bundle_{target}"
        assert main(["export", str(checkpoint), "--target", target, "-o", str(bundle), "--input", str(inputs)]) == 0
        capsys.readouterr()
        assert main(["verify", str(bundle)]) == 0
        out = capsys.readouterr().out
        assert "lava-cpu vs" in out and "verified: 0 spike mismatches" in out, out
