"""Import of the authors' DelRec SHD checkpoints with feedforward DCLS delays (Queant et al. 2025,
``alexmaxad/DelRec``).

The state_dicts below have the key layout, shapes and dtypes of the SHD models with feedforward
delays of ``src/SHD/snn.py`` under ``configs/perf_SHD.py`` (the ``delrec_shd`` recipe): hidden
block ``l`` is ``layers.{5l}`` synapses (``nn.Linear``, or ``dcls_module``: DCLS ``v1``,
``weight [out, in, 1]``, ``P [1, out, in, 1]``, no ``SIG``), ``layers.{5l+1}`` BatchNorm,
``layers.{5l+2}`` LIF or recurrent-delay LIF (``recurrent_weights [N, N]``, ``recurrent_delays
[N]``; no ``p_spread``: ``use_sig_p = False``), ``layers.{5l+3}`` spike recorder,
``layers.{5l+4}`` dropout; the readout ``layers.10`` synapses and ``layers.11`` LIF (threshold
1e8). Every tensor is float32 with a bias (``num_batches_tracked`` int64).
``no_delay_in_first_layer``/``no_delay_in_last_layer`` (both True in the config) decide whether
``layers.0``/``layers.10`` are Linear or DCLS.

``official_forward`` is an independent float64 re-implementation of their evaluation forward
(positions rounded half to even by ``round_pos``, recurrent sigma = 0): DCLS as a
cross-correlation over the input padded with K-1 zeros on the left and (K-1)//2 on the right
(``dcls_module.forward``), tap ``round(P) + K//2``, kernel normalised by its sum + 1e-7, so a
DCLS stage's output is (K-1)//2 steps longer than its input and every later stage runs on the
longer sequence; BatchNorm with running statistics at every step; LIF ``H = V (1 - 1/tau) + I``,
spike if ``H >= 1``, ``V = H (1 - S)``; recurrent input ``sum_j W[i, j] s_j[t - 1 - D_j]``;
readout = the readout LIF's membrane, the class ``argmax sum_t softmax(v[t])`` and the loss its
cross-entropy (``src/utils.py`` ``calc_metric_SHD``/``calc_loss_SHD``).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from delrec_reference import (
    assert_delrec_tensors_in_place,
    delrec_hidden_layer,
    delrec_synapses,
    leaky_readout,
    random_shd_recurrence,
    random_shd_stage,
    round_half_even,
)
from helpers import import_and_run

from delaydeploy.errors import CheckpointError
from delaydeploy.importers import import_delrec
from delaydeploy.lowering import lower
from delaydeploy.model import loss_function
from delaydeploy.reference import predict, simulate

K = 25  # max_feedforward_delay of configs/perf_SHD.py (250 // time_step, made odd)
RIGHT = (K - 1) // 2  # its right_padding
TAU = 1.05
HIDDEN = 16
LAYERS = 2
CLASSES = 20
INPUTS = 140
STEPS = 40
BATCH = 3
BN_EPS = 1e-5
READOUT = 5 * LAYERS  # layers.10
# model class and flags -> (DCLS per synaptic stage, recurrent per hidden layer)
VARIANTS = {
    "feedforward": ((False, True, False), (False, False)),  # SNN_feedforward_delays, the config's flags
    "recurrent_and_feedforward": ((False, True, False), (False, True)),  # SNN_recurrent_and_feedforward_delays
    "all_dcls": ((True, True, True), (True, True)),  # the same, no_delay_in_first/last_layer = False
}
# (layer index, out, in, P): positions planted to check the rounding convention at its edges
PLANTED_P = [(5, 0, 0, 2.5), (5, 0, 1, -3.5), (5, 1, 2, 12.0), (5, 1, 3, -12.0), (5, 2, 4, 0.5)]
PLANTED_D = [(7, 0, 2.5), (7, 1, 3.5), (7, 2, 0.0)]  # (layer index, neuron, recurrent delay)


def official_state(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict laid out as the authors' SHD model ``variant``, with random float32 values."""
    dcls, recurrent = VARIANTS[variant]
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    sizes = [INPUTS] + [HIDDEN] * LAYERS + [CLASSES]
    for stage in range(LAYERS + 1):
        index, n_in, n_out = 5 * stage, sizes[stage], sizes[stage + 1]
        random_shd_stage(state, index, n_in, n_out, dcls=dcls[stage], kernel_size=K, generator=g)
        state[f"layers.{index}.bias"] = torch.randn(n_out, generator=g) * 0.2
        if stage == LAYERS:
            break
        norm = index + 1
        state[f"layers.{norm}.weight"] = 0.5 + 1.5 * torch.rand(n_out, generator=g)
        state[f"layers.{norm}.bias"] = torch.rand(n_out, generator=g) * 1.4 - 0.4  # some fire with no input
        state[f"layers.{norm}.running_mean"] = torch.rand(n_out, generator=g) * 2.0
        state[f"layers.{norm}.running_var"] = 0.5 + 2.5 * torch.rand(n_out, generator=g)
        state[f"layers.{norm}.num_batches_tracked"] = torch.tensor(123, dtype=torch.int64)
        if recurrent[stage]:
            random_shd_recurrence(state, index + 2, n_out, g)
    for index, out, inp, value in PLANTED_P:
        state[f"layers.{index}.P"][0, out, inp, 0] = value
    if recurrent[1]:
        for index, neuron, value in PLANTED_D:
            state[f"layers.{index}.recurrent_delays"][neuron] = value
    return state


def official_input(seed: int = 1) -> torch.Tensor:
    """Spike counts ``[T, B, 140]`` (values above 1 occur, as in the binned SHD frames)."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((STEPS, BATCH, INPUTS), 0.4, dtype=torch.float64), generator=g)


def official_norm(state: dict[str, torch.Tensor], index: int, x: torch.Tensor) -> torch.Tensor:
    prefix = f"layers.{index}"
    scale = state[f"{prefix}.weight"].double() / torch.sqrt(state[f"{prefix}.running_var"].double() + BN_EPS)
    return (x - state[f"{prefix}.running_mean"].double()) * scale + state[f"{prefix}.bias"].double()


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor, *, right: int = RIGHT,
                     delay_sign: int = 1) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden spikes per layer and the readout membrane; ``right``/``delay_sign`` perturb it."""
    if delay_sign != 1:
        state = dict(state)
        for key in [key for key in state if key.endswith(".P")]:
            state[key] = delay_sign * state[key]
    spikes_per_layer = []
    for layer in range(LAYERS):
        current = official_norm(state, 5 * layer + 1, delrec_synapses(state, 5 * layer, x, K, right))
        x = delrec_hidden_layer(state, 5 * layer + 2, current, TAU)
        spikes_per_layer.append(x)
    return spikes_per_layer, leaky_readout(delrec_synapses(state, READOUT, x, K, right), TAU)


def official_decision(output: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``calc_metric_SHD``/``calc_loss_SHD``: argmax and cross-entropy of ``sum_t softmax(v[t])``."""
    summed = torch.softmax(output, dim=2).sum(0)
    one_hot = torch.nn.functional.one_hot(labels, CLASSES).double()
    return summed.argmax(1), torch.nn.CrossEntropyLoss()(summed, one_hot)


def expected_lengths(variant: str) -> list[int]:
    """Length of each hidden layer's and the readout's sequence: T plus (K-1)//2 per DCLS stage so far."""
    return (STEPS + RIGHT * np.cumsum(VARIANTS[variant][0])).tolist()


def imported_model(state: dict[str, torch.Tensor]):
    return import_delrec(state, "delrec_shd", hidden=HIDDEN).build_model().double()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_official_tensor_lands_in_its_place(variant):
    dcls, recurrent = VARIANTS[variant]
    state = official_state(variant)
    checkpoint = import_delrec(state, "delrec_shd", hidden=HIDDEN)
    config = checkpoint.config
    assert config.delay_stages == dcls and config.recurrent_layers == recurrent
    assert (config.semantics, config.kernel_size, config.official_tail) == ("official", K, RIGHT)
    assert (config.tau, config.threshold, config.reset, config.batchnorm, config.bias) == (TAU, 1.0, "hard", True, True)
    assert (config.readout_tau, config.decision) == (None, "summed_softmax")
    model = checkpoint.build_model()
    assert_delrec_tensors_in_place(model, state, stride=5, neuron_offset=2, dcls=dcls, recurrent=recurrent,
                                   right_padding=RIGHT)
    for layer, block in enumerate(model.blocks):
        for name in ("weight", "bias", "running_mean", "running_var"):
            np.testing.assert_array_equal(getattr(block.norm, name).detach().numpy(),
                                          state[f"layers.{5 * layer + 1}.{name}"].numpy())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_integer_delays_follow_the_authors_rounding(variant):
    dcls, recurrent = VARIANTS[variant]
    state = official_state(variant)
    network = lower(imported_model(state))
    for stage, lowered in enumerate([*network.layers, network.readout]):
        positions = state.get(f"layers.{5 * stage}.P")
        expected = np.zeros(lowered.weights.shape, dtype=int) if positions is None else \
            K // 2 - round_half_even(positions[0, :, :, 0]).astype(int)
        np.testing.assert_array_equal(lowered.delays, expected)
        assert lowered.official_tail == (RIGHT if dcls[stage] else 0)
    # P = 2.5, -3.5, 12, -12, 0.5 -> delays 10, 16, 0, 24, 12 (half to even)
    delays = network.layers[1].delays
    assert [int(delays[0, 0]), int(delays[0, 1]), int(delays[1, 2]), int(delays[1, 3]), int(delays[2, 4])] == \
        [10, 16, 0, 24, 12]
    if recurrent[1]:  # recurrent delays 2.5, 3.5, 0 -> 2, 4, 0
        assert [int(network.layers[1].recurrent_delays[5, n]) for n in (0, 1, 2)] == [2, 4, 0]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_imported_model_reproduces_the_official_forward(variant):
    state = official_state(variant)
    x = official_input()
    expected_spikes, expected_readout = official_forward(state, x)
    lengths = expected_lengths(variant)
    model = imported_model(state)
    with torch.no_grad():
        out = model(x, rounded=True)
    for layer in range(LAYERS):
        assert out.spikes[layer].shape == (lengths[layer], BATCH, HIDDEN)
        assert 0.02 < float(expected_spikes[layer].mean()) < 0.6  # the layers are active, not saturated
        np.testing.assert_array_equal(out.spikes[layer].numpy(), expected_spikes[layer].numpy())
    # the DCLS padding matters: layer 2 fires in the steps after the input (folded BatchNorm bias, delays)
    assert float(expected_spikes[1][STEPS:].sum()) > 0
    assert out.readout.shape == (lengths[-1], BATCH, CLASSES)
    np.testing.assert_allclose(out.readout.numpy(), expected_readout.numpy(), rtol=0, atol=1e-5)
    # the comparison can fail: no right padding, or the opposite delay convention, is another forward
    no_padding_spikes, no_padding_readout = official_forward(state, x, right=0)
    assert no_padding_readout.shape[0] == STEPS < out.readout.shape[0]
    assert no_padding_spikes[1].shape[0] == STEPS < out.spikes[1].shape[0]
    flipped = official_forward(state, x, delay_sign=-1)[0]
    assert not torch.equal(flipped[1], expected_spikes[1])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lowered_reference_matches_the_rounded_model(variant):
    model = imported_model(official_state(variant, seed=3))
    x = official_input(seed=4)
    with torch.no_grad():
        out = model(x, rounded=True)
    network = lower(model)
    result = simulate(network, x.numpy(), semantics="official")
    for layer in range(LAYERS):
        assert float(out.spikes[layer].sum()) > 0
        np.testing.assert_array_equal(result.spikes[layer].numpy(), out.spikes[layer].numpy())
    np.testing.assert_allclose(result.readout.numpy(), out.readout.numpy(), rtol=0, atol=1e-9)
    assert torch.equal(result.prediction(), predict(out.readout))
    # streaming (no cut, every layer runs T + tail steps) agrees before the first cut only
    streaming = simulate(network, x.numpy(), semantics="streaming")
    assert streaming.readout.shape[0] == STEPS + network.tail_steps
    np.testing.assert_array_equal(streaming.spikes[0][:STEPS].numpy(), out.spikes[0][:STEPS].numpy())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_readout_and_decision_are_the_authors(variant):
    state = official_state(variant, seed=5)
    x = official_input(seed=6)
    _, expected_output = official_forward(state, x)
    labels = torch.tensor([0, 7, 19])
    expected_class, expected_loss = official_decision(expected_output, labels)
    model = imported_model(state)
    with torch.no_grad():
        readout = model(x, rounded=True).readout
    np.testing.assert_allclose(readout.numpy(), expected_output.numpy(), rtol=0, atol=1e-5)
    assert torch.equal(predict(readout, decision=model.config.decision), expected_class)
    torch.testing.assert_close(loss_function(readout, labels, decision=model.config.decision), expected_loss,
                               rtol=1e-6, atol=1e-6)
    result = simulate(lower(model), x.numpy(), semantics="official")
    np.testing.assert_allclose(result.readout.numpy(), expected_output.numpy(), rtol=0, atol=1e-5)
    assert torch.equal(result.prediction(), expected_class)


def test_predictions_agree_over_many_samples():
    """The class of each of 16 samples, official forward against the import (rounded model and IR)."""
    state = official_state("recurrent_and_feedforward", seed=7)
    g = torch.Generator().manual_seed(8)
    rates = torch.rand(16, INPUTS, generator=g, dtype=torch.float64) ** 3 * 1.5  # one rate profile per sample
    x = torch.poisson(rates.expand(STEPS, 16, INPUTS).contiguous(), generator=g)
    _, expected_output = official_forward(state, x)
    expected_class = official_decision(expected_output, torch.zeros(16, dtype=torch.long))[0]
    assert len(set(expected_class.tolist())) > 2  # not a constant decision
    model = imported_model(state)
    with torch.no_grad():
        assert torch.equal(predict(model(x, rounded=True).readout), expected_class)
    assert torch.equal(simulate(lower(model), x.numpy(), semantics="official").prediction(), expected_class)


def _without(key: str) -> dict[str, torch.Tensor]:
    state = official_state("all_dcls")
    del state[key]
    return state


@pytest.mark.parametrize("key", ["layers.0.P", "layers.5.weight", "layers.6.running_var", "layers.7.recurrent_delays",
                                 "layers.10.bias"])
def test_missing_key_is_named(key):
    with pytest.raises(CheckpointError, match=rf"expected key '{re.escape(key)}' is missing"):
        import_delrec(_without(key), "delrec_shd", hidden=HIDDEN)


@pytest.mark.parametrize("key", ["layers.5.SIG", "layers.12.weight"])
def test_extra_key_is_named(key):
    state = official_state("recurrent_and_feedforward")
    state[key] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=rf"unexpected keys \['{re.escape(key)}'\]"):
        import_delrec(state, "delrec_shd", hidden=HIDDEN)


@pytest.mark.parametrize(("key", "shape"), [("layers.5.weight", (HIDDEN, HIDDEN, 2)),  # kernel_count = 2
                                            ("layers.5.P", (1, HIDDEN, HIDDEN - 1, 1)),
                                            ("layers.10.weight", (CLASSES, HIDDEN - 1, 1))])
def test_wrong_shape_is_named(key, shape):
    state = official_state("all_dcls")
    state[key] = torch.zeros(shape)
    with pytest.raises(CheckpointError, match=rf"{re.escape(key)} has shape {re.escape(str(shape))}"):
        import_delrec(state, "delrec_shd", hidden=HIDDEN)


def test_position_outside_the_kernel_is_named():
    state = official_state("feedforward")
    state["layers.5.P"][0, 1, 1, 0] = -12.6
    with pytest.raises(CheckpointError, match=r"layers\.5\.P\[0, 1, 1, 0\] = -12\.6; positions of a 25-tap kernel"):
        import_delrec(state, "delrec_shd", hidden=HIDDEN)


def test_equiparam_recipe_is_refused_by_name():
    """configs/equiparam_SHD.py: no BatchNorm, no bias, tau 2, DCLS without right padding; its
    blocks are synapses, LIF, recorder, dropout (stride 4). delrec_shd must not misread it, and
    points to the delrec_shd_equiparam preset."""
    g = torch.Generator().manual_seed(0)
    state = {"layers.0.weight": torch.randn(HIDDEN, INPUTS, generator=g),
             "layers.4.weight": torch.randn(HIDDEN, HIDDEN, 1, generator=g),
             "layers.4.P": torch.zeros(1, HIDDEN, HIDDEN, 1),
             "layers.8.weight": torch.randn(CLASSES, HIDDEN, generator=g)}
    with pytest.raises(CheckpointError, match=r"no BatchNorm .*'layers\.0\.weight'.*configs/equiparam_SHD\.py recipe "
                                              r"\(no BatchNorm, no bias, tau 2, DCLS without right padding\)"
                                              r".*--preset shd_equiparam \(preset delrec_shd_equiparam\)"):
        import_delrec(state, "delrec_shd", hidden=HIDDEN)


def test_linear_shd_model_keeps_its_streaming_import():
    """The Linear SHD model (perf_SHD.py's SNN_recurrent_delays) has no DCLS stage and no tail."""
    state = official_state("recurrent_and_feedforward")
    state["layers.5.weight"] = state["layers.5.weight"][:, :, 0].contiguous()
    del state["layers.5.P"]
    config = import_delrec(state, "delrec_shd", hidden=HIDDEN).config
    assert (config.semantics, config.tail, config.delay_stages) == ("streaming", 0, (False, False, False))
    model = imported_model(state)
    x = official_input()
    expected_spikes, expected_readout = official_forward(state, x)
    with torch.no_grad():
        out = model(x, rounded=True)
    for layer in range(LAYERS):
        np.testing.assert_array_equal(out.spikes[layer].numpy(), expected_spikes[layer].numpy())
    np.testing.assert_allclose(out.readout.numpy(), expected_readout.numpy(), rtol=0, atol=1e-9)


def test_cli_imports_and_runs_the_shd_dcls_layout(tmp_path):
    state = official_state("recurrent_and_feedforward")
    result = import_and_run(tmp_path, "delrec", state, "shd", official_input().numpy(),
                            import_options=("--hidden", str(HIDDEN)))
    expected_spikes, expected_output = official_forward(state, official_input())
    for layer in range(LAYERS):
        np.testing.assert_array_equal(result[f"spikes_{layer}"], expected_spikes[layer].numpy())
    np.testing.assert_allclose(result["readout"], expected_output.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(result["pred"], torch.softmax(expected_output, 2).sum(0).argmax(1).numpy())
