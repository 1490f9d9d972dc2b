"""Import of the authors' equal-parameter DelRec SHD checkpoints (Queant et al. 2025,
``alexmaxad/DelRec``: ``equiparam_SHD.py`` with ``configs/equiparam_SHD.py``), the
``delrec_shd_equiparam`` preset.

The state_dicts below have the key layout, shapes and dtypes of the SHD classes of
``src/SHD/snn.py`` under that config (``use_batch_norm = False``, ``bias = False``): hidden block
``l`` is ``layers.{4l}`` synapses (``nn.Linear`` ``weight [out, in]``, or ``dcls_module``: DCLS
``v1``, ``weight [out, in, 1]``, ``P [1, out, in, 1]``, no ``SIG``), ``layers.{4l+1}`` LIF or
recurrent-delay LIF (``recurrent_weights [N, N]``, ``recurrent_delays [N]``; ``use_sig_p = False``),
``layers.{4l+2}`` spike recorder, ``layers.{4l+3}`` dropout; the readout ``layers.8`` synapses and
``layers.9`` LIF (threshold 1e8). Every tensor is float32, none is a bias or BatchNorm entry.

``official_forward`` is an independent float64 re-implementation of their evaluation forward
(positions rounded half to even by ``round_pos``, recurrent sigma = 0): DCLS over the input padded
with K-1 = 24 zeros on the left and none on the right (``right_padding = 0``), so every stage is as
long as the input; LIF with tau 2 ``H = V (1 - 1/tau) + I``, spike if ``H >= 1``, ``V = H (1 - S)``;
recurrent input ``sum_j W[i, j] s_j[t - 1 - D_j]``; readout = the readout LIF's membrane, the class
``argmax sum_t softmax(v[t])`` (``src/utils.py`` ``calc_metric_SHD``).
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
)
from helpers import import_and_run

from delaydeploy.errors import CheckpointError
from delaydeploy.importers import import_delrec, import_official
from delaydeploy.lowering import lower
from delaydeploy.reference import predict, simulate

PRESET = "delrec_shd_equiparam"
K = 25  # max_feedforward_delay of configs/equiparam_SHD.py (250 // time_step, odd)
TAU = 2.0
HIDDEN = 16
LAYERS = 2
CLASSES = 20
INPUTS = 140
STEPS = 40
BATCH = 3
STRIDE = 4  # synapses, LIF, spike recorder, dropout
READOUT = STRIDE * LAYERS  # layers.8
# model class and flags -> (DCLS per synaptic stage, recurrent per hidden layer)
VARIANTS = {
    "recurrent": ((False, False, False), (False, True)),  # SNN_recurrent_delays (the preset's network)
    "feedforward": ((False, True, False), (False, False)),  # SNN_feedforward_delays
    "recurrent_and_feedforward": ((False, True, False), (False, True)),  # SNN_recurrent_and_feedforward_delays
    "all_dcls": ((True, True, True), (True, True)),  # the same, no_delay_in_first/last_layer = False
}
PLANTED_P = [(4, 0, 0, 2.5), (4, 0, 1, -3.5), (4, 1, 2, 12.0), (4, 1, 3, -12.0), (4, 2, 4, 0.5)]
PLANTED_D = [(5, 0, 2.5), (5, 1, 3.5), (5, 2, 0.0)]  # (layer index, neuron, recurrent delay)


def official_state(variant: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict laid out as the authors' equiparam SHD model ``variant``, random float32 values."""
    dcls, recurrent = VARIANTS[variant]
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    sizes = [INPUTS] + [HIDDEN] * LAYERS + [CLASSES]
    for stage in range(LAYERS + 1):
        index, n_in, n_out = STRIDE * stage, sizes[stage], sizes[stage + 1]
        random_shd_stage(state, index, n_in, n_out, dcls=dcls[stage], kernel_size=K, generator=g)
        if stage < LAYERS and recurrent[stage]:
            random_shd_recurrence(state, index + 1, n_out, g)
    if dcls[1]:
        for index, out, inp, value in PLANTED_P:
            state[f"layers.{index}.P"][0, out, inp, 0] = value
    if recurrent[1]:
        for index, neuron, value in PLANTED_D:
            state[f"layers.{index}.recurrent_delays"][neuron] = value
    return state


def official_input(seed: int = 1, batch: int = BATCH) -> torch.Tensor:
    """Spike counts ``[T, B, 140]`` (values above 1 occur, as in the binned SHD frames)."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((STEPS, batch, INPUTS), 0.4, dtype=torch.float64), generator=g)


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor, *, right: int = 0,
                     tau: float = TAU) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden spikes per layer and the readout membrane; ``right``/``tau`` give perf_SHD.py's variants."""
    spikes_per_layer = []
    for layer in range(LAYERS):
        x = delrec_hidden_layer(state, STRIDE * layer + 1, delrec_synapses(state, STRIDE * layer, x, K, right), tau)
        spikes_per_layer.append(x)
    return spikes_per_layer, leaky_readout(delrec_synapses(state, READOUT, x, K, right), tau)


def official_class(output: torch.Tensor) -> torch.Tensor:
    return torch.softmax(output, dim=2).sum(0).argmax(1)


def imported_model(state: dict[str, torch.Tensor]):
    return import_delrec(state, PRESET, hidden=HIDDEN).build_model().double()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_official_tensor_lands_in_its_place(variant):
    dcls, recurrent = VARIANTS[variant]
    state = official_state(variant)
    checkpoint = import_delrec(state, PRESET, hidden=HIDDEN)
    config = checkpoint.config
    assert config.delay_stages == dcls and config.recurrent_layers == recurrent
    assert (config.semantics, config.tail, config.kernel_size) == ("streaming", 0, K)
    assert (config.tau, config.threshold, config.reset) == (TAU, 1.0, "hard")
    assert (config.batchnorm, config.bias) == (False, False)
    assert (config.readout_tau, config.decision) == (None, "summed_softmax")
    assert_delrec_tensors_in_place(checkpoint.build_model(), state, stride=STRIDE, neuron_offset=1, dcls=dcls,
                                   recurrent=recurrent, right_padding=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_imported_model_and_reference_reproduce_the_official_forward(variant):
    state = official_state(variant)
    x = official_input()
    expected_spikes, expected_readout = official_forward(state, x)
    model = imported_model(state)
    with torch.no_grad():
        out = model(x, rounded=True)
    result = simulate(lower(model), x.numpy())
    for layer in range(LAYERS):
        assert out.spikes[layer].shape == (STEPS, BATCH, HIDDEN)
        assert 0.02 < float(expected_spikes[layer].mean()) < 0.6  # the layers are active, not saturated
        np.testing.assert_array_equal(out.spikes[layer].numpy(), expected_spikes[layer].numpy())
        np.testing.assert_array_equal(result.spikes[layer].numpy(), expected_spikes[layer].numpy())
    assert out.readout.shape == result.readout.shape == (STEPS, BATCH, CLASSES)
    np.testing.assert_allclose(out.readout.numpy(), expected_readout.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.readout.numpy(), expected_readout.numpy(), rtol=0, atol=1e-5)
    assert torch.equal(predict(out.readout), official_class(expected_readout))
    assert torch.equal(result.prediction(), official_class(expected_readout))
    # the comparison can fail: perf_SHD.py's tau 1.05, or its right padding where a stage is DCLS
    assert not torch.equal(official_forward(state, x, tau=1.05)[0][0], expected_spikes[0])
    if any(VARIANTS[variant][0]):
        padded = official_forward(state, x, right=(K - 1) // 2)[1]
        assert padded.shape[0] > STEPS


def test_rounding_follows_the_authors():
    network = lower(imported_model(official_state("recurrent_and_feedforward")))
    delays = network.layers[1].delays  # P = 2.5, -3.5, 12, -12, 0.5 -> delays 10, 16, 0, 24, 12 (half to even)
    assert [int(delays[0, 0]), int(delays[0, 1]), int(delays[1, 2]), int(delays[1, 3]), int(delays[2, 4])] == \
        [10, 16, 0, 24, 12]
    assert [int(network.layers[1].recurrent_delays[5, n]) for n in (0, 1, 2)] == [2, 4, 0]
    assert network.tail_steps == 0 and network.layers[1].official_tail == 0


def test_predictions_agree_over_many_samples():
    state = official_state("recurrent_and_feedforward", seed=7)
    g = torch.Generator().manual_seed(8)
    rates = torch.rand(16, INPUTS, generator=g, dtype=torch.float64) ** 3 * 1.5  # one rate profile per sample
    x = torch.poisson(rates.expand(STEPS, 16, INPUTS).contiguous(), generator=g)
    expected_class = official_class(official_forward(state, x)[1])
    assert len(set(expected_class.tolist())) > 2  # not a constant decision
    model = imported_model(state)
    with torch.no_grad():
        assert torch.equal(predict(model(x, rounded=True).readout), expected_class)
    assert torch.equal(simulate(lower(model), x.numpy()).prediction(), expected_class)


def test_cli_imports_and_runs_the_equiparam_layout(tmp_path):
    state = official_state("recurrent_and_feedforward")
    x = official_input()
    result = import_and_run(tmp_path, "delrec", state, "shd_equiparam", x.numpy(),
                            import_options=("--hidden", str(HIDDEN)))
    expected_spikes, expected_output = official_forward(state, x)
    for layer in range(LAYERS):
        np.testing.assert_array_equal(result[f"spikes_{layer}"], expected_spikes[layer].numpy())
    np.testing.assert_allclose(result["readout"], expected_output.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(result["pred"], official_class(expected_output).numpy())


def test_preset_default_is_the_equiparam_network():
    state = official_state("recurrent")
    sizes = [INPUTS, 42, 42, CLASSES]
    for stage in range(LAYERS + 1):
        state[f"layers.{STRIDE * stage}.weight"] = torch.zeros(sizes[stage + 1], sizes[stage])
    state["layers.5.recurrent_weights"] = torch.zeros(42, 42)
    state["layers.5.recurrent_delays"] = torch.zeros(42)
    config = import_official("delrec", state, "shd_equiparam").config
    assert config.hidden_sizes == (42, 42) and config.recurrent_layers == (False, True)


def test_batchnorm_state_is_refused_by_name():
    """A configs/perf_SHD.py state (BatchNorm at layers.1) is not this recipe."""
    state = official_state("recurrent")
    state["layers.1.running_mean"] = torch.zeros(HIDDEN)
    with pytest.raises(CheckpointError, match=r"layers\.1\.running_mean: BatchNorm, the authors' configs/perf_SHD\.py "
                                              r"recipe .*import it with --preset shd \(preset delrec_shd\)"):
        import_delrec(state, PRESET, hidden=HIDDEN)


def test_delrec_shd_points_to_this_preset():
    with pytest.raises(CheckpointError, match=r"configs/equiparam_SHD\.py recipe .*--preset shd_equiparam"):
        import_delrec(official_state("feedforward"), "delrec_shd", hidden=HIDDEN)


@pytest.mark.parametrize("key", ["layers.4.bias", "layers.6.weight", "layers.12.weight"])
def test_extra_key_is_named(key):
    state = official_state("recurrent_and_feedforward")
    state[key] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=rf"unexpected keys \['{re.escape(key)}'\]"):
        import_delrec(state, PRESET, hidden=HIDDEN)


@pytest.mark.parametrize("key", ["layers.0.weight", "layers.4.P", "layers.5.recurrent_weights", "layers.8.weight"])
def test_missing_key_is_named(key):
    state = official_state("all_dcls")
    del state[key]
    with pytest.raises(CheckpointError, match=rf"'{re.escape(key)}'"):
        import_delrec(state, PRESET, hidden=HIDDEN)


def test_wrong_shape_is_named():
    state = official_state("feedforward")
    state["layers.4.P"] = torch.zeros(1, HIDDEN, HIDDEN - 1, 1)
    with pytest.raises(CheckpointError, match=r"layers\.4\.P has shape"):
        import_delrec(state, PRESET, hidden=HIDDEN)


def test_snn_delays_has_no_equiparam_recipe():
    with pytest.raises(CheckpointError, match=r"snn-delays has no 'shd_equiparam' recipe"):
        import_official("snn-delays", official_state("feedforward"), "shd_equiparam", hidden=HIDDEN)
