"""The examples and the benchmark runner, end to end on tiny inputs: what they print and write,
and that bad input gives one ``error:`` line, exit code 2 and no output."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import torch

from delaydeploy.checkpoint import checkpoint_of, save_checkpoint
from delaydeploy.config import get_preset
from delaydeploy.datasets import load_dataset
from delaydeploy.model import DelaySNN
from delaydeploy.training import make_loader

ROOT = Path(__file__).resolve().parents[1]
FSDD_TEST_FILES = ["0_george_0.wav", "3_jackson_1.wav", "7_lucas_2.wav", "9_yweweler_4.wav"]


def load_script(relative: str) -> ModuleType:
    """The file ``ROOT/relative`` as a module (examples are scripts, not a package)."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"script_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), lines
    return lines[-1]


def _refuse_training(*args, **kwargs):
    raise AssertionError("trained although an output path was bad")


# -- inference_speed -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fsdd_checkpoints(tmp_path_factory, fsdd_dir: Path) -> tuple[Path, Path, Path]:
    """A folder of four FSDD test recordings, and an untrained fsdd-preset model with delays and one without."""
    folder = tmp_path_factory.mktemp("fsdd")
    for name in FSDD_TEST_FILES:
        shutil.copy(fsdd_dir / name, folder / name)
    network = get_preset("fsdd").network
    torch.manual_seed(0)
    delays = save_checkpoint(checkpoint_of(DelaySNN(network), preset="fsdd"), folder / "delays.pt")
    flat = save_checkpoint(checkpoint_of(DelaySNN(dataclasses.replace(network, delays="none")), preset="fsdd"),
                           folder / "flat.pt")
    return folder, delays, flat


def test_inference_speed_times_each_checkpoint_on_the_test_split(fsdd_checkpoints, capsys):
    folder, delays, flat = fsdd_checkpoints
    example = load_script("examples/inference_speed.py")
    code = example.main([str(delays), str(flat), "--preset", "fsdd", "--data-dir", str(folder),
                         "--batch-size", "3", "--repeats", "2"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    x, _, _ = next(iter(make_loader(load_dataset("fsdd", folder, "test"), 3, shuffle=False)))
    input_activity = f"{float((x != 0).float().mean()):.3f}"
    for line, path in zip(lines, (delays, flat)):
        match = re.fullmatch(rf"{re.escape(str(path))}: ([\d.]+) ms per batch of 3, activity \[([\d., ]+)\]", line)
        assert match, line
        assert float(match[1]) > 0
        activity = match[2].split(", ")
        assert len(activity) == 3 and activity[0] == input_activity  # input, then the two hidden layers
        assert all(0.0 <= float(value) <= 1.0 for value in activity)
    assert re.fullmatch(rf"{re.escape(str(delays))}: [\d.]+x {re.escape(str(flat))}", lines[2]), lines[2]


def test_inference_speed_refuses_bad_input(fsdd_checkpoints, tmp_path, capsys):
    folder, delays, _ = fsdd_checkpoints
    example = load_script("examples/inference_speed.py")
    assert example.main([str(delays), "--preset", "fsdd", "--data-dir", str(tmp_path / "missing")]) == 2
    assert str(tmp_path / "missing") in _error_line(capsys)
    assert example.main([str(tmp_path / "missing.pt"), "--preset", "fsdd", "--data-dir", str(folder)]) == 2
    assert "missing.pt: no such checkpoint file" in _error_line(capsys)
    assert example.main([str(delays), "--preset", "synthetic"]) == 2
    assert _error_line(capsys) == f"error: {delays}: takes 140 input channels, the synthetic test split has 12"
    with pytest.raises(SystemExit) as exit_info:
        example.main([str(delays), "--preset", "fsdd", "--data-dir", str(folder), "--repeats", "0"])
    assert exit_info.value.code == 2
    assert "--repeats: must be >= 1, got 0" in capsys.readouterr().err


# -- synthetic_ablation ----------------------------------------------------------------------------

def test_synthetic_ablation_writes_json_and_plot(tmp_path, capsys):
    example = load_script("examples/synthetic_ablation.py")
    json_path, plot_path = tmp_path / "ablation.json", tmp_path / "ablation.png"
    code = example.main(["--widths", "4", "--epochs", "1", "--max-samples", "32",
                         "--json", str(json_path), "--plot", str(plot_path)])
    assert code == 0
    results = json.loads(json_path.read_text())
    assert list(results) == ["4"] and list(results["4"]) == ["learned", "fixed", "none"]
    for mode, row in results["4"].items():
        assert row["label"] == example.MODES[mode] and row["epochs"] == 1
        for key in ("test_accuracy_rounded", "test_accuracy_continuous"):
            assert 0.0 <= row[key] <= 1.0 and (row[key] * 32).is_integer()  # 32 test samples
    for mode in ("fixed", "none"):  # integer delays or none: rounding changes nothing
        assert results["4"][mode]["test_accuracy_rounded"] == results["4"][mode]["test_accuracy_continuous"]
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.strip().startswith("2 x 4"))
    assert row.split()[3:] == [f"{results['4'][mode]['test_accuracy_rounded']:.1%}" for mode in example.MODES]
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ablation.json", "ablation.png"]


def test_synthetic_ablation_checks_outputs_before_training(tmp_path, capsys, monkeypatch):
    example = load_script("examples/synthetic_ablation.py")
    monkeypatch.setattr(example, "train_preset", _refuse_training)
    (tmp_path / "file").write_text("")
    assert example.main(["--widths", "4", "--json", str(tmp_path / "file" / "out.json")]) == 2
    assert "is not a directory" in _error_line(capsys)
    assert example.main(["--widths", "4", "--plot", str(tmp_path)]) == 2
    assert _error_line(capsys) == f"error: {tmp_path}: is a directory; give a file name"
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--widths", "0"])
    assert exit_info.value.code == 2


# -- hardware_shaped -------------------------------------------------------------------------------

def test_hardware_shaped_writes_table_json_and_plot(tmp_path, capsys):
    example = load_script("examples/hardware_shaped.py")
    output = tmp_path / "out"
    assert example.main(["--epochs", "1", "--max-samples", "32", "-o", str(output)]) == 0
    results = json.loads((output / "hardware_shaped.json").read_text())
    assert list(results) == ["dense", "sparse"] and all(list(row) == list(example.DELAYS) for row in results.values())
    dense, sparse = results["dense"], results["sparse"]
    for row in (dense, sparse):
        for entry in row.values():
            assert entry["test_samples"] == 32 and (entry["accuracy_loihi2"] * 32).is_integer()
    assert sparse["synaptic"]["synapses"] < 0.5 * dense["synaptic"]["synapses"]  # 10 per neuron of 48 inputs
    assert dense["axonal"]["nir_bytes"] < 0.5 * dense["synaptic"]["nir_bytes"]  # one Delay node per stage
    assert dense["none"]["delay_buffer_slots"] < dense["synaptic"]["delay_buffer_slots"]
    table = (output / "hardware_shaped.md").read_text()
    assert table in capsys.readouterr().out and table.count("\n| sparse |") == 4
    assert (output / "hardware_shaped.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- recurrent_vs_feedforward ----------------------------------------------------------------------

def test_recurrent_vs_feedforward_counts_parameters_and_writes_json(tmp_path, capsys):
    example = load_script("examples/recurrent_vs_feedforward.py")
    json_path = tmp_path / "results.json"
    assert example.main(["--epochs", "1", "--max-samples", "32", "--seed", "3", "--json", str(json_path)]) == 0
    results = json.loads(json_path.read_text())
    assert list(results) == ["synthetic", "synthetic_delrec"]
    feedforward, recurrent = results["synthetic"], results["synthetic_delrec"]
    assert (feedforward["hidden_sizes"], recurrent["hidden_sizes"]) == ([48, 48], [71])
    assert feedforward["parameters"] == {"weights": 3456, "delays": 3264, "total": 6720}
    assert recurrent["parameters"]["delays"] == 71  # one recurrent delay per hidden neuron
    assert abs(recurrent["parameters"]["total"] / feedforward["parameters"]["total"] - 1) < 0.01
    for row in (feedforward, recurrent):
        assert (row["epochs"], row["seed"]) == (1, 3)
        assert 0.0 <= row["test_accuracy_rounded"] <= 1.0 and (row["test_accuracy_rounded"] * 32).is_integer()
    out = capsys.readouterr().out
    assert "epochs 1, seed 3" in out and f"wrote {json_path}" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]


def test_recurrent_vs_feedforward_checks_json_before_training(tmp_path, capsys, monkeypatch):
    example = load_script("examples/recurrent_vs_feedforward.py")
    monkeypatch.setattr(example, "train_preset", _refuse_training)
    assert example.main(["--json", str(tmp_path)]) == 2
    assert _error_line(capsys) == f"error: {tmp_path}: is a directory; give a file name"


# -- benchmarks ------------------------------------------------------------------------------------

@pytest.fixture
def bench() -> ModuleType:
    return load_script("benchmarks/__main__.py")


def test_benchmarks_write_one_json_object(bench, tmp_path, monkeypatch):
    calls = []

    def fake_run_module(name: str, environment: dict[str, str]) -> dict[str, object]:
        calls.append(name)
        assert set(bench.ALLOCATOR) <= set(environment)
        return {f"{name}_seconds": 1.5}

    monkeypatch.setattr(bench, "run_module", fake_run_module)
    output = tmp_path / "bench.json"
    assert bench.main(["lava_bench", "training_bench", "lava_bench", "-o", str(output)]) == 0
    assert calls == ["lava_bench", "training_bench"]
    results = json.loads(output.read_text())
    assert list(results) == ["machine", "lava_bench_seconds", "training_bench_seconds"]
    assert set(results["machine"]) == {"python", "torch", "cpu_threads", "cuda", "allocator"}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bench.json"]


def test_benchmarks_refuse_bad_arguments_before_running(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_module", _refuse_training)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["no_such_bench"])
    assert exit_info.value.code == 2
    assert "unknown benchmark 'no_such_bench'" in capsys.readouterr().err
    assert bench.main(["lava_bench", "-o", str(tmp_path)]) == 2
    assert _error_line(capsys) == f"error: {tmp_path}: is a directory; give a file name"


def test_a_failing_benchmark_exits_1_and_writes_nothing(bench, tmp_path, monkeypatch, capsys):
    def failing(name: str, environment: dict[str, str]) -> dict[str, object]:
        raise bench.BenchmarkFailed(f"benchmark {name} failed (exit code 1; see above)")

    monkeypatch.setattr(bench, "run_module", failing)
    assert bench.main(["lava_bench", "-o", str(tmp_path / "bench.json")]) == 1
    assert _error_line(capsys) == "error: benchmark lava_bench failed (exit code 1; see above)"
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(bench, "run_module", lambda name, environment: {"machine": 0})
    assert bench.main(["lava_bench"]) == 1
    assert _error_line(capsys) == "error: benchmark lava_bench: key machine is already in the output"


def test_run_module_reports_a_crashing_interpreter(bench, monkeypatch, capfd):
    monkeypatch.chdir(ROOT)  # the child imports ``benchmarks`` from the checkout
    with pytest.raises(bench.BenchmarkFailed, match="benchmark no_such_bench failed"):
        bench.run_module("no_such_bench", dict(os.environ))
    assert "ModuleNotFoundError" in capfd.readouterr().err


# -- fsdd_speakers ---------------------------------------------------------------------------------

def test_cnn_baseline_ignores_a_recordings_spectral_colour_and_its_padding():
    """The CNN normalises each recording's bands over its own frames: a constant added to a band
    (in dB, a microphone's or a voice's gain there) changes nothing, nor does padding in a batch."""
    example = load_script("examples/fsdd_speakers.py")
    torch.manual_seed(0)
    model = example.CNNClassifier().eval()
    short, long = torch.randn(30, example.MEL_BANDS), torch.randn(50, example.MEL_BANDS)
    coloured = short + torch.linspace(-6.0, 6.0, example.MEL_BANDS)
    with torch.no_grad():
        alone = model(short[None], torch.tensor([30]))
        padded = model(torch.nn.utils.rnn.pad_sequence([coloured, long], batch_first=True), torch.tensor([30, 50]))
    torch.testing.assert_close(padded[0], alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(padded[1], alone[0], rtol=1e-2, atol=1e-2)  # another recording: another answer


def test_fsdd_speakers_quick_writes_table_json_and_plot(fsdd_dir, tmp_path, capsys, monkeypatch):
    """Two folds on a handful of real recordings: every model gets an accuracy per fold and a summary."""
    example = load_script("examples/fsdd_speakers.py")
    folder = tmp_path / "recordings"
    folder.mkdir()
    for speaker in ("george", "lucas"):
        for digit in range(4):
            for index in (0, 1, 2):
                name = f"{digit}_{speaker}_{index}.wav"
                shutil.copy(fsdd_dir / name, folder / name)
    output = tmp_path / "out"
    assert example.main(["--data-dir", str(folder), "--quick", "-o", str(output)]) == 0
    results = json.loads((output / "results.json").read_text())
    assert list(results["folds"]) == ["george", "lucas"]
    for fold in results["folds"].values():
        assert fold["test_recordings"] == 12
        assert all(0.0 <= fold[model] <= 1.0 for model in example.MODELS)
    for model, summary in results["summary"].items():
        values = [fold[model] for fold in results["folds"].values()]
        assert summary["mean"] == pytest.approx(sum(values) / 2) and summary["min"] == min(values)
    table = (output / "table.md").read_text()
    assert "2 folds; test recordings per fold: george 12, lucas 12" in table
    assert all(label in table for label in example.MODELS.values())
    assert (output / "speakers.png").read_bytes().startswith(b"\x89PNG")
    assert example.main(["--data-dir", str(folder), "--quick", "--speakers", "bob", "-o", str(tmp_path / "x")]) == 2
    assert "no recordings of speaker bob; speakers found: george, lucas" in capsys.readouterr().err
    widths, train_preset = [], example.train_preset

    def train_recording_widths(*args, **kwargs):
        outcome = train_preset(*args, **kwargs)
        widths.append(outcome.model.config.hidden_sizes)
        return outcome

    monkeypatch.setattr(example, "train_preset", train_recording_widths)
    assert example.main(["--data-dir", str(folder), "--quick", "--models", "none,learned", "--speakers", "lucas",
                         "--warp", "2,0.1", "--hidden", "16", "-o", str(tmp_path / "subset")]) == 0
    assert widths == [(16, 16), (16, 16)]  # learned, none
    subset = json.loads((tmp_path / "subset" / "results.json").read_text())
    assert subset["settings"]["augmentation"] == {"kind": "warp", "channel_shift": 2, "stretch": 0.1}
    assert subset["settings"]["hidden"] == 16
    assert list(subset["summary"]) == ["learned", "learned_loihi2", "learned_finetuned_rounded",
                                       "learned_loihi2_finetuned", "learned_adapted", "learned_adapted_loihi2",
                                       "learned_adapted_loihi2_finetuned", "learned_adapted_tenth", "none"]
    subset_table = (tmp_path / "subset" / "table.md").read_text()
    assert "GRU" not in subset_table and "CNN" not in subset_table
    with pytest.raises(SystemExit):
        example.main(["--data-dir", str(folder), "--models", "lstm", "-o", str(tmp_path / "y")])
    assert "expected some of learned, fixed, none, gru, cnn" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        example.main(["--data-dir", str(folder), "--warp", "8,1.5", "-o", str(tmp_path / "y")])
    assert "expected CHANNELS,STRETCH such as 8,0.15 (augmentation stretch = 1.5" in capsys.readouterr().err
