"""The deployment report: ladder, Lava check, cost metrics and plots, written and read back."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from delaydeploy import report as report_module
from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import get_preset
from delaydeploy.fixed_point import FixedLayer, FixedNetwork
from delaydeploy.model import DelaySNN
from delaydeploy.quantize import quantize
from delaydeploy.report import PLOTS, _accumulate_cost, _Cost, build_report, load_report, memory

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained synthetic-preset checkpoint with warmed BatchNorm, so that its layers fire."""
    preset = get_preset("synthetic")
    torch.manual_seed(0)
    model = DelaySNN(preset.network).train()
    with torch.no_grad():
        model(torch.bernoulli(torch.full((50, 16, 12), 0.1)))
    path = tmp_path_factory.mktemp("report") / "model.pt"
    return save_checkpoint(checkpoint_of(model.eval(), preset="synthetic", train_config=preset.train), path)


@pytest.mark.lava
def test_report_files_written_and_read_back(synthetic_checkpoint: Path, tmp_path: Path) -> None:
    import matplotlib.image

    report = build_report(synthetic_checkpoint, tmp_path / "report", max_samples=24, lava_samples=3, progress=False)
    loaded = load_report(tmp_path / "report")
    assert loaded == report
    assert {"ladder", "lava", "synaptic_operations", "activation_sparsity", "firing_rates", "memory",
            "quantisation_spike_changes",
            "calibration_peak", "test_samples", "plots"} <= set(loaded)
    assert [rung["rung"] for rung in loaded["ladder"]] == ["continuous delays", "rounded delays (streaming)",
                                                            "Loihi 2 integers", "SpiNNaker weights",
                                                            "Lava fixed point"]
    assert all(0.0 <= rung["accuracy"] <= 1.0 for rung in loaded["ladder"])
    assert loaded["test_samples"] == 24 and loaded["ladder"][-1]["samples"] == 3
    assert loaded["lava"]["total_spike_mismatches"] == 0 and loaded["lava"]["readout_mismatches"] == 0
    assert loaded["synaptic_operations"]["per_sample"] > 0
    assert 0.0 < loaded["activation_sparsity"]["overall"] < 1.0
    assert set(loaded["firing_rates"]) == {"hidden0", "hidden1"}
    changes = loaded["quantisation_spike_changes"]["hidden0"]
    assert changes["float_spikes"] > 0 and 0.0 <= changes["fraction"] == changes["changed"] / changes["float_spikes"]
    assert loaded["memory"]["weight_bytes"] == loaded["memory"]["synapses"]
    assert "| Loihi 2 integers |" in (tmp_path / "report" / "report.md").read_text()
    for name in PLOTS:
        file = tmp_path / "report" / name
        assert file.read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(file)
        assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_spinnaker_rung_is_the_reference_on_the_stated_weight_grid(synthetic_checkpoint: Path, tmp_path: Path) -> None:
    """Rounding every weight and bias to the unit the report states for its receptor and running the
    reference gives the rung's accuracy; the grid moves weights, so the rung tests something."""
    from delaydeploy.artifacts import load_artifact
    from delaydeploy.checkpoint import load_checkpoint
    from delaydeploy.datasets import pad_collate
    from delaydeploy.finetune import dataset_splits
    from delaydeploy.reference import own_steps, predict, simulate

    report = build_report(synthetic_checkpoint, tmp_path / "report", max_samples=24, lava_samples=0, progress=False)
    network = load_artifact(synthetic_checkpoint).network
    units = report["spinnaker"]["weight_units"]
    moved = 0
    for stage in [*network.layers, network.readout]:
        for name in ("weights", "bias"):
            values = getattr(stage, name)
            unit = np.where(values > 0, units[stage.name]["excitatory"], units[stage.name]["inhibitory"])
            rounded = np.rint(values / unit) * unit
            moved += int((rounded != values).sum())
            setattr(stage, name, rounded)
    assert moved > 0
    _, test_set, _ = dataset_splits(load_checkpoint(synthetic_checkpoint), None, 24)
    x, labels, lengths = pad_collate([test_set[i] for i in range(24)])
    readout = simulate(network, x.double()).readout
    correct = int((predict(readout, own_steps(lengths, x.shape[0], readout), network.decision) == labels).sum())
    rung = next(r for r in report["ladder"] if r["rung"] == "SpiNNaker weights")
    assert rung["samples"] == 24 and rung["accuracy"] == correct / 24


def test_cli_report_prints_the_ladder(synthetic_checkpoint: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "report"
    assert main(["report", str(synthetic_checkpoint), "--max-samples", "16", "--lava-samples", "0", "--quiet",
                 "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy ladder (synthetic test split, 16 samples)" in printed and "Loihi 2 integers" in printed
    assert load_report(output)["lava"] is None


def _tiny_fixed() -> FixedNetwork:
    """2 inputs -> 2 hidden -> 1 readout.

    Input 0 has 2 nonzero synapses, input 1 has 1, hidden 0 has 1, hidden 1 none."""
    hidden = FixedLayer("hidden0", np.array([[2, 0], [4, 6]]), 0, np.zeros((2, 2), dtype=np.int64), np.zeros(2),
                        np.zeros(2), du=4095, dv=100, vth=10)
    readout = FixedLayer("readout", np.array([[8, 0]]), 0, np.zeros((1, 2), dtype=np.int64), np.zeros(1), np.zeros(1),
                         du=4095, dv=100, vth=131071)
    return FixedNetwork(2, [hidden], readout)


def test_synaptic_operations_and_sparsity_follow_neurobench() -> None:
    fixed = _tiny_fixed()
    payload = torch.tensor([[[1.0, 1.0]], [[0.0, 1.0]], [[1.0, 0.0]]])  # [T=3, B=1, 2]
    spikes = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]], [[0.0, 0.0]]])
    mask = torch.ones(3, 1, 1)
    cost = _Cost()
    _accumulate_cost(cost, fixed, payload, [spikes], mask)
    # inputs: step 0 both (2 + 1), step 1 input 1 (1), step 2 input 0 (2) -> 6; spikes: hidden 0 twice (1 each) -> 2
    assert cost.synops == {"hidden0": 6.0, "readout": 2.0}
    assert cost.zeros["hidden0"] / cost.activations["hidden0"] == pytest.approx(3 / 6)
    np.testing.assert_array_equal(cost.spikes_per_neuron["hidden0"], [2.0, 1.0])
    # padding steps (mask 0) count neither operations nor activations
    padded = _Cost()
    _accumulate_cost(padded, fixed, payload, [spikes], torch.tensor([1.0, 1.0, 0.0])[:, None, None])
    assert padded.synops == {"hidden0": 4.0, "readout": 2.0} and padded.activations["hidden0"] == 4.0


def test_memory_counts_8_bit_weights_6_bit_delays_and_24_bit_state() -> None:
    from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer

    fixed = _tiny_fixed()
    network = Network(2, [SpikingLayer("hidden0", np.ones((2, 2)), np.zeros((2, 2), dtype=np.int64), np.zeros(2),
                                       LIFNeuron(tau=2.0, threshold=1.0))],
                      Readout("readout", np.ones((1, 2)), np.zeros((1, 2), dtype=np.int64), np.zeros(1), tau=2.0))
    result = memory(fixed, network)
    assert result["synapses"] == 4
    assert result["weight_bytes"] == 4 and result["delay_bytes"] == 3 and result["neuron_state_bytes"] == 3 * 6
    assert result["total_bytes"] == 4 + 3 + 18 and result["estimated_loihi2_cores"] == 2


@pytest.mark.lava
def test_fsdd_smoke_finetune_and_report_with_data_dir(fsdd_dir: Path, tmp_path: Path) -> None:
    """Real FSDD recordings (spike counts, graded input): ``finetune`` and ``report`` with ``--data-dir``."""
    import shutil

    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("0_george_5.wav", "3_jackson_7.wav", "9_yweweler_49.wav", "0_george_0.wav", "7_lucas_2.wav"):
        shutil.copyfile(fsdd_dir / name, folder / name)  # indices >= 5 train, 0..4 test
    preset = get_preset("fsdd")
    torch.manual_seed(0)
    model = DelaySNN(preset.network).eval()
    source = save_checkpoint(checkpoint_of(model, preset="fsdd", train_config=preset.train), tmp_path / "fsdd.pt")
    tuned = tmp_path / "fsdd_ft.pt"
    assert main(["finetune", str(source), "--data-dir", str(folder), "--epochs", "1", "--max-samples", "3",
                 "--quiet", "-o", str(tuned)]) == 0
    assert (tmp_path / "fsdd_ft.calibration.npy").is_file()
    assert main(["report", str(tuned), "--data-dir", str(folder), "--max-samples", "2", "--lava-samples", "1",
                 "--quiet", "-o", str(tmp_path / "report")]) == 0
    report = load_report(tmp_path / "report")
    assert report["dataset"] == "fsdd" and report["test_samples"] == 2 and report["calibration_peak"] > 1
    assert report["lava"]["total_spike_mismatches"] == 0 and report["lava"]["readout_mismatches"] == 0


def test_report_explains_an_overflow_on_the_test_data(synthetic_checkpoint: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Quantised with weights 2**12 times too strong, the first layer's current leaves 24 bits on
    the test data: the report names the file, the layer and the limit, and writes nothing."""
    def too_strong(network, **kwargs):
        fixed = quantize(network, **kwargs)
        first = dataclasses.replace(fixed.layers[0], weight_exp=fixed.layers[0].weight_exp + 12)
        return dataclasses.replace(fixed, layers=[first, *fixed.layers[1:]])

    monkeypatch.setattr(report_module, "quantize", too_strong)
    output = tmp_path / "report"
    assert main(["report", str(synthetic_checkpoint), "--max-samples", "16", "--lava-samples", "0", "--quiet",
                 "-o", str(output)]) == 2
    message = capsys.readouterr().err
    assert str(synthetic_checkpoint) in message and "test batch 0" in message
    assert "layer 'hidden0'" in message and "24-bit range" in message
    assert not output.exists()


@pytest.mark.parametrize("correct, samples, low, high", [
    (8, 8, 0.6756, 1.0), (0, 10, 0.0, 0.2775), (45, 50, 0.7864, 0.9565), (247, 250, 0.9653, 0.9959)])
def test_wilson_interval_matches_published_values(correct: int, samples: int, low: float, high: float) -> None:
    """Values of the Wilson score interval at 95 % (z = 1.96) as tabulated, e.g. 8/8 -> [0.676, 1]."""
    assert report_module.wilson_interval(correct, samples) == pytest.approx((low, high), abs=1e-4)


def test_lava_samples_are_stratified_by_class_and_seeded() -> None:
    labels = [index // 50 for index in range(500)]  # sorted by class, as FSDD's file names are
    chosen = report_module.stratified_sample(labels, 16)
    assert chosen == sorted(chosen) == report_module.stratified_sample(labels, 16)
    counts = Counter(labels[i] for i in chosen)
    assert set(counts) == set(range(10)) and max(counts.values()) - min(counts.values()) <= 1
    assert report_module.stratified_sample(labels, 500) == list(range(500))
    assert chosen != report_module.stratified_sample(labels, 16, seed=1)


@pytest.mark.lava
def test_lava_rung_on_the_whole_test_split(synthetic_checkpoint: Path, tmp_path: Path) -> None:
    """``report --lava-samples all``: every test sample on Lava, none missed, 0 mismatches."""
    from delaydeploy.cli import main

    assert main(["report", str(synthetic_checkpoint), "--max-samples", "20", "--lava-samples", "all",
                 "--workers", "1", "--quiet", "-o", str(tmp_path / "report")]) == 0
    lava = load_report(tmp_path / "report")["lava"]
    assert lava["samples"] == 20 and lava["indices"] == list(range(20))
    assert lava["total_spike_mismatches"] == 0 and lava["readout_mismatches"] == 0
