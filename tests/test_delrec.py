"""DelRec recurrent delays: the layer against the official formulation, its limits, and training.

The oracle below is the official code's schedule (``alexmaxad/DelRec``,
``src/recurrent_neurons.py``): every new spike is multiplied by ``W`` for every future buffer
slot (``B*N*N*L`` per step). :class:`RecurrentDelayLIF` mixes per presynaptic neuron first and
must give the same spikes and the same gradients.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.delrec import RecurrentDelayLIF, buffer_length, initial_delays, triangular_spread
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN, make_lif, triangle_surrogate
from delaydeploy.training import seed_everything, train

CHANCE = 1 / SyntheticTimingDataset.num_classes


def scheduled_oracle(layer: RecurrentDelayLIF, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The official formulation: schedule ``W (s * spread)`` into a ring buffer of future input
    (``sigma``: one spread for all, or one per neuron)."""
    steps, batch, size = x.shape
    delays = layer.recurrent_delays
    length = buffer_length(float(delays.detach().max()), float(torch.as_tensor(sigma).detach().max()))
    spread = triangular_spread(delays, sigma, length)
    pending = x.new_zeros(batch, size, length)  # slot t % L holds the input due at t
    spikes = []
    layer.neuron.reset()
    layer.dropout.reset()
    for t in range(steps):
        slot = t % length
        out = layer.neuron(x[t] + layer.dropout(pending[:, :, slot]))
        scheduled = torch.einsum("ij,bj,jl->bil", layer.recurrent_weights, out, spread)
        emptied = pending.index_fill(2, torch.tensor([slot]), 0.0)
        pending = emptied + torch.roll(scheduled, shifts=slot, dims=2)
        spikes.append(out)
    return torch.stack(spikes)


def _layer(reset: str, size: int = 10, *, dropout: float = 0.0, max_delay: int = 62,
           delays: torch.Tensor | None = None, seed: int = 0, learn_spread: bool = False) -> RecurrentDelayLIF:
    config = dataclasses.replace(get_preset("delrec_shd").network, reset=reset, tau=2.0)
    torch.manual_seed(seed)
    layer = RecurrentDelayLIF(size, lambda step_mode: make_lif(config, step_mode=step_mode), max_delay=max_delay,
                              dropout=dropout, learn_spread=learn_spread).double()
    with torch.no_grad():
        layer.recurrent_weights.mul_(1.5)
        layer.recurrent_delays.copy_(torch.empty(size).uniform_(0.0, min(8.0, max_delay)) if delays is None else delays)
    return layer


def _drive(seed: int, steps: int = 40, batch: int = 3, size: int = 10) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (0.9 * torch.rand(steps, batch, size, generator=generator, dtype=torch.float64)).requires_grad_(True)


def _gradients(output: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    readout = torch.linspace(-1.0, 1.0, output.numel(), dtype=output.dtype).view_as(output)
    return list(torch.autograd.grad((output * readout).sum(), tensors))


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("sigma", [0.0, 0.4, 3.7])
def test_same_spikes_and_gradients_as_the_official_schedule(reset, sigma):
    """Fractional delays (0.3 spreads onto slot 0, which must stay unused), train-mode dropout."""
    delays = torch.tensor([0.3, 1.0, 2.5, 4.2, 7.9, 0.0, 3.5, 6.1, 5.0, 2.2], dtype=torch.float64)
    layer = _layer(reset, dropout=0.3, delays=delays).train()
    layer.set_sigma(sigma)
    x = _drive(1)
    params = [layer.recurrent_weights, layer.recurrent_delays, x]
    torch.manual_seed(5)  # the same dropout mask for both
    ours = layer(x)
    torch.manual_seed(5)
    theirs = scheduled_oracle(layer, x, sigma)
    assert 0.05 < float(theirs.detach().mean()) < 0.6, "too few or too many spikes to compare"
    assert torch.equal(ours, theirs)
    for name, mine, official in zip(("weights", "delays", "input"), _gradients(ours, params),
                                    _gradients(theirs, params)):
        assert official.abs().max() > 0, name
        torch.testing.assert_close(mine, official, rtol=0, atol=1e-6, msg=name)


def _integer_semantics(layer: RecurrentDelayLIF, x: torch.Tensor) -> torch.Tensor:
    """``I_rec[t, i] = sum_j W[i, j] s_j[t - 1 - D_j]`` written out with the deployed delays."""
    delays = layer.integer_delays()
    spikes = x.new_zeros(x.shape[0], *x.shape[1:])
    columns = torch.arange(x.shape[2])
    layer.neuron.reset()
    for t in range(x.shape[0]):
        source = t - 1 - delays
        delayed = torch.where(source >= 0, spikes[source.clamp(min=0), :, columns].T, torch.zeros(()))
        spikes[t] = layer.neuron(x[t] + delayed @ layer.recurrent_weights.T)
    return spikes


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_rounded_mode_is_exactly_the_integer_semantics(reset):
    """Rounded delays and sigma 0 whatever the schedule says: bitwise the deployed equations."""
    delays = torch.tensor([0.4, 0.6, 1.5, 2.5, 3.49, 9.0, 0.0, 5.51, 12.0, 7.0], dtype=torch.float64)
    layer = _layer(reset, delays=delays).eval()
    layer.set_sigma(6.0)
    assert layer.integer_delays().tolist() == [0, 1, 2, 2, 3, 9, 0, 6, 12, 7]  # half to even
    x = _drive(2, steps=60).detach()
    with torch.no_grad():
        rounded = layer(x, rounded=True)
        expected = _integer_semantics(layer, x)
    assert rounded.sum() > 0 and torch.equal(rounded, expected)


def test_minimum_latency_is_one_step():
    """A spike at t with delay 0 reaches the other neurons at t + 1, never at t."""
    layer = _layer("hard", size=2, delays=torch.zeros(2, dtype=torch.float64)).eval()
    with torch.no_grad():
        layer.recurrent_weights.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0]]))
        x = torch.zeros(5, 1, 2, dtype=torch.float64)
        x[1, 0, 0] = 2.0  # neuron 0 fires at step 1 only
        spikes = layer(x, rounded=True)
    assert spikes[:, 0, 0].tolist() == [0, 1, 0, 0, 0]
    assert spikes[:, 0, 1].tolist() == [0, 0, 1, 0, 0]


def test_spread_weights():
    delays = torch.tensor([0.0, 2.0, 3.25])
    spread = triangular_spread(delays, 0.0, buffer_length(3.25, 0.0))
    assert spread[:2].tolist() == [[0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]]  # one-hot at 1 + d
    wide = triangular_spread(delays, 2.0, buffer_length(3.25, 2.0))
    assert (wide[:, 0] == 0).all()  # slot 0 would act in the same step
    torch.testing.assert_close(wide[1:].sum(dim=1), torch.ones(2))  # a whole triangle of area 1


def test_clamping_keeps_trained_delays_within_the_cap():
    """Delays start at the cap and a large delay learning rate pushes them: they stay in [0, cap]."""
    cap = 3
    preset = get_preset("synthetic_delrec")
    network = dataclasses.replace(preset.network, hidden_sizes=(16,), max_recurrent_delay=cap)
    config = dataclasses.replace(preset.train, epochs=2, batch_size=16, lr_positions=2.0)
    seed_everything(0)
    model = DelaySNN(network)
    layer = next(model.recurrent_layers())
    initial = layer.recurrent_delays.detach().clone()
    assert (initial == cap).all()  # the initial range (10, 30) is cut at the cap
    train(model, SyntheticTimingDataset("train", num_samples=32), SyntheticTimingDataset("test", num_samples=8),
          config, device=torch.device("cpu"), progress=False)
    delays = layer.recurrent_delays.detach()
    assert not torch.equal(delays, initial)
    assert delays.min() >= 0 and delays.max() == cap  # some were pushed up and held at the cap
    assert lower(model).max_recurrent_delay <= cap


def test_recurrent_delay_above_the_loihi2_limit_is_refused_at_export(tmp_path, capsys):
    network = dataclasses.replace(get_preset("synthetic_delrec").network, hidden_sizes=(8,), max_recurrent_delay=80)
    model = DelaySNN(network)
    layer = next(model.recurrent_layers())
    with torch.no_grad():
        layer.recurrent_delays.fill_(5.0)
        layer.recurrent_delays[3] = 70.0
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(checkpoint_of(model, preset="synthetic_delrec"), checkpoint)
    capsys.readouterr()
    for target, output in (("loihi2", tmp_path / "bundle"), ("netx", tmp_path / "m.net")):
        assert main(["export", str(checkpoint), "--target", target, "-o", str(output)]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("error: ")
        assert "'hidden0'" in error and "presynaptic neuron [3]" in error and "70" in error and "62" in error, error
        assert not output.exists()
    assert main(["export", str(checkpoint), "--target", "nir", "-o", str(tmp_path / "m.nir")]) == 0  # no such limit


def test_recurrent_delays_learn_the_synthetic_task():
    preset = get_preset("synthetic_delrec")
    config = dataclasses.replace(preset.train, epochs=4)
    seed_everything(0)
    model = DelaySNN(preset.network)
    history = train(model, SyntheticTimingDataset("train", num_samples=1024),
                    SyntheticTimingDataset("test", num_samples=256), config, device=torch.device("cpu"),
                    progress=False)
    assert history[-1].test_accuracy > 3 * CHANCE, history[-1]  # rounded delays; measured 0.63 in ~11 s
    assert history[-1].train_loss < history[0].train_loss
    delays = next(model.recurrent_layers()).integer_delays()
    assert np.unique(delays.numpy()).size > 1


# configs/perf_SHD.py, configs/equiparam_SHD.py and configs/perf_SSC.py with src/{SHD,SSC}/trainer.py
# init_optim_sche: OneCycleLR(max_lr=lr_w) for the weights, OneCycleLR(max_lr=lr_positions) or
# CosineAnnealingLR for the delays (scheduler_pos), stepped once per epoch.
DELREC_RECIPES = {
    "delrec_shd": dict(epochs=150, batch_size=256, optimizer="adamw", lr_weights=5e-3, lr_positions=5e-2,
                       position_schedule="cosine"),
    "delrec_shd_equiparam": dict(epochs=30, batch_size=256, optimizer="adamw", lr_weights=5e-3,
                                 lr_positions=0.1, position_schedule="one_cycle"),
    "delrec_ssc": dict(epochs=100, batch_size=128, optimizer="adam", lr_weights=1e-3, lr_positions=5e-2,
                       position_schedule="one_cycle"),
}


@pytest.mark.parametrize("name", sorted(DELREC_RECIPES))
def test_delrec_presets_train_with_the_authors_optimisers_and_schedules(name):
    """The weights' OneCycle peaks at lr_w itself (no factor 5, which is the DCLS authors' recipe)."""
    train = get_preset(name).train
    found = {key: getattr(train, key) for key in DELREC_RECIPES[name]}
    assert found == DELREC_RECIPES[name]
    assert (train.one_cycle_factor, train.weight_decay) == (1.0, 1e-5)



def _delrec_mask(delays: torch.Tensor, sigma: float, logits: torch.Tensor) -> torch.Tensor:
    """src/recurrent_neurons.py with use_sig_p: width ``s_j = 1 + 2 sigma sigmoid(p_j)``, buffer
    ``ceil(1 + max d + max s) + 1`` slots, slot ``l`` weighted ``max(0, s_j - |l - 1 - d_j|) / s_j^2``."""
    width = 1.0 + 2.0 * sigma * torch.sigmoid(logits)
    length = int(math.ceil(1.0 + float(delays.max()) + float(width.max()))) + 1
    slots = torch.arange(length, dtype=delays.dtype)
    return torch.clamp(width[:, None] - (slots[None, :] - (1.0 + delays)[:, None]).abs(), min=0.0) / width[:, None] ** 2


@pytest.mark.parametrize("sigma", [0.0, 2.5])
def test_learned_spread_widths_are_delrecs_and_learn(sigma):
    """DelRec SSC's use_sig_p: a spread width per presynaptic neuron, trained with the delays."""
    delays = torch.tensor([0.3, 1.0, 2.5, 4.2, 7.9, 0.0, 3.5, 6.1, 5.0, 2.2], dtype=torch.float64)
    layer = _layer("soft", dropout=0.3, delays=delays, learn_spread=True).train()
    with torch.no_grad():
        layer.spread_logits.copy_(torch.linspace(-2.0, 3.0, 10))
    layer.set_sigma(sigma)
    per_neuron = 2.0 * sigma * torch.sigmoid(layer.spread_logits.detach().double())
    mask = _delrec_mask(delays, sigma, layer.spread_logits.detach().double())
    ours = triangular_spread(delays, per_neuron, buffer_length(7.9, float(per_neuron.max())))
    torch.testing.assert_close(ours[:, 1:], mask[:, 1:], rtol=0, atol=1e-15)  # slot 0: the synapse's own step
    x = _drive(2)
    torch.manual_seed(5)
    spikes = layer(x)
    torch.manual_seed(5)
    assert torch.equal(spikes, scheduled_oracle(layer, x, per_neuron))
    grad = _gradients(spikes, [layer.spread_logits])[0]
    assert (grad.abs().max() > 0) == (sigma > 0)  # at sigma 0 every width is 1
    assert torch.equal(layer.eval()(x, rounded=True), _layer("soft", delays=delays).eval()(x, rounded=True))


def test_recurrent_delays_start_as_delrecs_recipes():
    """perf_SHD.py: uniform on [init_recdel_offset, max_rec_delay] = [10, 30]; perf_SSC.py: |N(0, 12^2)|."""
    torch.manual_seed(0)
    uniform = initial_delays(20000, "uniform", 62)
    half_normal = initial_delays(20000, "half_normal", 62)
    assert 10 <= float(uniform.min()) and float(uniform.max()) <= 30
    assert float(uniform.mean()) == pytest.approx(20, abs=0.2)
    assert float(half_normal.min()) >= 0
    assert float(half_normal.mean()) == pytest.approx(12 * math.sqrt(2 / math.pi), abs=0.2)
    assert float(half_normal.std()) == pytest.approx(12 * math.sqrt(1 - 2 / math.pi), abs=0.2)
    assert float(initial_delays(100, "half_normal", 3).max()) == 3  # capped at the layer's limit
    with pytest.raises(ValueError, match="'gamma'"):
        initial_delays(3, "gamma", 62)


class _DelRecTriangle(torch.autograd.Function):
    """src/utils.py Triangle at gamma 1: spike ``x >= 0``, gradient ``max(0, 1 - |x|)``."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.ge(0.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1.0 - x.abs()).clamp(min=0)


def test_triangle_surrogate_and_attached_reset_train_as_delrec_ssc():
    """The delrec_ssc neuron: soft reset, triangle surrogate, reset not detached (perf_SSC.py)."""
    config = get_preset("delrec_ssc").network
    x = torch.linspace(-1.6, 1.6, 33, dtype=torch.float64, requires_grad=True)
    spikes = triangle_surrogate(x)
    reference = _DelRecTriangle.apply(x)
    assert torch.equal(spikes, reference)
    assert torch.equal(*(torch.autograd.grad(out.sum(), x)[0] for out in (spikes, reference)))
    drive = _drive(3)
    grads = {}
    for detach in (True, False):
        neuron = make_lif(dataclasses.replace(config, detach_reset=detach)).double()
        assert neuron.surrogate_function is triangle_surrogate
        grads[detach] = _gradients(neuron(drive), [drive])[0]
    assert not torch.allclose(grads[True], grads[False])  # the reset passes gradient only when attached


def test_linear_stages_start_as_their_recipe_says():
    """kaiming: bound sqrt(6 / fan_in) (the DCLS authors, DelRec SHD); default: torch.nn.Linear's 1/sqrt(fan_in)."""
    torch.manual_seed(0)
    kaiming = DelaySNN(get_preset("delrec_shd").network).blocks[0].synapses.weight.detach()
    default = DelaySNN(get_preset("delrec_ssc").network).blocks[0].synapses.weight.detach()
    assert float(kaiming.abs().max()) == pytest.approx(math.sqrt(6 / 140), rel=0.01)
    assert float(default.abs().max()) == pytest.approx(1 / math.sqrt(140), rel=0.01)


def test_delrec_ssc_preset_carries_the_authors_training_choices():
    network = get_preset("delrec_ssc").network
    assert (network.surrogate, network.detach_reset, network.linear_init) == ("triangle", False, "default")
    assert (network.recurrent_delay_init, network.recurrent_spread) == ("half_normal", "learned")
    model = DelaySNN(network)
    spreads = [layer.spread_logits for layer in model.recurrent_layers()]
    assert len(spreads) == 3 and all(any(p is s for p in model.parameter_groups()["delays"]) for s in spreads)
    for name in ("delrec_shd", "delrec_shd_equiparam"):
        shd = get_preset(name).network
        assert (shd.surrogate, shd.detach_reset, shd.recurrent_delay_init, shd.recurrent_spread) == \
            ("atan", True, "uniform", "shared")
    assert get_preset("delrec_shd_equiparam").network.linear_init == "default"  # init_ff_weights = 'default'
    with pytest.raises(ValueError, match="surrogate = 'sigmoid' must be one of"):
        dataclasses.replace(network, surrogate="sigmoid")
    with pytest.raises(ValueError, match="detach_reset = 1 must be True or False"):
        dataclasses.replace(network, detach_reset=1)
