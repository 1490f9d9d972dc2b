"""The command line: its spelled-out choices agree with the modules that implement them, and bad
input (files, paths, options) gives one ``error:`` line, exit code 2 and no output."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from delaydeploy import cli, comparison, verify
from delaydeploy.checkpoint import checkpoint_of, load_checkpoint, save_checkpoint
from delaydeploy.cli import main
from delaydeploy.config import NetworkConfig
from delaydeploy.ir import delay_structure
from delaydeploy.ir_file import save_network
from delaydeploy.lowering import lower
from delaydeploy.model import DelaySNN
from delaydeploy.reference import Simulation, simulate

CONFIG = NetworkConfig(input_size=3, hidden_sizes=(4,), num_classes=2, kernel_size=5, input_kind="binary")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(checkpoint_of(DelaySNN(CONFIG)), tmp_path_factory.mktemp("model") / "model.pt")


def _spikes(steps: int = 8, samples: int = 2) -> np.ndarray:
    return (np.random.default_rng(0).random((steps, samples, CONFIG.input_size)) < 0.4).astype(np.float64)


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _usual_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def test_backend_choices_are_the_verify_backends():
    assert cli.BACKENDS == verify.BACKENDS
    parser = cli.build_parser()
    for command in ("simulate", "verify"):
        extra = ["-o", "out.npz"] if command == "simulate" else []
        assert parser.parse_args([command, "model.pt", "--backend", "lava-cpu", *extra]).backend == "lava-cpu"


def test_export_never_replaces_a_directory_it_did_not_write(model_path, tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["export", str(model_path), "--target", "lava", "-o", str(precious), "--samples", "2"]) == 2
    assert "not ours" in _error_line(capsys)
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]
    bundle = tmp_path / "bundle"
    for _ in range(2):  # a bundle is ours: exporting again replaces it
        assert main(["export", str(model_path), "--target", "lava", "-o", str(bundle), "--samples", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "precious"]  # nothing left behind
    assert bundle.stat().st_mode & 0o777 == _usual_mode(0o777)
    assert (bundle / "manifest.json").stat().st_mode & 0o777 == _usual_mode(0o666)
    assert model_path.stat().st_mode & 0o777 == _usual_mode(0o666)


@pytest.mark.parametrize("command", ["run", "train", "export-file", "export-bundle"])
def test_bad_output_paths_fail_before_any_work(model_path, tmp_path, capsys, command):
    x = tmp_path / "x.npy"
    np.save(x, _spikes())
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    starts = {"run": ["run", str(model_path), "--input", str(x)], "train": ["train", "--epochs", "1"],
              "export-file": ["export", str(model_path), "--target", "nir"],
              "export-bundle": ["export", str(model_path), "--target", "lava"]}[command]
    bad = [tmp_path / "afile" / "out", tmp_path / ("afile" if command == "export-bundle" else "adir")]
    for output in bad:
        assert main([*starts, "-o", str(output)]) == 2
        assert str(output) in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "x.npy"]
    assert list((tmp_path / "adir").iterdir()) == []


@pytest.mark.parametrize("problem, expected", [
    ((4, 2, 5), "expects [T, B, 3]"),
    ("nan", "non-finite"),
    ((4, 0, 3), "at least one step and one sample"),
    ("half", "values other than 0 and 1"),
])
def test_export_checks_its_input(model_path, tmp_path, capsys, problem, expected):
    x = np.full(problem, 0.0) if isinstance(problem, tuple) else _spikes()
    if problem == "nan":
        x[0, 0, 0] = np.nan
    elif problem == "half":
        x[0, 0, 0] = 0.5
    np.save(tmp_path / "x.npy", x)
    for target in ("lava", "loihi2"):
        assert main(["export", str(model_path), "--target", target, "--input", str(tmp_path / "x.npy"),
                     "-o", str(tmp_path / target)]) == 2
        assert expected in _error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


@pytest.mark.parametrize("content, expected", [
    (b"", "not a .npy array"),
    ("npz", "an .npz archive"),
    ("complex", "dtype complex128"),
])
def test_input_files_that_are_not_one_real_array(model_path, tmp_path, capsys, content, expected):
    path = tmp_path / "x.npy"
    if content == "npz":
        with open(path, "wb") as handle:
            np.savez(handle, x=_spikes())
    elif content == "complex":
        np.save(path, _spikes().astype(np.complex128))
    else:
        path.write_bytes(content)
    assert main(["run", str(model_path), "--input", str(path), "-o", str(tmp_path / "out.npz")]) == 2
    assert expected in _error_line(capsys)
    assert not (tmp_path / "out.npz").exists()


def _crafted(model_path: Path, change: str) -> bytes:
    data = torch.load(model_path, weights_only=True)
    if change == "state is a string":
        data["state_dict"] = "x"
    elif change == "a state entry is not a tensor":
        data["state_dict"][next(iter(data["state_dict"]))] = [1, 2]
    elif change == "input_size is a string":
        data["config"]["input_size"] = "3"
    elif change == "config is a string":
        data["config"] = "nope"
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("content, expected", [
    (b"abc", "not a readable checkpoint"),
    (b"hello", "not a readable checkpoint"),
    (b"Gxxxxxxx", "not a readable checkpoint"),
    ("npy", "not a readable checkpoint"),
    ("state is a string", "state_dict is str, not a dict"),
    ("a state entry is not a tensor", "is list, not a tensor"),
    ("input_size is a string", "input_size = '3' is not of type int"),
    ("config is a string", "config is str, not a dict"),
])
def test_corrupt_and_crafted_checkpoints_give_one_error_line(model_path, tmp_path, capsys, content, expected):
    path = tmp_path / "bad.pt"
    if content == "npy":
        np.save(tmp_path / "bad.npy", _spikes())
        (tmp_path / "bad.npy").rename(path)
    else:
        path.write_bytes(content if isinstance(content, bytes) else _crafted(model_path, content))
    for command in (["inspect", str(path)], ["finetune", str(path), "-o", str(tmp_path / "ft.pt")],
                    ["adapt", str(path), "-o", str(tmp_path / "adapted.pt")]):
        assert main(command) == 2
        line = _error_line(capsys)
        assert expected in line and "weights_only" not in line
    assert not (tmp_path / "ft.pt").exists() and not (tmp_path / "adapted.pt").exists()


def test_run_in_official_semantics_pads_every_stage(model_path, tmp_path, capsys):
    """A streaming checkpoint run in official semantics is rebuilt with the official padding;
    an IR file cannot be, and says so."""
    x = tmp_path / "x.npy"
    np.save(x, _spikes(steps=10))
    assert main(["run", str(model_path), "--input", str(x), "--semantics", "official",
                 "-o", str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as out:
        assert out["spikes_0"].shape[0] == 10 + 2 and out["readout"].shape[0] == 10 + 4  # (K - 1) // 2 per stage
        model = DelaySNN(NetworkConfig(**{**CONFIG.__dict__, "semantics": "official"}))
        model.load_state_dict(torch.load(model_path, weights_only=True)["state_dict"])
        expected = simulate(lower(model.eval()), np.load(x), semantics="official")
        assert np.array_equal(out["readout"], expected.readout.numpy())
    torch.manual_seed(0)
    save_network(lower(DelaySNN(CONFIG).eval()), tmp_path / "model.ddn")
    assert main(["run", str(tmp_path / "model.ddn"), "--input", str(x), "--semantics", "official",
                 "-o", str(tmp_path / "p.npz")]) == 2
    assert "needs the checkpoint" in _error_line(capsys)


def _rewrite_bundle(bundle: Path, manifest_change=None, vectors_change=None) -> None:
    import hashlib

    manifest = json.loads((bundle / "manifest.json").read_text())
    if vectors_change:
        with np.load(bundle / "test_vectors.npz") as data:
            vectors = {key: data[key] for key in data.files}
        vectors_change(vectors)
        np.savez_compressed(bundle / "test_vectors.npz", **vectors)
        manifest["files"]["test_vectors.npz"] = hashlib.sha256((bundle / "test_vectors.npz").read_bytes()).hexdigest()
    if manifest_change:
        manifest = manifest_change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, expected", [
    ("manifest is a list", "holds a list, not an object"),
    ("files is null", "'files' must map file names"),
    ("vectors lack spikes_0", "lacks 'spikes_0'"),
])
def test_malformed_bundles_give_one_error_line(model_path, tmp_path, capsys, damage, expected):
    bundle = tmp_path / "bundle"
    assert main(["export", str(model_path), "--target", "lava", "-o", str(bundle), "--samples", "2"]) == 0
    capsys.readouterr()
    if damage == "manifest is a list":
        _rewrite_bundle(bundle, manifest_change=lambda manifest: [])
    elif damage == "files is null":
        _rewrite_bundle(bundle, manifest_change=lambda manifest: {**manifest, "files": None})
    else:
        _rewrite_bundle(bundle, vectors_change=lambda vectors: vectors.pop("spikes_0"))
    assert main(["verify", str(bundle)]) == 2
    assert expected in _error_line(capsys)


def test_compare_counts_mismatches_and_finds_the_earliest_divergence():
    zeros = [torch.zeros(6, 2, 3, dtype=torch.float64), torch.zeros(6, 2, 4, dtype=torch.float64)]
    expected = Simulation([s.clone() for s in zeros], torch.zeros(6, 2, 2, dtype=torch.float64))
    actual = Simulation([s.clone() for s in zeros], torch.zeros(6, 2, 2, dtype=torch.float64))
    assert comparison.compare(expected, actual, ["a", "b"]).ok
    actual.spikes[0][4, 0, 1] = actual.spikes[0][5, 1, 2] = 1.0
    actual.spikes[1][2, 1, 3] = 1.0
    actual.readout[1, 0, 0] = 1e-9  # within the default tolerance
    result = comparison.compare(expected, actual, ["a", "b"])
    assert result.spike_mismatches == {"a": 2, "b": 1} and result.readout_max_error == 1e-9
    assert result.first_divergence == comparison.Divergence("b", 2, 1, 3, 0.0, 1.0)
    actual.readout[1, 1, 1] = -2e-9
    assert comparison.compare(expected, actual, ["a", "b"]).first_divergence == comparison.Divergence(
        "readout", 1, 1, 1, 0.0, -2e-9)
    assert comparison.compare(expected, actual, ["a", "b"], readout_tolerance=2e-9).first_divergence.layer == "b"


def test_verify_exits_1_and_names_the_first_divergence(model_path, tmp_path, capsys, monkeypatch):
    """A backend that flips one spike, or moves the readout past ``--tolerance``, fails verification."""
    run_backend = verify.run_backend
    change = {}

    def perturbed(artifact, backend, x, **options):
        simulation = run_backend(artifact, backend, x, **options)
        if backend == "torch" and "spike" in change:
            simulation.spikes[0][3, 1, 2] = 1.0 - simulation.spikes[0][3, 1, 2]
        if backend == "torch" and "readout" in change:
            simulation.readout[5, 0, 1] += change["readout"]
        return simulation

    monkeypatch.setattr(verify, "run_backend", perturbed)
    x = tmp_path / "x.npy"
    np.save(x, _spikes())
    verify_command = ["verify", str(model_path), "--input", str(x)]
    assert main(verify_command) == 0
    assert "verified: 0 spike mismatches" in capsys.readouterr().out
    change["spike"] = True
    assert main(verify_command) == 1
    out = capsys.readouterr().out
    assert "hidden0: 1 spike mismatches" in out
    assert "FAILED: first divergence: hidden0, neuron 2, time step 3, sample 1" in out
    change.clear()
    change["readout"] = 1e-6
    assert main(verify_command) == 1
    assert "FAILED: first divergence: readout, neuron 1, time step 5, sample 0" in capsys.readouterr().out
    assert main([*verify_command, "--tolerance", "1e-5"]) == 0


def test_verify_refuses_a_bundle_whose_stored_vectors_disagree(model_path, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    assert main(["export", str(model_path), "--target", "lava", "-o", str(bundle), "--samples", "2"]) == 0

    def flip(vectors):
        vectors["spikes_0"][1, 0, 3] = 1.0 - vectors["spikes_0"][1, 0, 3]

    _rewrite_bundle(bundle, vectors_change=flip)
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 1
    assert f"FAILED: {bundle}/test_vectors.npz: hidden0, neuron 3, time step 1, sample 0: " \
           in capsys.readouterr().out


@pytest.mark.parametrize("damage, expected", [
    ("truncated", "not a delaydeploy network file"),
    ("no layers", "malformed header (KeyError: 'layers')"),
    ("tau is text", "malformed header"),
    ("garbage array", "is unreadable"),
])
def test_malformed_ir_files_give_one_error_line(tmp_path, capsys, damage, expected):
    torch.manual_seed(0)
    path = save_network(lower(DelaySNN(CONFIG).eval()), tmp_path / "model.ddn")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        with zipfile.ZipFile(path) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        header = json.loads(entries["network.json"])
        if damage == "no layers":
            del header["layers"]
        elif damage == "tau is text":
            header["readout"]["tau"] = "abc"
        else:
            entries["readout.bias.npy"] = b"\x93NUMPY garbage"
        entries["network.json"] = json.dumps(header).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
    assert main(["inspect", str(path)]) == 2
    assert expected in _error_line(capsys)


@pytest.mark.parametrize("arguments", [
    ["verify", "m.pt", "--samples", "0"], ["verify", "m.pt", "--steps", "-5"], ["verify", "m.pt", "--tolerance", "nan"],
    ["verify", "m.pt", "--tolerance", "-1"], ["train", "--epochs", "0"], ["train", "--batch-size", "0"],
    ["import", "snn-delays", "s.pt", "--preset", "shd", "--hidden", "0", "-o", "m.pt"],
    ["finetune", "m.pt", "--lr", "0", "-o", "f.pt"], ["report", "m.pt", "--lava-samples", "-1", "-o", "r"],
    ["verify", "m.pt", "--workers", "0"], ["report", "m.pt", "--workers", "0", "-o", "r"],
    ["adapt", "m.pt", "--samples", "0", "-o", "a.pt"],
])
def test_numeric_options_out_of_range_are_usage_errors(arguments, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(arguments)
    assert exit_info.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_train_sets_the_width_and_depth_of_the_preset(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["train", "--preset", "synthetic", "--hidden", "8", "--layers", "1", "--epochs", "1",
                 "--max-samples", "32", "--quiet", "-o", str(model)]) == 0
    assert load_checkpoint(model).config.hidden_sizes == (8,)
    assert main(["train", "--preset", "synthetic_delrec", "--layers", "2", "--epochs", "1", "--quiet",
                 "-o", str(tmp_path / "deeper.pt")]) == 2
    assert ("preset 'synthetic_delrec': the number of hidden layers (1) is fixed by its per-layer "
            "recurrent_layers, delay_stages; 2 asked for") in _error_line(capsys)
    assert not (tmp_path / "deeper.pt").exists()


def test_misplaced_artifacts_are_named_for_what_they_are(model_path, tmp_path, capsys):
    assert main(["import", "snn-delays", str(model_path), "--preset", "shd", "-o", str(tmp_path / "m.pt")]) == 2
    assert "already a delaydeploy checkpoint" in _error_line(capsys)
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "report")]) == 2
    assert "is a directory, not a checkpoint file" in _error_line(capsys)
    if not torch.cuda.is_available():
        assert main(["train", "--device", "cuda", "--epochs", "1", "-o", str(tmp_path / "m.pt")]) == 2
        assert "no such CUDA device" in _error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_demo_and_finetune_check_every_output_before_any_work(model_path, tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    (tmp_path / "yours").mkdir()
    (tmp_path / "yours" / "model.pt").write_text("your own model")
    for output in ("afile", "afile/sub", "yours"):
        assert main(["demo", "-o", str(tmp_path / output), "--epochs", "1", "--quiet"]) == 2
        assert str(tmp_path / output) in _error_line(capsys)
    assert (tmp_path / "yours" / "model.pt").read_text() == "your own model"
    (tmp_path / "ft.calibration.npy").mkdir()  # where fine-tuning would write its calibration inputs
    assert main(["finetune", str(model_path), "-o", str(tmp_path / "ft.pt"), "--epochs", "1", "--quiet"]) == 2
    assert "ft.calibration.npy: is a directory" in _error_line(capsys)
    assert main(["adapt", str(model_path), "-o", str(tmp_path / "afile" / "adapted.pt"), "--quiet"]) == 2
    assert str(tmp_path / "afile") in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ft.calibration.npy", "yours"]


@pytest.mark.parametrize("backend", ["reference", "torch", "nir"])
def test_simulate_writes_what_the_reference_computes(model_path, tmp_path, capsys, backend):
    """A successful ``simulate``: every array in the file equals the reference simulation of the IR."""
    x = tmp_path / "x.npy"
    np.save(x, _spikes(steps=12, samples=3))
    out = tmp_path / "sim.npz"
    assert main(["simulate", str(model_path), "--backend", backend, "--input", str(x), "-o", str(out)]) == 0
    network = lower(load_checkpoint(model_path).build_model())
    expected = simulate(network, np.load(x))
    with np.load(out) as written:
        assert sorted(written.files) == ["pred", "readout", "spikes_0"]
        np.testing.assert_array_equal(written["spikes_0"], expected.spikes[0].numpy())
        np.testing.assert_allclose(written["readout"], expected.readout.numpy(), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(written["pred"], expected.prediction().numpy())
    assert f"wrote {out}" in capsys.readouterr().out


def test_inspect_describes_the_network_it_loads(model_path, capsys):
    assert main(["inspect", str(model_path)]) == 0
    text = capsys.readouterr().out
    network = lower(load_checkpoint(model_path).build_model())
    layer, readout = network.layers[0], network.readout
    assert f"input: {CONFIG.input_size} channels, binary" in text
    assert (f"{layer.name}: {CONFIG.input_size} -> {CONFIG.hidden_sizes[0]} LIF (tau {CONFIG.tau:g} steps, "
            f"threshold {CONFIG.threshold:g}") in text
    assert f"delays {layer.delays.min()}..{layer.delays.max()}" in text
    shared = {"axonal": " (one per presynaptic neuron)", "dendritic": " (one per postsynaptic neuron)"}
    structure = delay_structure(readout.weights, readout.delays)  # a 4 -> 2 readout can have it by chance
    assert (f"{readout.name}: {CONFIG.hidden_sizes[0]} -> {CONFIG.num_classes} non-spiking "
            f"(tau {CONFIG.tau:g} steps); {readout.weights.size} synapses, delays "
            f"{readout.delays.min()}..{readout.delays.max()}{shared[structure[0]] if structure else ''}; "
            "class by summed_softmax") in text
    histogram = [line for line in text.splitlines() if line.startswith("      ") and "|" in line]
    counts = np.bincount(layer.delays.ravel()).tolist() + np.bincount(readout.delays.ravel()).tolist()
    assert [int(line.split()[-1]) for line in histogram] == [c for c in counts if c]


@pytest.mark.lava
def test_demo_runs_the_whole_pipeline_and_verifies_every_target(tmp_path, capsys):
    """``make demo`` end to end (one epoch): every file is written, loads, and every target verified."""
    from delaydeploy.artifacts import load_artifact

    output = tmp_path / "demo"
    assert main(["demo", "-o", str(output), "--epochs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("0 spike mismatches") == 6 and printed.count("-> verified") == 5
    assert printed.count("on all 512 test samples: 0 spike mismatches") == 5  # every artifact, the whole split
    for simulator in ("nest", "brian2"):
        assert f"bundle_pynn: {simulator} vs reference on all 512 test samples: 0 spike mismatches" in printed
    assert sorted(p.name for p in output.iterdir()) == ["bundle_lava", "bundle_loihi2", "bundle_pynn", "model.nir",
                                                        "model.pt", "report"]
    loaded = {name: load_artifact(output / name) for name in ("model.pt", "model.nir", "bundle_lava", "bundle_loihi2",
                                                              "bundle_pynn")}
    assert {name: (artifact.kind, artifact.target) for name, artifact in loaded.items()} == {
        "model.pt": ("checkpoint", None), "model.nir": ("nir", None), "bundle_lava": ("bundle", "lava"),
        "bundle_loihi2": ("bundle", "loihi2"), "bundle_pynn": ("bundle", "pynn")}
    report = json.loads((output / "report" / "report.json").read_text())
    assert report["lava"]["samples"] == 512 and report["lava"]["indices"] == list(range(512))
    assert report["lava"]["total_spike_mismatches"] == 0 and report["lava"]["readout_mismatches"] == 0
    for plot in ("delays", "firing_rates", "ladder", "raster"):
        assert (output / "report" / f"{plot}.png").read_bytes().startswith(b"\x89PNG")


def test_version_is_the_installed_package_version(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"delaydeploy {metadata.version('delaydeploy')}"


@pytest.mark.parametrize("command", [["inspect", "MODEL"], ["--version"]])
def test_a_reader_that_goes_away_stops_the_command_quietly(model_path, command):
    """``delaydeploy inspect m.pt | head``: no BrokenPipeError traceback, the shell's SIGPIPE status,
    also where stdout is buffered (the output then only fails when flushed) and for what argparse prints."""
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    arguments = [str(model_path) if word == "MODEL" else word for word in command]
    process = subprocess.Popen([sys.executable, "-m", "delaydeploy", *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=environment)
    process.stdout.close()  # before the command has written anything
    stderr = process.stderr.read().decode()
    assert process.wait() == cli.EXIT_BROKEN_PIPE and stderr == ""


def test_import_preset_choices_are_the_importers_recipes():
    """Spelled out in the CLI (so that --help does not import torch), kept equal to the importers'."""
    from delaydeploy.importers import IMPORT_PRESETS

    parser = cli.build_parser()
    choices = next(action.choices for action in parser._subparsers._group_actions[0].choices["import"]._actions
                   if action.dest == "preset")
    assert set(choices) == {preset for presets in IMPORT_PRESETS.values() for preset in presets}


def test_verify_checks_every_sample_of_a_split(tmp_path, capsys, monkeypatch):
    """``verify --split``: every sample of the checkpoint's own test split (here cut to 40), batch by batch;
    a divergence is named with its sample's place in the split, and exits 1."""
    model = tmp_path / "m.pt"
    assert main(["train", "--preset", "synthetic", "--epochs", "1", "--max-samples", "64", "--quiet",
                 "-o", str(model)]) == 0
    command = ["verify", str(model), "--split", "test", "--max-samples", "40", "--batch-size", "16", "--quiet"]
    capsys.readouterr()
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "torch vs reference on every sample of the test split: 40 samples" in out
    assert "verified: 0 spike mismatches on all 40 samples" in out
    run_backend = verify.run_backend

    def perturbed(artifact, backend, x, **kwargs):
        simulation = run_backend(artifact, backend, x, **kwargs)
        if backend == "torch" and x.shape[1] == 8:  # the last batch: samples 32..39
            simulation.spikes[0][3, 5, 1] = 1.0 - simulation.spikes[0][3, 5, 1]
        return simulation

    monkeypatch.setattr(verify, "run_backend", perturbed)
    assert main(command) == 1
    assert "FAILED: first divergence: hidden0, neuron 1, time step 3, sample 37" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["export", str(model), "--target", "nir", "-o", str(tmp_path / "m.nir")]) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "m.nir"), "--split", "test"]) == 2
    assert "does not say which dataset it was trained on; name its preset with --preset" in _error_line(capsys)
    assert main(["verify", str(tmp_path / "m.nir"), "--preset", "synthetic", "--max-samples", "16", "--quiet"]) == 0


def test_lava_samples_takes_a_count_or_all(capsys):
    assert cli.build_parser().parse_args(["report", "m.pt", "--lava-samples", "all", "-o", "r"]).lava_samples == "all"
    assert cli.build_parser().parse_args(["report", "m.pt", "--lava-samples", "5", "-o", "r"]).lava_samples == 5
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["report", "m.pt", "--lava-samples", "some", "-o", "r"])
    assert exit_info.value.code == 2 and "--lava-samples" in capsys.readouterr().err
