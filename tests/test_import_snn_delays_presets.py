"""Import of the SNN-delays authors' SSC, GSC and SHD checkpoints (Hammouamri et al. 2024, ``Thvnvtos/SNN-delays``).

The state_dicts below have the key layout, shapes and dtypes that the authors' ``main.py``
saves for ``SnnDelays`` (``snn_delays.py``) under ``best_config_SSC.py``/``best_config_GSC.py``
(``best_config_SHD.py`` for ``shd``): an ``nn.Sequential`` whose hidden block ``l`` is
``model.{4l}`` ``Dcls1d`` (``weight [out, in, 1]``, ``P [1, out, in, 1]``, ``SIG [1, out, in, 1]``,
no bias), ``model.{4l+1}`` ``BatchNorm1d`` (``weight, bias, running_mean, running_var`` float32
``[out]``, ``num_batches_tracked`` int64 ``[]``), ``model.{4l+2}`` LIF and ``model.{4l+3}``
dropout (no state); the readout is ``model.{4L}`` ``Dcls1d`` and a LIF. Recipes: SSC and GSC
``K = 31`` (``max_delay = 300 // 10``, made odd), ``tau = (15 + 1e-9) / 10`` steps, 3 hidden
layers of 512, dropout 0.25, 35 classes; SHD ``K = 25``, ``tau = (10.05 + 1e-9) / 10``, 2 x 256,
dropout 0.4, 20 classes; threshold 1, readout threshold 1e9, 10 ms steps. SSC takes binned spike
counts, GSC a real-valued log-mel spectrogram (dB).

``official_forward`` is an independent float64 re-implementation of the authors' evaluation
(``model.py`` ``eval_model``: ``SIG = 0``, DCLS version ``max``, positions rounded half to even):
each stage pads its input with ``K - 1`` zeros on the left and ``(K - 1) // 2`` on the right and
cross-correlates with the kernel ``W * [k == round(P) + K//2] / (1 + 1e-7)``; BatchNorm with its
running statistics; LIF ``H = V (1 - 1/tau) + X``, spike if ``H >= 1``, ``V = H (1 - S)``; the
readout is the membrane of a LIF that never fires, the class ``argmax sum_t softmax(V[t])``
(``Model.calc_metric`` with ``loss = 'sum'``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import import_and_run

from delaydeploy.config import get_preset
from delaydeploy.errors import CheckpointError
from delaydeploy.importers import import_snn_delays
from delaydeploy.lowering import lower
from delaydeploy.reference import simulate

HIDDEN = 16
STEPS = 30
BATCH = 3
INPUTS = 140
BN_EPS = 1e-5
SIGMA_END = 0.23  # the end of the authors' sigma schedule


def odd(value: int) -> int:
    return value if value % 2 == 1 else value + 1


# What the authors' best_config_*.py files compute, written out from their formulas.
RECIPES = {
    "ssc": dict(kernel=odd(300 // 10), tau=(15 + 1e-9) / 10, layers=3, width=512, classes=35, dropout=0.25,
                input_kind="counts", epochs=60, batch_size=128),
    "gsc": dict(kernel=odd(300 // 10), tau=(15 + 1e-9) / 10, layers=3, width=512, classes=35, dropout=0.25,
                input_kind="analog", epochs=100, batch_size=128),
    "shd": dict(kernel=odd(250 // 10), tau=(10.05 + 1e-9) / 10, layers=2, width=256, classes=20, dropout=0.4,
                input_kind="counts", epochs=150, batch_size=256),
}


def planted_positions(kernel: int) -> list[tuple[int, int, float]]:
    """``(out, in, P)`` planted in every layer: the rounding convention at its halves and edges."""
    half = kernel // 2
    return [(0, 0, 2.5), (0, 1, -3.5), (1, 0, 0.5), (1, 1, 1.5), (2, 0, float(half)), (2, 1, float(-half)),
            (3, 0, half - 0.5), (3, 1, -half + 0.5)]


def official_state(preset: str, seed: int = 0, hidden: int = HIDDEN,
                   sparsity_p: float = 0.0) -> dict[str, torch.Tensor]:
    """A state_dict laid out as the authors' ``SnnDelays`` saves it, with random float32 values.

    ``sparsity_p > 0`` prunes as the authors' ``init_model`` does: each ``Dcls1d`` weight times a
    mask ``rand > sparsity_p``, so the pruned synapses are exact zeros in the saved state.
    BatchNorm running statistics are still placeholders: :func:`calibrated_state` sets them.
    """
    recipe = RECIPES[preset]
    kernel, layers = recipe["kernel"], recipe["layers"]
    g = torch.Generator().manual_seed(seed)
    sizes = [INPUTS] + [hidden] * layers + [recipe["classes"]]
    state: dict[str, torch.Tensor] = {}
    for stage in range(layers + 1):
        index, n_in, n_out = 4 * stage, sizes[stage], sizes[stage + 1]
        bound = math.sqrt(6.0 / n_in)  # kaiming_uniform, relu gain, as the authors' init
        state[f"model.{index}.weight"] = (torch.rand(n_out, n_in, 1, generator=g) * 2 - 1) * bound
        if sparsity_p > 0:
            state[f"model.{index}.weight"] *= (torch.rand(n_out, n_in, 1, generator=g) > sparsity_p).float()
        positions = (torch.rand(1, n_out, n_in, 1, generator=g) * 2 - 1) * (kernel // 2)
        for out, inp, value in planted_positions(kernel):
            positions[0, out, inp, 0] = value
        state[f"model.{index}.P"] = positions
        state[f"model.{index}.SIG"] = torch.full((1, n_out, n_in, 1), SIGMA_END)
        if stage < layers:
            norm = index + 1
            state[f"model.{norm}.weight"] = torch.rand(n_out, generator=g) + 0.5
            state[f"model.{norm}.bias"] = torch.rand(n_out, generator=g) * 0.8 - 0.3
            state[f"model.{norm}.running_mean"] = torch.zeros(n_out)
            state[f"model.{norm}.running_var"] = torch.ones(n_out)
            state[f"model.{norm}.num_batches_tracked"] = torch.tensor(1234, dtype=torch.int64)
    return state


def official_input(preset: str, seed: int = 1, steps: int = STEPS) -> torch.Tensor:
    """``[T, B, 140]``: binned spike counts (SHD, SSC) or a log-mel spectrogram in dB (GSC, whose
    mel bands above the 4 kHz Nyquist frequency hold the -100 dB floor)."""
    g = torch.Generator().manual_seed(seed)
    if RECIPES[preset]["input_kind"] == "analog":
        x = torch.randn(steps, BATCH, INPUTS, generator=g, dtype=torch.float64) * 20.0 - 30.0
        x[:, :, 76:] = -100.0
        return x.float()
    return torch.poisson(torch.full((steps, BATCH, INPUTS), 0.3, dtype=torch.float64), generator=g).float()


def round_half_even(value: torch.Tensor) -> np.ndarray:
    return np.round(value.detach().double().numpy())  # numpy rounds halves to even, as torch's round_()


def official_synapses(state: dict[str, torch.Tensor], index: int, x: torch.Tensor, kernel: int,
                      right: int) -> torch.Tensor:
    """Output ``[T + right, B, out]`` of the authors' rounded ``Dcls1d`` ``model.{index}`` on ``x``."""
    weight = state[f"model.{index}.weight"][:, :, 0].double()
    tap = torch.from_numpy(round_half_even(state[f"model.{index}.P"][0, :, :, 0])) + kernel // 2
    hits = torch.clamp(1.0 - torch.abs(torch.arange(kernel, dtype=torch.float64) - tap[..., None]), min=0.0)
    taps = hits / (hits.sum(-1, keepdim=True) + 1e-7)  # version 'max' at SIG = 0
    padded = torch.nn.functional.pad(x.double().permute(1, 2, 0), (kernel - 1, right))
    return torch.nn.functional.conv1d(padded, weight[..., None] * taps).permute(2, 0, 1)


def official_norm(state: dict[str, torch.Tensor], index: int, current: torch.Tensor) -> torch.Tensor:
    """``BatchNorm1d`` ``model.{index}`` in eval mode (the same affine map at every step)."""
    mean, var, weight, bias = (state[f"model.{index}.{name}"].double()
                               for name in ("running_mean", "running_var", "weight", "bias"))
    return (current - mean) / torch.sqrt(var + BN_EPS) * weight + bias


def official_lif(current: torch.Tensor, tau: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and post-reset membrane of spikingjelly's LIF (decay_input=False, hard reset to 0)."""
    v = torch.zeros_like(current[0])
    spikes, potentials = torch.zeros_like(current), torch.zeros_like(current)
    for t in range(current.shape[0]):
        h = v * (1.0 - 1.0 / tau) + current[t]
        spikes[t] = (h >= threshold).double()
        v = h * (1.0 - spikes[t])
        potentials[t] = v
    return spikes, potentials


def official_forward(state: dict[str, torch.Tensor], x: torch.Tensor, preset: str, *,
                     right: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Hidden spikes per layer and the readout membrane; ``right`` overrides the right padding."""
    recipe = RECIPES[preset]
    kernel, tau, layers = recipe["kernel"], recipe["tau"], recipe["layers"]
    right = (kernel - 1) // 2 if right is None else right
    hidden = []
    for layer in range(layers):
        current = official_norm(state, 4 * layer + 1, official_synapses(state, 4 * layer, x, kernel, right))
        x, _ = official_lif(current, tau, 1.0)
        hidden.append(x)
    _, readout = official_lif(official_synapses(state, 4 * layers, x, kernel, right), tau, 1e9)
    return hidden, readout


def official_prediction(readout: torch.Tensor) -> np.ndarray:
    return torch.softmax(readout, dim=2).sum(0).argmax(1).numpy()


def calibrated_state(preset: str, seed: int = 0, sparsity_p: float = 0.0) -> dict[str, torch.Tensor]:
    """:func:`official_state` with each BatchNorm's running statistics taken over time x batch of
    its layer's current (as the authors' training would leave them), so that layers fire."""
    state = official_state(preset, seed, sparsity_p=sparsity_p)
    recipe = RECIPES[preset]
    kernel = recipe["kernel"]
    x = official_input(preset, seed=seed + 100, steps=50)
    for layer in range(recipe["layers"]):
        current = official_synapses(state, 4 * layer, x, kernel, (kernel - 1) // 2).flatten(0, 1)
        state[f"model.{4 * layer + 1}.running_mean"] = current.mean(0).float()
        state[f"model.{4 * layer + 1}.running_var"] = current.var(0).float() + 1e-3
        x, _ = official_lif(official_norm(state, 4 * layer + 1, current.view(-1, BATCH, current.shape[-1])),
                            recipe["tau"], 1.0)
    return state


# Delays of the planted positions, worked out by hand: d = K//2 - round(P), halves to the even integer.
PLANTED_DELAYS = {
    31: {(0, 0): 13, (0, 1): 19, (1, 0): 15, (1, 1): 13, (2, 0): 0, (2, 1): 30, (3, 0): 1, (3, 1): 29},
    25: {(0, 0): 10, (0, 1): 16, (1, 0): 12, (1, 1): 10, (2, 0): 0, (2, 1): 24, (3, 0): 0, (3, 1): 24},
}


@pytest.fixture(scope="module", params=["ssc", "gsc", "shd"])
def case(request):
    """``(preset, official state, input, official hidden spikes, official readout)``."""
    preset = request.param
    state = calibrated_state(preset)
    x = official_input(preset)
    hidden, readout = official_forward(state, x, preset)
    return preset, state, x, hidden, readout


@pytest.mark.parametrize("preset", ["ssc", "gsc", "shd"])
def test_presets_are_the_authors_best_configs(preset):
    recipe = RECIPES[preset]
    found = get_preset(preset)
    network, train = found.network, found.train
    assert network.kernel_size == recipe["kernel"]
    assert network.tau == recipe["tau"]
    assert network.hidden_sizes == (recipe["width"],) * recipe["layers"]
    assert (network.input_size, network.num_classes) == (INPUTS, recipe["classes"])
    assert network.dropout == recipe["dropout"]
    assert network.input_kind == recipe["input_kind"]
    assert (network.threshold, network.reset, network.batchnorm, network.bias) == (1.0, "hard", True, False)
    assert network.readout_time_constant == recipe["tau"] and network.decision == "summed_softmax"
    assert network.dt == 0.01  # 10 ms frames (SHD/SSC), hop 80 at 8 kHz (GSC)
    assert network.delays == "learned" and network.delay_stages is None and network.recurrent_layers is None
    assert (train.epochs, train.batch_size) == (recipe["epochs"], recipe["batch_size"])
    assert (train.lr_weights, train.lr_positions, train.weight_decay, train.one_cycle_factor) == (1e-3, 0.1, 1e-5, 5.0)
    assert (train.optimizer, train.position_schedule) == ("adam", "cosine")
    assert (train.sigma_final, train.sigma_epoch_fraction) == (SIGMA_END, 0.25)


@pytest.mark.parametrize("preset", ["ssc", "gsc", "shd"])
def test_full_size_state_imports_with_the_preset_defaults(preset):
    recipe = RECIPES[preset]
    checkpoint = import_snn_delays(official_state(preset, hidden=recipe["width"]), preset)
    assert checkpoint.config.hidden_sizes == (recipe["width"],) * recipe["layers"]
    model = checkpoint.build_model()
    assert model.blocks[0].synapses.dcls.P.shape == (1, recipe["width"], INPUTS, 1)
    assert model.readout.weight.shape == (recipe["classes"], recipe["width"])


def test_every_official_tensor_lands_in_its_place(case):
    preset, state, _, _, _ = case
    recipe = RECIPES[preset]
    checkpoint = import_snn_delays(state, preset, hidden=HIDDEN)
    config = checkpoint.config
    assert config.semantics == "official"
    assert config.tail == (recipe["layers"] + 1) * ((recipe["kernel"] - 1) // 2)
    model = checkpoint.build_model()
    stages = [block.synapses for block in model.blocks] + [model.readout]
    for stage, module in enumerate(stages):
        index = 4 * stage
        for name in ("weight", "P", "SIG"):
            np.testing.assert_array_equal(getattr(module.dcls, name).detach().numpy(),
                                          state[f"model.{index}.{name}"].numpy())
        assert module.bias is None
        assert module.right_padding == (recipe["kernel"] - 1) // 2
    for layer, block in enumerate(model.blocks):
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            ours = getattr(block.norm, name)
            theirs = state[f"model.{4 * layer + 1}.{name}"]
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours.detach().numpy(), theirs.numpy())
        assert block.norm.eps == BN_EPS
        assert block.neuron.tau == recipe["tau"] and block.neuron.v_threshold == 1.0
        assert block.dropout.p == recipe["dropout"]


def test_integer_delays_follow_the_authors_rounding(case):
    preset, state, _, _, _ = case
    kernel = RECIPES[preset]["kernel"]
    half = kernel // 2
    network = lower(import_snn_delays(state, preset, hidden=HIDDEN).build_model())
    for stage, layer in enumerate([*network.layers, network.readout]):
        expected = half - round_half_even(state[f"model.{4 * stage}.P"][0, :, :, 0])
        np.testing.assert_array_equal(layer.delays, expected)
        assert layer.delays.min() >= 0 and layer.delays.max() <= kernel - 1
        # halves go to the even neighbour; the clamp's edges are delays 0 and K-1
        planted = {(out, inp): int(layer.delays[out, inp]) for out, inp, _ in planted_positions(kernel)}
        assert planted == PLANTED_DELAYS[kernel]


def test_rounded_forward_matches_the_official_evaluation(case):
    preset, state, x, hidden, readout = case
    recipe = RECIPES[preset]
    half = (recipe["kernel"] - 1) // 2
    assert all(spikes.sum() > 0 for spikes in hidden)  # the comparison is not vacuous
    model = import_snn_delays(state, preset, hidden=HIDDEN).build_model()
    for dtype, atol in ((torch.float32, 1e-4), (torch.float64, 1e-5)):
        with torch.no_grad():
            out = model.to(dtype)(x.to(dtype), rounded=True)
        for layer, spikes in enumerate(out.spikes):
            assert spikes.shape[0] == STEPS + (layer + 1) * half
            np.testing.assert_array_equal(spikes.double().numpy(), hidden[layer].numpy())
        assert out.readout.shape == (STEPS + (recipe["layers"] + 1) * half, BATCH, recipe["classes"])
        np.testing.assert_allclose(out.readout.double().numpy(), readout.numpy(), rtol=1e-6, atol=atol)
        np.testing.assert_array_equal(out.readout.softmax(-1).sum(0).argmax(-1).numpy(), official_prediction(readout))


def test_lowered_reference_matches_model_and_official_evaluation(case):
    preset, state, x, hidden, readout = case
    model = import_snn_delays(state, preset, hidden=HIDDEN).build_model().double()
    result = simulate(lower(model), x.double(), semantics="official")
    with torch.no_grad():
        out = model(x.double(), rounded=True)
    for layer, spikes in enumerate(result.spikes):
        np.testing.assert_array_equal(spikes.numpy(), out.spikes[layer].numpy())
        np.testing.assert_array_equal(spikes.numpy(), hidden[layer].numpy())
    np.testing.assert_allclose(result.readout.numpy(), out.readout.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.readout.numpy(), readout.numpy(), rtol=1e-6, atol=1e-5)
    assert result.decision == "summed_softmax"
    np.testing.assert_array_equal(result.prediction().numpy(), official_prediction(readout))


def test_time_semantics_and_delays_are_what_the_comparison_sees(case):
    """The comparisons above can fail: a delay one step off, or streaming time, changes the result."""
    preset, state, x, hidden, readout = case
    half = (RECIPES[preset]["kernel"] - 1) // 2
    # the right padding only lengthens the output: the first T steps are causal
    _, causal_readout = official_forward(state, x, preset, right=0)
    assert causal_readout.shape[0] == STEPS
    torch.testing.assert_close(causal_readout, readout[:STEPS], rtol=0, atol=1e-9)
    # a streaming run lets the hidden layers keep running past each cut: equal only before the first
    network = lower(import_snn_delays(state, preset, hidden=HIDDEN).build_model())
    streaming = simulate(network, x.double(), semantics="streaming")
    assert streaming.readout.shape == readout.shape
    np.testing.assert_allclose(streaming.readout[:STEPS + half].numpy(), readout[:STEPS + half].numpy(), atol=1e-5)
    assert not np.allclose(streaming.readout.numpy(), readout.numpy(), atol=1e-3)
    # one synapse group a step later
    shifted = dict(state)
    shifted["model.0.P"] = torch.clamp(state["model.0.P"] - 1.0, -(RECIPES[preset]["kernel"] // 2), None)
    model = import_snn_delays(shifted, preset, hidden=HIDDEN).build_model().double()
    with torch.no_grad():
        out = model(x.double(), rounded=True)
    assert not np.array_equal(out.spikes[0].numpy(), hidden[0].numpy())


def test_continuous_forward_matches_the_gaussian_kernel(case):
    """The imported continuous model builds the authors' training kernel (version 'gauss')."""
    preset, state, x, _, _ = case
    recipe = RECIPES[preset]
    kernel = recipe["kernel"]
    model = import_snn_delays(state, preset, hidden=HIDDEN).build_model().double()
    for stage, module in enumerate([block.synapses for block in model.blocks] + [model.readout]):
        index = 4 * stage
        centre = state[f"model.{index}.P"][0, :, :, 0].double() + kernel // 2
        width = state[f"model.{index}.SIG"][0, :, :, 0].double().abs() + 0.27
        offsets = torch.arange(kernel, dtype=torch.float64) - centre[..., None]
        bumps = torch.exp(-0.5 * (offsets / width[..., None]) ** 2)
        expected = state[f"model.{index}.weight"].double() * bumps / (bumps.sum(-1, keepdim=True) + 1e-7)
        torch.testing.assert_close(module.kernel().detach(), expected, rtol=1e-6, atol=1e-9)


def test_cli_imports_and_runs_the_official_semantics(tmp_path, case):
    preset, state, x, hidden, readout = case
    result = import_and_run(tmp_path, "snn-delays", state, preset, x.numpy(), import_options=("--hidden", str(HIDDEN)),
                            run_options=("--semantics", "official"))
    for layer, spikes in enumerate(hidden):
        np.testing.assert_array_equal(result[f"spikes_{layer}"], spikes.numpy())
    np.testing.assert_allclose(result["readout"], readout.numpy(), rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(result["pred"], official_prediction(readout))


def _renumbered(state: dict[str, torch.Tensor], mapping) -> dict[str, torch.Tensor]:
    """``state`` with each ``model.<i>.*`` moved to ``model.<mapping(i)>.*`` (dropped where None)."""
    moved = {}
    for key, value in state.items():
        _, index, name = key.split(".", 2)
        target = mapping(int(index))
        if target is not None:
            moved[f"model.{target}.{name}"] = value
    return moved


def _stateful_synapse(state):  # a SynapseFilter after each dropout: blocks of 5 modules
    return _renumbered(state, lambda i: i // 4 * 5 + i % 4)


def _without_norm(state):  # use_batchnorm = False: blocks of 3 modules, no BatchNorm entries
    return _renumbered(state, lambda i: None if i % 4 == 1 else i // 4 * 3)


def _with(state, key, value):
    return {**state, key: value}


def _without(state, key):
    return {name: value for name, value in state.items() if name != key}


WRONG_LAYOUTS = {
    "stateful synapse": (_stateful_synapse, {}, r"Dcls1d layers at model\.0, model\.5, model\.10\b.*"
                                               r"at 0, 4, 8, \.\.\.: stateful_synapse = True"),
    "no BatchNorm": (_without_norm, {}, r"BatchNorm is absent but preset '\w+' expects it present"),
    "plif": (lambda s: _with(s, "model.2.w", torch.tensor(0.0)), {},
             r"model\.2\.w: a learned time constant \(spiking_neuron_type = 'plif'"),
    "Dcls bias": (lambda s: _with(s, "model.4.bias", torch.zeros(HIDDEN)), {},
                  r"model\.4\.bias: a Dcls1d bias \(the authors' bias = True\)"),
    "missing running_var": (lambda s: _without(s, "model.5.running_var"), {},
                            r"expected key 'model\.5\.running_var' is missing"),
    "extra key": (lambda s: _with(s, "model.3.mask", torch.zeros(1)), {}, r"unexpected keys \['model\.3\.mask'\]"),
    "kernel_count 2": (lambda s: _with(s, "model.4.weight", torch.zeros(HIDDEN, HIDDEN, 2)), {},
                       r"model\.4\.weight has shape \(16, 16, 2\), the configuration needs \(16, 16, 1\)"),
    "wrong hidden": (lambda s: s, {"hidden": 8}, r"model\.0\.weight has shape \(16, 140, 1\), the configuration "
                                                 r"needs \(8, 140, 1\)"),
    "wrong layer count": (lambda s: s, {"layers": 1}, r"Dcls1d layers at model\.0, .* the configuration has 1 "
                                                      r"hidden layers \(layers=\d"),
    "not DCLS": (lambda s: {k: v for k, v in s.items() if not k.endswith((".P", ".SIG"))}, {},
                 r"no Dcls1d positions model\.<i>\.P"),
}


@pytest.mark.parametrize("wrong", sorted(WRONG_LAYOUTS))
def test_wrong_layouts_are_refused_naming_the_key(case, wrong):
    preset, state, _, _, _ = case
    change, options, message = WRONG_LAYOUTS[wrong]
    with pytest.raises(CheckpointError, match=message):
        import_snn_delays(change(state), preset, **{"hidden": HIDDEN, **options})


def test_a_31_tap_state_is_refused_by_a_25_tap_preset():
    """K is in no tensor shape: an SSC state read as SHD (3 layers given) is caught by its positions."""
    state = calibrated_state("ssc")
    with pytest.raises(CheckpointError, match=r"model\.0\.P\[0, \d+, \d+, 0\] = -?1[2-5][.\d]*; positions of a "
                                              r"25-tap kernel lie in \[-12, 12\]"):
        import_snn_delays(state, "shd", hidden=HIDDEN, layers=3)


def test_a_recipe_without_dcls_stages_is_refused():
    with pytest.raises(CheckpointError, match="preset 'delrec_shd' is not an all-DCLS feedforward recipe"):
        import_snn_delays(calibrated_state("shd"), "delrec_shd", hidden=HIDDEN)


def test_an_official_sparse_state_imports_with_its_pruned_synapses_absent():
    """A state trained with ``sparsity_p`` (SHD recipe): the import reproduces the authors'
    evaluation, and the pruned synapses (its exact zeros) are absent from the IR and its resources."""
    from delaydeploy.bundle import estimate_resources

    state = calibrated_state("shd", sparsity_p=0.7)
    x = official_input("shd")
    hidden, readout = official_forward(state, x, "shd")
    assert all(spikes.sum() > 0 for spikes in hidden)
    model = import_snn_delays(state, "shd", hidden=HIDDEN).build_model().double()
    with torch.no_grad():
        out = model(x.double(), rounded=True)
    for layer, spikes in enumerate(out.spikes):
        np.testing.assert_array_equal(spikes.numpy(), hidden[layer].numpy())
    np.testing.assert_allclose(out.readout.numpy(), readout.numpy(), rtol=1e-6, atol=1e-5)
    network = lower(model)
    present = [state[f"model.{4 * stage}.weight"][:, :, 0].numpy() != 0 for stage in range(3)]
    for stage, kept in zip([*network.layers, network.readout], present):
        assert 0.2 < kept.mean() < 0.4
        np.testing.assert_array_equal(stage.weights != 0, kept)
        assert not stage.delays[~kept].any()  # an absent synapse reserves no delay
    assert estimate_resources(network)["synapses"] == sum(int(kept.sum()) for kept in present)
