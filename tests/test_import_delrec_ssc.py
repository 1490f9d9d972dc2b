"""Import of the authors' DelRec SSC checkpoints (Queant et al. 2025, ``alexmaxad/DelRec``).

The state_dicts below have the key layout, shapes and dtypes of the two SSC models of
``src/SSC/snn.py``: ``SNN_recurrent_delays`` (what ``perf_SSC.py`` trains) and
``SNN_recurrent_and_feedforward_delays``. Hidden block ``l`` is ``layers.{4l}`` synapses
(``nn.Linear``; or DCLS ``v1``: ``weight [out, in, 1]``, ``P [1, out, in, 1]``, no ``SIG``),
``layers.{4l+1}`` dropout, ``layers.{4l+2}`` recurrent-delay LIF (``recurrent_weights [N, N]``,
``recurrent_delays [N]``, ``p_spread [N]``), ``layers.{4l+3}`` spike recorder; the readout
``layers.12`` is a bare synaptic stage. Every tensor is float32 with a bias.

``official_forward`` is an independent float64 re-implementation of their evaluation forward
(delays rounded half to even, sigma = 0): DCLS as a cross-correlation with K-1 zeros on the
left only (tap ``round(P) + K//2``, kernel normalised by its sum + 1e-7), so the output is as
long as the input; LIF ``H = V (1 - 1/tau) + I``, spike if ``H >= 1``, soft reset ``V = H - S``;
recurrent input ``sum_j W[i, j] s_j[t - 1 - D_j]``; readout = the synapses' per-step output,
the class its argmax summed over time and the loss the cross-entropy of that sum (``src/utils.py``
``calc_metric_SSC``/``calc_loss_SSC``).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from delrec_reference import assert_delrec_tensors_in_place, delrec_hidden_layer, delrec_synapses, round_half_even
from helpers import import_and_run

from delaydeploy.errors import CheckpointError
from delaydeploy.importers import import_delrec
from delaydeploy.lowering import lower
from delaydeploy.model import loss_function
from delaydeploy.reference import predict, simulate

K = 25  # max_feedforward_delay of configs/perf_SSC.py
TAU = 2.0
HIDDEN = 16
LAYERS = 3
CLASSES = 35
INPUTS = 140
STEPS = 60
READOUT = 4 * LAYERS  # layers.12
# (layer index, out, in, P): positions planted to check the rounding convention at its edges
PLANTED_P = [(0, 0, 0, 2.5), (0, 0, 1, -3.5), (4, 1, 2, 12.0), (4, 1, 3, -12.0), (READOUT, 2, 4, 0.5)]
PLANTED_D = [(2, 0, 2.5), (2, 1, 3.5), (6, 2, 0.0), (10, 3, 0.5)]  # (layer index, neuron, recurrent delay)


def official_state(feedforward_delays: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict laid out as the authors' SSC model, with random float32 values."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    sizes = [INPUTS] + [HIDDEN] * LAYERS + [CLASSES]
    for stage in range(LAYERS + 1):
        index, n_in, n_out = 4 * stage, sizes[stage], sizes[stage + 1]
        weight = torch.randn(n_out, n_in, generator=g) * (2.5 / n_in**0.5)
        if feedforward_delays:
            state[f"layers.{index}.weight"] = weight[:, :, None].contiguous()
            positions = torch.randint(-(K // 2), K // 2 + 1, (1, n_out, n_in, 1), generator=g).float()
            state[f"layers.{index}.P"] = positions
        else:
            state[f"layers.{index}.weight"] = weight
        state[f"layers.{index}.bias"] = torch.randn(n_out, generator=g) * 0.1
        if stage < LAYERS:
            neuron = index + 2
            state[f"layers.{neuron}.recurrent_weights"] = torch.randn(n_out, n_out, generator=g) * 0.5
            state[f"layers.{neuron}.recurrent_delays"] = torch.randint(0, 30, (n_out,), generator=g).float()
            state[f"layers.{neuron}.p_spread"] = torch.randn(n_out, generator=g)
    if feedforward_delays:
        for index, out, inp, value in PLANTED_P:
            state[f"layers.{index}.P"][0, out, inp, 0] = value
    for index, neuron, value in PLANTED_D:
        state[f"layers.{index}.recurrent_delays"][neuron] = value
    return state


def official_input(seed: int = 1) -> torch.Tensor:
    """Spike counts ``[T, B, 140]`` (values above 1 occur, as in the binned SSC frames)."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((STEPS, 3, INPUTS), 0.3, dtype=torch.float64), generator=g)


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor, *, delay_shift: int = 0,
                     recurrence: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden spikes per layer and the readout output; ``delay_shift``/``recurrence`` perturb it."""
    spikes_per_layer = []
    for layer in range(LAYERS):
        x = delrec_hidden_layer(state, 4 * layer + 2, delrec_synapses(state, 4 * layer, x, K), TAU, soft_reset=True,
                                delay_shift=delay_shift, recurrence=recurrence)
        spikes_per_layer.append(x)
    return spikes_per_layer, delrec_synapses(state, READOUT, x, K)


def imported_model(state: dict[str, torch.Tensor]):
    return import_delrec(state, "delrec_ssc", hidden=HIDDEN).build_model().double()


@pytest.mark.parametrize("feedforward_delays", [False, True])
def test_every_official_tensor_lands_in_its_place(feedforward_delays):
    state = official_state(feedforward_delays)
    checkpoint = import_delrec(state, "delrec_ssc", hidden=HIDDEN)
    config = checkpoint.config
    assert config.delay_stages == (feedforward_delays,) * (LAYERS + 1)
    assert config.recurrent_layers == (True,) * LAYERS
    assert (config.tau, config.threshold, config.reset) == (TAU, 1.0, "soft")
    assert not config.batchnorm and config.bias
    assert config.tail == 0  # the authors' DCLS pads on the left only: no extra steps
    assert_delrec_tensors_in_place(checkpoint.build_model(), state, stride=4, neuron_offset=2,
                                   dcls=config.delay_stages, recurrent=config.recurrent_layers, right_padding=0)
    assert all(f"layers.{4 * layer + 2}.p_spread" in state for layer in range(LAYERS))  # the widths were compared


@pytest.mark.parametrize("feedforward_delays", [False, True])
def test_integer_delays_follow_the_authors_rounding(feedforward_delays):
    state = official_state(feedforward_delays)
    network = lower(imported_model(state))
    stages = [*network.layers, network.readout]
    for stage, lowered in enumerate(stages):
        positions = state.get(f"layers.{4 * stage}.P")
        expected = np.zeros(lowered.weights.shape, dtype=int) if positions is None else \
            K // 2 - round_half_even(positions[0, :, :, 0]).astype(int)
        np.testing.assert_array_equal(lowered.delays, expected)
    for layer, lowered in enumerate(network.layers):
        per_source = round_half_even(state[f"layers.{4 * layer + 2}.recurrent_delays"]).astype(int)
        np.testing.assert_array_equal(lowered.recurrent_delays, np.tile(per_source, (HIDDEN, 1)))
    # the planted halves: 2.5 -> 2, 3.5 -> 4, 0.5 -> 0 (half to even)
    assert [int(network.layers[0].recurrent_delays[5, n]) for n in (0, 1)] == [2, 4]
    assert int(network.layers[2].recurrent_delays[0, 3]) == 0
    if feedforward_delays:  # P = 2.5, -3.5, 12, -12, 0.5 -> delays 10, 16, 0, 24, 12
        assert [int(network.layers[0].delays[0, i]) for i in (0, 1)] == [10, 16]
        assert [int(network.layers[1].delays[1, i]) for i in (2, 3)] == [0, 24]
        assert int(network.readout.delays[2, 4]) == 12


@pytest.mark.parametrize("feedforward_delays", [False, True])
def test_imported_model_reproduces_the_official_forward(feedforward_delays):
    state = official_state(feedforward_delays)
    x = official_input()
    expected_spikes, expected_readout = official_forward(state, x)
    model = imported_model(state)
    with torch.no_grad():
        out = model(x, rounded=True)
        readout_synapses = model.readout(out.spikes[-1], True)
    for layer in range(LAYERS):
        assert out.spikes[layer].shape == (STEPS, 3, HIDDEN)
        assert 0.05 < float(expected_spikes[layer].mean()) < 0.6  # the layers are active, not saturated
        np.testing.assert_array_equal(out.spikes[layer].numpy(), expected_spikes[layer].numpy())
    np.testing.assert_allclose(readout_synapses.numpy(), expected_readout.numpy(), rtol=0, atol=1e-5)
    # the comparison can fail: one step more of recurrent delay, or no recurrence, changes the spikes
    for perturbed in (official_forward(state, x, delay_shift=1)[0], official_forward(state, x, recurrence=False)[0]):
        assert any(not torch.equal(a, b) for a, b in zip(perturbed, expected_spikes))


@pytest.mark.parametrize("feedforward_delays", [False, True])
def test_lowered_reference_matches_the_rounded_model(feedforward_delays):
    model = imported_model(official_state(feedforward_delays, seed=3))
    x = official_input(seed=4)
    with torch.no_grad():
        out = model(x, rounded=True)
    result = simulate(lower(model), x.numpy())
    for layer in range(LAYERS):
        assert float(out.spikes[layer].sum()) > 0
        np.testing.assert_array_equal(result.spikes[layer].numpy(), out.spikes[layer].numpy())
    assert result.readout.shape == (STEPS, 3, CLASSES)
    np.testing.assert_allclose(result.readout.numpy(), out.readout.numpy(), rtol=0, atol=1e-9)


def official_decision(output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' class and loss (``src/utils.py`` ``calc_metric_SSC``/``calc_loss_SSC``):
    argmax and cross-entropy of ``sum_t output[t]``, no softmax."""
    summed = output.sum(0)
    return summed.argmax(1), torch.nn.functional.cross_entropy(summed, labels)


@pytest.mark.parametrize("feedforward_delays", [False, True])
def test_readout_and_decision_are_the_authors(feedforward_delays):
    state = official_state(feedforward_delays, seed=5)
    x = official_input(seed=6)
    _, expected_output = official_forward(state, x)
    labels = torch.tensor([0, 7, 34])
    expected_class, expected_loss = official_decision(expected_output, labels)
    checkpoint = import_delrec(state, "delrec_ssc", hidden=HIDDEN)
    assert (checkpoint.config.readout_tau, checkpoint.config.decision) == (1.0, "summed_output")
    model = checkpoint.build_model().double()
    with torch.no_grad():
        readout = model(x, rounded=True).readout
    np.testing.assert_allclose(readout.numpy(), expected_output.numpy(), rtol=0, atol=1e-6)
    assert torch.equal(predict(readout, decision=model.config.decision), expected_class)
    torch.testing.assert_close(loss_function(readout, labels, decision=model.config.decision), expected_loss,
                               rtol=1e-6, atol=1e-6)
    # the deployment IR and its reference simulator keep the rule: same output, same classes
    network = lower(model)
    assert (network.readout.tau, network.decision) == (1.0, "summed_output")
    result = simulate(network, x.numpy())
    np.testing.assert_allclose(result.readout.numpy(), expected_output.numpy(), rtol=0, atol=1e-6)
    assert torch.equal(result.prediction(), expected_class)
    # a leaky readout (the default tau) would not be the authors' output
    leaky = import_delrec(state, "delrec_ssc", hidden=HIDDEN)
    leaky.config = dataclasses.replace(leaky.config, readout_tau=None)
    with torch.no_grad():
        leaky_readout = leaky.build_model().double()(x, rounded=True).readout
    assert float((leaky_readout - expected_output).abs().max()) > 1e-3


def _without(key: str) -> dict[str, torch.Tensor]:
    state = official_state(True)
    del state[key]
    return state


@pytest.mark.parametrize("key", ["layers.0.weight", "layers.4.P", "layers.6.recurrent_delays",
                                 "layers.10.recurrent_weights", "layers.12.bias"])
def test_missing_key_is_named(key):
    with pytest.raises(CheckpointError, match=rf"expected key '{re.escape(key)}' is missing"):
        import_delrec(_without(key), "delrec_ssc", hidden=HIDDEN)


@pytest.mark.parametrize("key", ["layers.13.weight", "layers.3.spikes"])
def test_extra_key_is_named(key):
    state = official_state(False)
    state[key] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=rf"unexpected keys \['{re.escape(key)}'\]"):
        import_delrec(state, "delrec_ssc", hidden=HIDDEN)


@pytest.mark.parametrize("feedforward_delays", [False, True])
@pytest.mark.parametrize("key", ["layers.4.weight", "layers.6.recurrent_weights", "layers.12.bias"])
def test_wrong_shape_is_named(key, feedforward_delays):
    state = official_state(feedforward_delays)
    shape = list(state[key].shape)
    shape[-1 if key.endswith("bias") else 1] -= 1
    state[key] = torch.zeros(shape)
    with pytest.raises(CheckpointError, match=rf"{re.escape(key)} has shape {re.escape(str(tuple(shape)))}"):
        import_delrec(state, "delrec_ssc", hidden=HIDDEN)


def test_hidden_size_mismatch_and_batchnorm_are_refused():
    with pytest.raises(CheckpointError, match=r"layers\.0\.weight has shape \(16, 140\), the configuration "
                                              r"needs \(256, 140\)"):
        import_delrec(official_state(False), "delrec_ssc")
    state = official_state(False)
    state["layers.4.running_mean"] = torch.zeros(HIDDEN)
    with pytest.raises(CheckpointError, match=r"layers\.4\.running_mean: the authors' SSC model normalises"):
        import_delrec(state, "delrec_ssc", hidden=HIDDEN)
    state = official_state(True)
    state["layers.8.P"][0, 1, 1, 0] = 13.0
    with pytest.raises(CheckpointError, match=r"layers\.8\.P\[0, 1, 1, 0\] = 13; positions of a 25-tap kernel"):
        import_delrec(state, "delrec_ssc", hidden=HIDDEN)


def test_cli_imports_the_ssc_layout(tmp_path):
    state = official_state(True)
    result = import_and_run(tmp_path, "delrec", state, "ssc", official_input().numpy(),
                            import_options=("--hidden", str(HIDDEN)))
    expected_spikes, expected_output = official_forward(state, official_input())
    for layer in range(LAYERS):
        np.testing.assert_array_equal(result[f"spikes_{layer}"], expected_spikes[layer].numpy())
    np.testing.assert_allclose(result["readout"], expected_output.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(result["pred"], expected_output.sum(0).argmax(1).numpy())


def test_a_state_without_learned_spreads_imports_with_zero_logits():
    """use_sig_p = False leaves no p_spread: the widths start where DelRec's do (moot at sigma 0)."""
    state = {key: value for key, value in official_state(False).items() if not key.endswith("p_spread")}
    model = import_delrec(state, "delrec_ssc", hidden=HIDDEN).build_model()
    assert all(torch.equal(block.neuron.spread_logits, torch.zeros(HIDDEN)) for block in model.blocks)
