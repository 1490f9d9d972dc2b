"""Training on the embedded synthetic task: it learns, it is deterministic, it checkpoints."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from spikingjelly.activation_based import neuron  # (after delaydeploy.model, which sets up its import)

from delaydeploy import training
from delaydeploy.checkpoint import load_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.datasets.synthetic import SyntheticTimingDataset
from delaydeploy.model import DelaySNN, make_lif
from delaydeploy.training import dcls_sigma, recurrent_sigma, seed_everything, train, train_preset

CHANCE = 1 / SyntheticTimingDataset.num_classes


def _train(samples: int, epochs: int, delays: str = "learned"):
    preset = get_preset("synthetic")
    config = dataclasses.replace(preset.train, epochs=epochs, batch_size=32)
    seed_everything(0)
    model = DelaySNN(dataclasses.replace(preset.network, delays=delays))
    history = train(model, SyntheticTimingDataset("train", num_samples=samples),
                    SyntheticTimingDataset("test", num_samples=256), config, device=torch.device("cpu"),
                    progress=False)
    return model, history


def test_learned_delays_beat_chance_by_a_wide_margin():
    _, history = _train(samples=512, epochs=4)
    assert history[-1].test_accuracy > 3 * CHANCE  # rounded delays, measured ~0.67 (chance 0.125)
    assert history[-1].train_loss < history[0].train_loss


def test_training_is_deterministic():
    first, _ = _train(samples=64, epochs=1)
    second, _ = _train(samples=64, epochs=1)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name


def test_schedules():
    config = get_preset("shd").train
    assert dcls_sigma(config, 25, 0) == 12
    assert abs(dcls_sigma(config, 25, config.epochs // 4) - 0.23) < 1e-12
    assert dcls_sigma(config, 25, config.epochs) == dcls_sigma(config, 25, config.epochs // 4)
    assert recurrent_sigma(config, 0) == 10.0
    assert abs(recurrent_sigma(config, config.epochs) - 10 * 0.95**100) < 1e-12


def test_cli_train_writes_a_loadable_checkpoint(tmp_path, capsys):
    output = tmp_path / "model.pt"
    assert main(["train", "--preset", "synthetic", "--epochs", "1", "--max-samples", "64", "--quiet",
                 "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "continuous delays" in out and "rounded delays" in out
    checkpoint = load_checkpoint(output)
    assert checkpoint.preset == "synthetic" and checkpoint.train_config.epochs == 1
    assert set(checkpoint.metrics) >= {"history", "test_accuracy_continuous", "test_accuracy_rounded"}
    assert checkpoint.metrics["dataset_options"] == get_preset("synthetic").dataset_options  # framing, for later
    assert 0.0 <= checkpoint.metrics["test_accuracy_rounded"] <= 1.0


def test_train_preset_overrides_delay_mode_and_widths(tmp_path):
    output = tmp_path / "ablation.pt"
    outcome = train_preset("synthetic", output=str(output), epochs=1, max_samples=64, delays="none",
                           hidden=8, progress=False)
    assert outcome.model.config.hidden_sizes == (8, 8)
    config = load_checkpoint(output).config
    assert config.delays == "none" and config.hidden_sizes == (8, 8)
    assert load_checkpoint(output).build_model().readout.weight.shape == (8, 8)


def test_resized_networks_keep_every_other_setting():
    network = get_preset("fsdd").network
    wider = network.resized(hidden=256)
    assert wider.hidden_sizes == (256, 256) and dataclasses.replace(wider, hidden_sizes=(128, 128)) == network
    assert network.resized(layers=3).hidden_sizes == (128, 128, 128)
    assert network.resized() == network
    per_stage = dataclasses.replace(network, sparsity=(0.5, 0.5, 0.0), delay_granularity=("axonal",) * 3)
    assert per_stage.resized(hidden=64).sparsity == (0.5, 0.5, 0.0)
    with pytest.raises(ValueError, match=r"the number of hidden layers \(2\) is fixed by its per-layer "
                                         "sparsity, delay_granularity; 1 asked for"):
        per_stage.resized(layers=1)
    with pytest.raises(ValueError, match=r"hidden_sizes = \(0, 0\) needs at least one layer"):
        network.resized(hidden=0)


def test_our_lif_trains_exactly_like_spikingjellys():
    """The unbind loop changes the gradient's memory traffic, not a value or a gradient."""
    config = get_preset("synthetic").network
    for store_v_seq in (False, True):
        ours = make_lif(config, store_v_seq=store_v_seq).train()
        theirs = neuron.LIFNode(tau=ours.tau, decay_input=False, v_threshold=ours.v_threshold, v_reset=0.0,
                                surrogate_function=ours.surrogate_function, detach_reset=True, step_mode="m",
                                store_v_seq=store_v_seq).train()
        assert type(theirs).multi_step_forward is not type(ours).multi_step_forward
        x = torch.randn(30, 4, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 2
        results = []
        for lif in (ours, theirs):
            current = x.clone().requires_grad_()
            spikes = lif(current)
            potentials = lif.v_seq if store_v_seq else spikes
            (grad,) = torch.autograd.grad((spikes * torch.arange(6.0)).sum() + potentials.square().sum(), current)
            results.append((spikes, potentials, grad))
        assert 0 < float(results[1][0].detach().sum()) < results[1][0].numel()  # some steps fire, some do not
        for mine, reference in zip(*results):
            assert torch.equal(mine, reference)


@pytest.mark.parametrize("order", ["sorted", "cyclic"])
def test_max_samples_spreads_over_the_classes(monkeypatch, order):
    """Dataset files come sorted by label (FSDD, GSC) or labelled in a cycle (synthetic): a quick run
    must not train and test on one class, as the first N or every k-th sample would."""

    class SortedByLabel(torch.utils.data.Dataset):
        num_channels = get_preset("fsdd").network.input_size

        def __init__(self, size: int) -> None:
            cycle = [index % 10 for index in range(size)]
            self.labels = sorted(cycle) if order == "sorted" else cycle

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, index: int):
            return torch.zeros(1, self.num_channels), self.labels[index]

    monkeypatch.setattr(training, "load_dataset", lambda name, data_dir, split, **options: SortedByLabel(
        2250 if split == "train" else 250))
    train_split, test_split = training.preset_splits(get_preset("fsdd"), "unused", max_samples=60)
    for split in (train_split, test_split):  # a seeded random draw: every class, whatever the order
        assert len(split) == 60 and sorted({split[i][1] for i in range(60)}) == list(range(10))
    again, _ = training.preset_splits(get_preset("fsdd"), "unused", max_samples=60)
    assert again.indices == train_split.indices
    whole, _ = training.preset_splits(get_preset("fsdd"), "unused", max_samples=5000)
    assert len(whole) == 2250


def test_a_samples_class_does_not_depend_on_its_batch_mates():
    """Padded to the longest sample, a batch adds steps after a short sample's own: its decision
    must leave them out, as a chip running it alone would (rounded and continuous, any batch size)."""
    from helpers import warmed_model

    from delaydeploy.datasets import pad_collate
    from delaydeploy.model import loss_function
    from delaydeploy.reference import own_steps, predict
    from delaydeploy.training import evaluate, make_loader

    model = warmed_model(get_preset("synthetic").network, seed=3)
    with torch.no_grad():  # a fresh readout is too weak to separate classes: decisions would all be ties
        model.readout.weight.mul_(30)
    generator = torch.Generator().manual_seed(4)
    samples = [(torch.bernoulli(torch.full((int(length), 12), 0.3, dtype=torch.float64), generator=generator),
                int(label))
               for length, label in zip(torch.randint(2, 40, (24,), generator=generator),
                                        torch.randint(0, 8, (24,), generator=generator))]
    x, labels, lengths = pad_collate(samples)
    x = x.double()
    with torch.no_grad():
        for rounded in (True, False):
            together = model(x, rounded=rounded).readout
            readouts = [model(sample[:, None], rounded=rounded).readout for sample, _ in samples]
            alone = torch.cat([predict(readout) for readout in readouts])
            steps = own_steps(lengths, x.shape[0], together)
            assert torch.equal(predict(together, steps), alone)
            losses = torch.stack([loss_function(readout, labels[i:i + 1]) for i, readout in enumerate(readouts)])
            torch.testing.assert_close(loss_function(together, labels, steps), losses.mean(), rtol=1e-12, atol=0)
            if rounded:  # the padded steps would change some decisions
                assert not torch.equal(predict(together), alone)
    model.float()  # the loaders' batches are float32
    accuracies = {size: evaluate(model, make_loader(samples, size, shuffle=False), torch.device("cpu"))[0]
                  for size in (1, 5, 24)}
    assert len(set(accuracies.values())) == 1, accuracies


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no batches here
def test_every_epoch_trains_its_weights_even_the_last_and_a_single_one():
    """Stepped once per epoch over ``epochs`` points, OneCycle spends the last epoch (and all of a
    one-epoch run) at max_lr / 25e4: the weights would not move."""
    from delaydeploy.config import TrainConfig
    from delaydeploy.training import Trainer

    for epochs in (1, 3):
        trainer = Trainer(DelaySNN(get_preset("synthetic").network), TrainConfig(epochs=epochs, batch_size=8),
                          torch.device("cpu"))
        rates = []
        for epoch in range(epochs):
            rates.append(trainer.weight_optimizer.param_groups[0]["lr"])
            trainer.end_epoch(epoch + 1)
        assert min(rates) > 1e-5, rates


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no batches here
@pytest.mark.parametrize("schedule", ["cosine", "one_cycle"])
def test_positions_follow_their_schedule(schedule):
    """Cosine starts at lr_positions and falls; OneCycle starts at a 25th of it and rises to it
    (the epochs sample the peak between two steps), then falls."""
    from delaydeploy.config import TrainConfig
    from delaydeploy.training import Trainer

    config = TrainConfig(epochs=20, batch_size=8, lr_positions=0.1, position_schedule=schedule)
    trainer = Trainer(DelaySNN(get_preset("synthetic").network), config, torch.device("cpu"))
    rates = []
    for epoch in range(config.epochs):
        rates.append(trainer.delay_optimizer.param_groups[0]["lr"])
        trainer.end_epoch(epoch + 1)
    peak = rates.index(max(rates))
    if schedule == "cosine":
        assert rates[0] == 0.1 and peak == 0 and rates == sorted(rates, reverse=True)
    else:
        assert rates[0] == pytest.approx(0.1 / 25) and 0.099 < max(rates) <= 0.1
        assert 0 < peak < config.epochs // 2 and rates[-1] > 0
        assert rates[:peak + 1] == sorted(rates[:peak + 1]) and rates[peak:] == sorted(rates[peak:], reverse=True)


@pytest.mark.parametrize("changes, words", [
    ({"epochs": 0}, "epochs = 0 must be an integer >= 1"),
    ({"batch_size": 2.5}, "batch_size = 2.5 must be an integer >= 1"),
    ({"lr_weights": float("nan")}, "lr_weights = nan must be a finite number > 0"),
    ({"weight_decay": -1e-5}, "weight_decay = -1e-05 must be a finite number >= 0"),
    ({"sigma_epoch_fraction": 1.5}, "sigma_epoch_fraction = 1.5 must be a finite number in (0, 1]"),
    ({"optimizer": "AdamW"}, "optimizer = 'AdamW' must be one of ('adam', 'adamw')"),
    ({"position_schedule": "onecycle"}, "position_schedule = 'onecycle' must be one of ('cosine', 'one_cycle')"),
])
def test_training_configuration_refuses_values_that_would_fail_or_train_silently_wrong(changes, words):
    """A zero epoch count ended in a ZeroDivisionError mid-run; an unknown optimizer name trained with Adam."""
    with pytest.raises(ValueError, match=re.escape(words)):
        dataclasses.replace(get_preset("synthetic").train, **changes)
    with pytest.raises(ValueError, match="invalid training configuration"):
        train_preset("synthetic", epochs=0, progress=False)
