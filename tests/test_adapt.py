"""Adaptation of BatchNorm statistics to unlabeled test data: the statistics are the data's own,
labels are never read, and the adapted checkpoint goes through report and finetune with its
adaptation recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from helpers import warmed_model
from torch.utils.data import Dataset

from delaydeploy.adapt import adapt_batchnorm
from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.model import DelaySNN
from delaydeploy.report import load_report
from delaydeploy.training import make_loader


class Samples(Dataset):
    """Fixed ``[T, C]`` samples with the given labels."""

    def __init__(self, x: torch.Tensor, labels: list[int]) -> None:
        self.x, self.labels = x, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.x[index], self.labels[index]


def _one_layer_model() -> DelaySNN:
    config = NetworkConfig(input_size=6, hidden_sizes=(5,), num_classes=3, kernel_size=5)
    return warmed_model(config, seed=3)


def _samples(count: int, seed: int, rate: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((count, 20, 6), rate, dtype=torch.float64), generator=generator)


def test_adapted_statistics_are_the_mean_and_variance_of_the_datas_current() -> None:
    """Two batches of 4: each BatchNorm's running mean and variance become the average of the
    two batches' own, measured on the synaptic current of the rounded delays."""
    model = _one_layer_model()
    x = _samples(8, seed=1, rate=0.6)  # denser than the warm-up's 0.2: the statistics must move
    before = model.blocks[0].norm.running_mean.clone()
    adapt_batchnorm(model, Samples(x, [0] * 8), batch_size=4, seed=2)
    tail = (0, 0, 0, 0, 0, model.config.tail)  # streaming: the network appends its tail steps
    with torch.no_grad():  # the same shuffled batches
        currents = [model.blocks[0].synapses(torch.nn.functional.pad(batch.double(), tail), True).flatten(0, 1)
                    for batch, _, _ in make_loader(Samples(x, [0] * 8), 4, shuffle=True, seed=2)]
    assert len(currents) == 2
    norm = model.blocks[0].norm
    torch.testing.assert_close(norm.running_mean, sum(c.mean(0) for c in currents) / 2, rtol=0, atol=1e-12)
    torch.testing.assert_close(norm.running_var, sum(c.var(0) for c in currents) / 2, rtol=0, atol=1e-12)
    assert not torch.allclose(norm.running_mean, before)
    assert norm.momentum == 0.1 and not norm.training  # restored, eval mode


def test_labels_are_never_read() -> None:
    x = _samples(10, seed=4, rate=0.4)
    states = []
    for labels in ([0, 1, 2] * 3 + [0], [2] * 10):
        model = _one_layer_model()
        adapt_batchnorm(model, Samples(x, labels), batch_size=4)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_a_network_without_batchnorm_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    preset = get_preset("synthetic")
    config = NetworkConfig.from_dict({**preset.network.to_dict(), "batchnorm": False})
    source = save_checkpoint(checkpoint_of(DelaySNN(config).eval(), preset="synthetic", train_config=preset.train),
                             tmp_path / "plain.pt")
    output = tmp_path / "adapted.pt"
    assert main(["adapt", str(source), "--max-samples", "8", "--quiet", "-o", str(output)]) == 2
    error = capsys.readouterr().err
    assert f"{source}: the network has no BatchNorm layers to adapt" in error
    assert "the trained checkpoint it came from" in error
    assert not output.exists()


def test_more_samples_than_the_test_split_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    preset = get_preset("synthetic")
    source = save_checkpoint(checkpoint_of(warmed_model(preset.network, seed=1).float(), preset="synthetic",
                                           train_config=preset.train), tmp_path / "model.pt")
    output = tmp_path / "adapted.pt"
    assert main(["adapt", str(source), "--max-samples", "8", "--samples", "9", "--quiet", "-o", str(output)]) == 2
    assert "--samples 9: the test split has only 8 samples" in capsys.readouterr().err
    assert not output.exists()


def test_fsdd_checkpoint_adapted_to_an_unheard_speaker_then_reported_and_finetuned(
        fsdd_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Real recordings: adapt to jackson's three recordings; report and finetune use jackson's
    split and carry the adaptation; the folded network differs from the source's."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("0_george_5.wav", "4_george_9.wav", "3_jackson_7.wav", "5_jackson_1.wav", "8_jackson_30.wav"):
        shutil.copyfile(fsdd_dir / name, folder / name)
    preset = get_preset("fsdd")
    torch.manual_seed(0)
    source = save_checkpoint(checkpoint_of(DelaySNN(preset.network).eval(), preset="fsdd", train_config=preset.train),
                             tmp_path / "fsdd.pt")
    adapted = tmp_path / "adapted.pt"
    assert main(["adapt", str(source), "--data-dir", str(folder), "--test-speakers", "jackson", "--samples", "2",
                 "--quiet", "-o", str(adapted)]) == 0
    printed = capsys.readouterr().out
    assert "BatchNorm statistics from 2 unlabeled test samples" in printed
    assert "on the 1 test samples it did not use" in printed
    checkpoint = load_checkpoint(adapted)
    assert checkpoint.metrics["test_accuracy_rounded_unused"] in (0.0, 1.0)
    assert checkpoint.metrics["adaptation"] == {"kind": "batchnorm_statistics", "split": "test", "samples": 2,
                                                "of": 3, "seed": 0}
    assert checkpoint.metrics["dataset_options"]["test_speakers"] == ["jackson"]
    for key in ("blocks.0.norm.running_mean", "blocks.1.norm.running_var"):
        assert not torch.equal(checkpoint.state_dict[key], load_checkpoint(source).state_dict[key]), key

    assert main(["report", str(adapted), "--data-dir", str(folder), "--lava-samples", "0", "--quiet",
                 "-o", str(tmp_path / "report")]) == 0
    report = load_report(tmp_path / "report")
    assert report["test_samples"] == 3 and report["adaptation"]["samples"] == 2
    assert "BatchNorm adapted to 2 of the 3 test samples" in (tmp_path / "report" / "report.md").read_text()

    tuned = tmp_path / "tuned.pt"
    assert main(["finetune", str(adapted), "--data-dir", str(folder), "--epochs", "1", "--quiet",
                 "-o", str(tuned)]) == 0
    assert "can undo much of the adaptation" in capsys.readouterr().err
    metrics = load_checkpoint(tuned).metrics
    assert metrics["adaptation"] == checkpoint.metrics["adaptation"] and metrics["test_samples"] == 3
    capsys.readouterr()
    assert main(["adapt", str(tuned), "--data-dir", str(folder), "--quiet", "-o", str(tmp_path / "again.pt")]) == 2
    assert "fine-tuned checkpoint has them folded into biases" in capsys.readouterr().err
