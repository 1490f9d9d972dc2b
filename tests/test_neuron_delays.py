"""One learned delay per neuron (axonal, dendritic): a per-channel Gaussian delay trained as one
parameter per neuron (:class:`delaydeploy.layers.NeuronDelayLinear`).

Checked against its definition (a shift by the rounded delay; the DCLS Gaussian interpolation
before rounding, and the authors' per-synapse kernel with tied positions), its gradients against
finite differences and against the per-synapse gradients summed over each neuron, through
training into the checkpoint (one position per neuron) and the IR, and the conversion of
checkpoints whose per-neuron stages were a tied per-synapse kernel.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import assert_same_network

from delaydeploy.checkpoint import Checkpoint, load_checkpoint, load_raw_state, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.errors import CheckpointError
from delaydeploy.ir import delay_structure
from delaydeploy.layers import DelayLinear, NeuronDelayLinear
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN

K = 7
GRANULARITIES = ("axonal", "dendritic")


def _stage(granularity: str, n_in: int = 5, n_out: int = 4, seed: int = 0, **options) -> NeuronDelayLinear:
    torch.manual_seed(seed)
    stage = NeuronDelayLinear(n_in, n_out, K, granularity, **options).double()
    with torch.no_grad():
        stage.weight.normal_()
        stage.positions.uniform_(-K // 2, K // 2)
    return stage


def _input(n_in: int = 5, steps: int = 12, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(steps, 3, n_in, generator=generator, dtype=torch.float64)


def _by_definition(x: np.ndarray, weight: np.ndarray, kernels: np.ndarray, granularity: str) -> np.ndarray:
    """``out[t, b, o]`` from per-neuron kernels ``[n, K]`` whose tap ``k`` delays by ``K - 1 - k``."""
    steps = x.shape[0]

    def delayed(signal: np.ndarray) -> np.ndarray:  # [T, B, n]: channel c through kernels[c]
        out = np.zeros_like(signal)
        for tap in range(K):
            shift = K - 1 - tap
            out[shift:] += kernels[:, tap] * signal[:steps - shift]
        return out

    if granularity == "axonal":
        return delayed(x) @ weight.T
    return delayed(x @ weight.T)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_rounded_delays_shift_each_neuron_by_its_own_steps(granularity):
    stage = _stage(granularity)
    stage.round_positions()
    x = _input()
    delays = stage.neuron_delays().numpy()
    assert len(set(delays.tolist())) > 1 and delays.min() >= 0 and delays.max() <= K - 1
    kernels = np.eye(K)[K - 1 - delays]  # one tap per neuron: a shift by its delay
    expected = _by_definition(x.numpy(), stage.weight.detach().numpy(), kernels, granularity)
    np.testing.assert_allclose(stage(x, rounded=True).detach().numpy(), expected, rtol=0, atol=1e-12)
    assert torch.equal(stage.integer_delays(),
                       torch.as_tensor(delays)[None, :].expand(4, 5) if granularity == "axonal"
                       else torch.as_tensor(delays)[:, None].expand(4, 5))


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("sigma", [0.0, 1.3, 3.0])
def test_continuous_delays_are_the_dcls_gaussian_interpolation(granularity, sigma):
    stage = _stage(granularity)
    stage.set_sigma(sigma)
    x = _input()
    positions = stage.positions.detach().numpy()
    taps = np.arange(K)
    g = np.exp(-0.5 * ((taps[None, :] - (positions[:, None] + K // 2)) / (abs(sigma) + 0.27)) ** 2)
    kernels = g / (g.sum(1, keepdims=True) + 1e-7)
    expected = _by_definition(x.numpy(), stage.weight.detach().numpy(), kernels, granularity)
    np.testing.assert_allclose(stage(x).detach().numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_forward_and_gradients_equal_the_authors_kernel_with_tied_positions(granularity):
    """The DCLS package's per-synapse kernel (``Dcls1d``), each neuron's synapses given one
    position: the same output, and each shared position's gradient is the sum of its synapses'."""
    stage = _stage(granularity)
    stage.set_sigma(2.0)
    dcls = DelayLinear(5, 4, K).double()
    dcls.conv_method = "reference"
    tied = stage.positions.detach()
    tied = tied[None, :].expand(4, 5) if granularity == "axonal" else tied[:, None].expand(4, 5)
    with torch.no_grad():
        dcls.dcls.weight[:, :, 0] = stage.weight
        dcls.position.copy_(tied)
    dcls.set_sigma(2.0)
    x = _input()
    ours, theirs = stage(x), dcls(x)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=0, atol=1e-10)
    upstream = torch.randn_like(ours)
    (ours * upstream).sum().backward()
    (theirs * upstream).sum().backward()
    per_synapse = dcls.dcls.P.grad[0, :, :, 0]
    summed = per_synapse.sum(0) if granularity == "axonal" else per_synapse.sum(1)
    np.testing.assert_allclose(stage.positions.grad.numpy(), summed.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(stage.weight.grad.numpy(), dcls.dcls.weight.grad[:, :, 0].numpy(), rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_gradients_match_finite_differences(granularity):
    stage = _stage(granularity, bias=True)
    stage.set_sigma(1.5)
    x = _input(steps=9).requires_grad_(True)
    parameters = {name: parameter.detach().clone().requires_grad_(True)
                  for name, parameter in stage.named_parameters()}
    assert sorted(parameters) == ["bias", "positions", "weight"]

    def forward(inputs, weight, positions, bias):
        values = {"weight": weight, "positions": positions, "bias": bias}
        return torch.func.functional_call(stage, values, (inputs,))

    arguments = (x, parameters["weight"], parameters["positions"], parameters["bias"])
    assert torch.autograd.gradcheck(forward, arguments, eps=1e-6, atol=1e-7)


def _config(granularity: str):
    return dataclasses.replace(get_preset("synthetic").network, hidden_sizes=(10, 8), delay_granularity=granularity)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_the_checkpoint_holds_one_position_per_neuron(tmp_path, granularity):
    model = tmp_path / "m.pt"
    assert main(["train", "--preset", "synthetic", "--delay-granularity", granularity, "--epochs", "1", "--quiet",
                 "--max-samples", "64", "--hidden", "10", "-o", str(model)]) == 0
    state = load_raw_state(model)["state_dict"]
    sizes = [(12, 10), (10, 10), (10, 8)]  # (in, out) of the two hidden stages and the readout
    for index, (n_in, n_out) in enumerate(sizes):
        prefix = f"blocks.{index}.synapses." if index < 2 else "readout."
        assert tuple(state[prefix + "positions"].shape) == ((n_in,) if granularity == "axonal" else (n_out,))
        assert not any(key.startswith(prefix + "dcls.") for key in state)
    network = lower(load_checkpoint(model).build_model())
    for stage in [*network.layers, network.readout]:
        assert delay_structure(stage.weights, stage.delays)[0] == granularity


def _tied_state(model: DelaySNN, granularity: str) -> dict[str, torch.Tensor]:
    """``model``'s state as delaydeploy 0.1 saved a per-neuron stage: a per-synapse DCLS kernel."""
    state = dict(model.state_dict())
    for name, module in model.named_modules():
        if isinstance(module, NeuronDelayLinear):
            prefix = f"{name}."
            n_out, n_in = module.weight.shape
            positions = state.pop(prefix + "positions")
            tied = positions[None, :].expand(n_out, n_in) if granularity == "axonal" else positions[:, None].expand(
                n_out, n_in)
            state[prefix + "dcls.P"] = tied.reshape(1, n_out, n_in, 1).clone()
            state[prefix + "dcls.weight"] = state.pop(prefix + "weight").unsqueeze(-1)
            state[prefix + "dcls.SIG"] = torch.full((1, n_out, n_in, 1), float(state.pop(prefix + "sigma_value")))
    return state


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_a_checkpoint_of_the_tied_form_is_converted(tmp_path, granularity):
    torch.manual_seed(4)
    model = DelaySNN(_config(granularity))
    legacy = Checkpoint(model.config, _tied_state(model, granularity), preset="synthetic")
    path = save_checkpoint(legacy, tmp_path / "old.pt")
    assert_same_network(lower(load_checkpoint(path).build_model()), lower(model))


def test_a_tied_form_checkpoint_whose_positions_differ_within_a_neuron_is_refused(tmp_path):
    torch.manual_seed(5)
    model = DelaySNN(_config("axonal"))
    state = _tied_state(model, "axonal")
    state["blocks.1.synapses.dcls.P"][0, 2, 3, 0] += 0.5
    path = save_checkpoint(Checkpoint(model.config, state, preset="synthetic"), tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="blocks.1.synapses is axonal but its positions differ within a neuron"):
        load_checkpoint(path)
    assert main(["inspect", str(path)]) == 2
