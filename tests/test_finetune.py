"""Quantisation-aware fine-tuning: its forward is the deployed integer model bit for bit, the
IR -> checkpoint round trip is exact, and a fine-tuned checkpoint exports to a Loihi 2 bundle
that reproduces the trained integers and verifies on Lava with 0 mismatches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_same_network, moderate_network, warmed_model

from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import NetworkConfig, get_preset
from delaydeploy.finetune import QuantizedTrainingModel, finetune, model_from_network, peak_calibration
from delaydeploy.fixed_reference import simulate_fixed
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
from delaydeploy.ir_file import save_network
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN
from delaydeploy.quantize import quantize

SIZES = (12, 20, 16, 5)  # small enough to fine-tune in seconds


def _inputs(kind: str, seed: int = 1, shape: tuple[int, int, int] = (24, 4, 12)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "binary":
        return (rng.random(shape) < 0.3).astype(np.float64)
    if kind == "counts":
        return rng.poisson(0.5, shape).astype(np.float64)
    return rng.normal(0.0, 1.0, shape)


@pytest.mark.parametrize("options", [
    dict(),
    dict(recurrent=True, reset="soft"),
    dict(input_kind="counts"),
    dict(input_kind="analog"),  # weight_exp < 0 in the first layer: every delay group floored on its own
], ids=["binary", "recurrent-soft-reset", "counts", "analog"])
def test_forward_is_the_integer_reference_bit_for_bit(options: dict) -> None:
    network = moderate_network(0, SIZES, readout_tau=2.0, **options)
    x = _inputs(network.input_kind)
    calibration = peak_calibration(network, float(np.abs(x).max()))
    model = QuantizedTrainingModel(network, calibration)
    fixed = quantize(network, calibration=x)  # the peak is all that calibration data set
    reference = simulate_fixed(fixed, x)
    out = model(x)
    if options.get("input_kind") == "analog":
        assert out.fixed.layers[0].weight_exp < 0
    assert len(out.spikes) == len(reference.spikes) == len(network.layers)
    for ours, theirs in zip(out.spikes, reference.spikes):
        assert theirs.sum() > 0
        assert torch.equal(ours.detach(), theirs)
    assert torch.equal(out.readout.detach().to(torch.int64), reference.readout)
    assert torch.equal(out.prediction(), reference.prediction())


def test_gradients_reach_every_parameter() -> None:
    network = moderate_network(1, SIZES, readout_tau=2.0, recurrent=True)
    x = _inputs("binary", seed=2)
    model = QuantizedTrainingModel(network, peak_calibration(network, 1.0))
    out = model(x)
    loss = torch.nn.functional.cross_entropy(torch.softmax(out.readout_float(), -1).sum(0), torch.arange(4))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and float(parameter.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("config", [
    NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=1.5),
    NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=1.5, semantics="official"),
    NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=2.0, reset="soft",
                  batchnorm=False, bias=True, recurrent_layers=(False, True), max_recurrent_delay=6),
    NetworkConfig(input_size=10, hidden_sizes=(16,), num_classes=4, delays="none", bias=True),
], ids=["dcls", "dcls-official", "delrec", "no-delays"])
def test_raise_then_lower_is_the_identity(config: NetworkConfig, tmp_path: Path) -> None:
    network = lower(warmed_model(config, seed=3))
    raised = model_from_network(network, config)
    assert not raised.config.batchnorm and raised.config.bias
    assert_same_network(lower(raised), network)
    path = save_checkpoint(checkpoint_of(raised), tmp_path / "raised.pt")  # float64 survives the checkpoint
    assert_same_network(lower(load_checkpoint(path).build_model()), network)


def test_raise_refuses_an_ir_the_template_cannot_hold() -> None:
    from delaydeploy.errors import IRValidationError

    config = NetworkConfig(input_size=10, hidden_sizes=(16, 12), num_classes=4, kernel_size=9, tau=1.5)
    network = lower(warmed_model(config, seed=4))
    network.layers[0].delays[0, 0] = 9  # the kernel holds delays 0..8
    with pytest.raises(IRValidationError, match="hidden0"):
        model_from_network(network, config)


def _synthetic_checkpoint(path: Path) -> Path:
    """An untrained synthetic-preset checkpoint with warmed BatchNorm (its layers fire)."""
    preset = get_preset("synthetic")
    model = warmed_model(preset.network, seed=5).float()
    return save_checkpoint(checkpoint_of(model, preset="synthetic", train_config=preset.train), path)


def test_finetune_steps_change_weights_and_stay_exact() -> None:
    from delaydeploy.datasets.synthetic import SyntheticTimingDataset

    network = lower(warmed_model(get_preset("synthetic").network, seed=6))
    model = QuantizedTrainingModel(network, peak_calibration(network, 1.0))
    before = quantize(network, calibration=peak_calibration(network, 1.0))
    history = finetune(model, SyntheticTimingDataset("train", num_samples=32), epochs=2, batch_size=16, lr=1e-3,
                       progress=False)
    assert len(history) == 2 and all(np.isfinite(h.train_loss) for h in history)
    after = model.quantized()
    assert any(not np.array_equal(a.weights, b.weights) for a, b in zip(before.layers, after.layers))
    x = SyntheticTimingDataset("test", num_samples=4)
    x = torch.stack([x[i][0] for i in range(4)], dim=1).double().numpy()
    reference = simulate_fixed(after, x)
    with torch.no_grad():
        out = model(x)
    assert len(out.spikes) == len(reference.spikes) == len(network.layers)
    for ours, theirs in zip(out.spikes, reference.spikes):
        assert theirs.sum() > 0 and torch.equal(ours, theirs)
    assert torch.equal(out.readout.to(torch.int64), reference.readout)


@pytest.mark.lava
def test_finetuned_checkpoint_exports_the_trained_integers_and_verifies_on_lava(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture) -> None:
    from delaydeploy.bundle import load_bundle
    from delaydeploy.finetune import finetune_checkpoint

    source = _synthetic_checkpoint(tmp_path / "model.pt")
    output = tmp_path / "finetuned.pt"
    outcome = finetune_checkpoint(source, output, epochs=1, batch_size=32, lr=1e-3, max_samples=64, progress=False)
    assert set(outcome.accuracy) == {"rounded_before", "loihi2_before", "rounded_after", "loihi2_after"}
    checkpoint = load_checkpoint(output)
    assert checkpoint.preset == "synthetic" and checkpoint.metrics["calibration_peak"] == 1.0
    assert_same_network(lower(checkpoint.build_model()), outcome.network)
    calibration = np.load(tmp_path / "finetuned.calibration.npy")
    assert calibration.shape[1:] == (4, 12) and calibration.max() == 1.0

    bundle = tmp_path / "bundle"
    assert main(["export", str(output), "--target", "loihi2", "--samples", "3", "-o", str(bundle)]) == 0
    trained = quantize(outcome.network, calibration=peak_calibration(outcome.network, 1.0))
    exported = load_bundle(bundle).fixed
    for ours, theirs in zip([*trained.layers, trained.readout], [*exported.layers, exported.readout]):
        np.testing.assert_array_equal(ours.weights, theirs.weights)
        np.testing.assert_array_equal(ours.bias_mant << ours.bias_exp, theirs.bias_mant << theirs.bias_exp)
        assert (ours.weight_exp, ours.vth, ours.dv) == (theirs.weight_exp, theirs.vth, theirs.dv)
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 0
    printed = capsys.readouterr().out
    assert "lava-cpu vs fixed-reference" in printed and "0 spike mismatches" in printed


def test_cli_finetune_writes_a_checkpoint(tmp_path: Path) -> None:
    source = _synthetic_checkpoint(tmp_path / "model.pt")
    output = tmp_path / "ft.pt"
    assert main(["finetune", str(source), "--target", "loihi2", "--epochs", "1", "--max-samples", "32",
                 "--quiet", "-o", str(output)]) == 0
    metrics = load_checkpoint(output).metrics
    assert metrics["finetune_target"] == "loihi2" and metrics["test_samples"] == 32
    assert metrics["source_metrics"] == load_checkpoint(source).metrics  # the trained model's history is kept
    assert 0.0 <= metrics["test_accuracy_loihi2_after"] <= 1.0


def test_cli_finetune_without_preset_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = warmed_model(NetworkConfig(input_size=10, hidden_sizes=(8,), num_classes=3, kernel_size=5), seed=7)
    source = save_checkpoint(checkpoint_of(model), tmp_path / "nopreset.pt")
    assert main(["finetune", str(source), "-o", str(tmp_path / "ft.pt")]) == 2
    assert "names no preset" in capsys.readouterr().err
    assert not (tmp_path / "ft.pt").exists()


@pytest.mark.parametrize("weights, bias, message", [
    (5e5, 0.0, "24-bit"),  # one step's drive: ~4e6 thresholds, the state holds 65535
    (1.0, 1e5, "bias"),  # 1e5 thresholds of bias: beyond 13 + 3 bits even at vth = 1
], ids=["weights-overflow-state", "bias-too-large"])
def test_export_loihi2_explains_an_unquantisable_model(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       weights: float, bias: float, message: str) -> None:
    layer = SpikingLayer("hidden0", np.full((3, 8), weights), np.zeros((3, 8), dtype=np.int64), np.full(3, bias),
                         LIFNeuron(tau=2.0, threshold=1.0))
    network = Network(8, [layer], Readout("readout", np.ones((2, 3)), np.zeros((2, 3), dtype=np.int64), np.zeros(2),
                                          tau=2.0))
    save_network(network, tmp_path / "big.ddn")
    assert main(["export", str(tmp_path / "big.ddn"), "--target", "loihi2", "-o", str(tmp_path / "bundle")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "hidden0" in error and message in error
    assert not (tmp_path / "bundle").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]



def test_data_is_framed_as_the_checkpoint_was_trained(monkeypatch, tmp_path):
    """report and finetune read the data with the dataset options the checkpoint recorded, and refuse
    data whose frames are not the network's time step (a preset whose framing changed since)."""
    import dataclasses

    from delaydeploy import finetune as finetune_module
    from delaydeploy.errors import DatasetError
    from delaydeploy.finetune import dataset_splits

    network = get_preset("synthetic").network
    checkpoint = checkpoint_of(DelaySNN(network), preset="synthetic", metrics={"dataset_options": {"num_samples": 8}})
    seen = {}
    real_splits = finetune_module.preset_splits

    def recording_splits(preset, data_dir, max_samples=None):
        seen["options"] = preset.dataset_options
        return real_splits(preset, data_dir, max_samples)

    monkeypatch.setattr(finetune_module, "preset_splits", recording_splits)
    train_set, test_set, name = dataset_splits(checkpoint, None)
    assert seen["options"] == {"num_samples": 8} and len(train_set) == len(test_set) == 8 and name == "synthetic"

    stale = checkpoint_of(DelaySNN(dataclasses.replace(network, dt=0.01)), preset="synthetic")
    with pytest.raises(DatasetError, match="10 ms steps, but synthetic loads with 1 ms frames"):
        dataset_splits(stale, None, max_samples=4)
