"""DelRec recurrent delays: the layer against the official formulation, its limits, and training.

The oracle below is the official code's schedule (``alexmaxad/DelRec``,
``src/recurrent_neurons.py``): every new spike is multiplied by ``W`` for every future buffer
slot (``B*N*N*L`` per step). :class:`RecurrentDelayLIF` mixes per presynaptic neuron first and
must give the same spikes and the same gradients.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.delrec import RecurrentDelayLIF, buffer_length, triangular_spread
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN, make_lif
from delaydeploy.training import seed_everything, train

CHANCE = 1 / SyntheticTimingDataset.num_classes


def scheduled_oracle(layer: RecurrentDelayLIF, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The official formulation: schedule ``W (s * spread)`` into a ring buffer of future input."""
    steps, batch, size = x.shape
    delays = layer.recurrent_delays
    length = buffer_length(float(delays.detach().max()), sigma)
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
           delays: torch.Tensor | None = None, seed: int = 0) -> RecurrentDelayLIF:
    config = dataclasses.replace(get_preset("delrec_shd").network, reset=reset, tau=2.0)
    torch.manual_seed(seed)
    layer = RecurrentDelayLIF(size, lambda step_mode: make_lif(config, step_mode=step_mode), max_delay=max_delay,
                              dropout=dropout, delay_init=(0.0, 8.0)).double()
    with torch.no_grad():
        layer.recurrent_weights.mul_(1.5)
        if delays is not None:
            layer.recurrent_delays.copy_(delays)
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

