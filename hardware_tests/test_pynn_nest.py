"""The PyNN target on NEST: every exported network runs spike for spike like the reference.

NEST 3.10 and PyNN 0.13 are installed by the project's set-up, so none of these tests skips.
Each compares every hidden spike exactly and the readout to 1e-9 (exactly where weights and
decays are representable), with networks that fire, on random networks (sizes, delays up to
62, binary and counts input, recurrent layers, both threshold rules, a readout without leak,
a 10 ms step), the official conformance models, a trained synthetic model, a model trained
on real FSDD recordings, and ``run.py`` run by a Python that cannot import delaydeploy.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ec_keys, moderate_network

from delaydeploy.cli import main
from delaydeploy.exporters.pynn.backend import simulate_nest
from delaydeploy.exporters.pynn.model import nest_tau_m
from delaydeploy.ir import Network
from delaydeploy.ir_file import save_network
from delaydeploy.reference import Simulation, simulate


def _inputs(network: Network, samples: int, steps: int, seed: int, rate: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (steps, samples, network.input_size)
    if network.input_kind == "counts":
        return rng.poisson(4 * rate, shape).astype(np.float64)
    return (rng.random(shape) < rate).astype(np.float64)


def _assert_same(expected: Simulation, actual: Simulation, network: Network, *, exact: bool = False) -> None:
    for layer, want, got in zip(network.layers, expected.spikes, actual.spikes, strict=True):
        assert want.sum() > 0, f"{layer.name} is silent: the comparison would prove little"
        assert tuple(got.shape) == tuple(want.shape)
        mismatches = int((got.double() != want.double()).sum())
        assert mismatches == 0, f"{layer.name}: {mismatches} spike mismatches"
    if exact:
        np.testing.assert_array_equal(actual.readout.numpy(), expected.readout.numpy())
    else:
        np.testing.assert_allclose(actual.readout.numpy(), expected.readout.numpy(), rtol=0, atol=1e-9)


RANDOM_NETWORKS = {
    "binary": lambda: moderate_network(1),
    "counts": lambda: moderate_network(2, input_kind="counts"),
    "recurrent": lambda: moderate_network(3, recurrent=True, tau=1.05),
    "strict-threshold": lambda: moderate_network(4, threshold_rule=">"),
    "delays-to-62": lambda: moderate_network(5, sizes=(30, 40, 30, 6), max_delay=62),
    "no-leak-readout-shd-tau": lambda: moderate_network(6, tau=1.005, readout_tau=1.0),
    "three-layers-10ms": lambda: dataclasses.replace(moderate_network(7, sizes=(16, 24, 20, 18, 4)), dt=0.01),
}


@pytest.mark.parametrize("name", RANDOM_NETWORKS)
def test_random_networks(name: str) -> None:
    network = RANDOM_NETWORKS[name]()
    x = _inputs(network, samples=3, steps=70 if "62" in name else 30, seed=len(name))
    if network.input_kind == "counts":
        assert x.max() >= 3, "counts above 1 must be in the test"
    _assert_same(simulate(network, x), simulate_nest(network, x), network)


def test_readout_bit_identical_when_every_sum_is_exact() -> None:
    """Weights and biases on a 2**-16 grid and decays NEST reaches exactly: nothing is left to
    round, so the readout is equal to the last bit (the spikes already were)."""
    network = moderate_network(8, recurrent=True, tau=2.0, readout_tau=4.0)
    for stage in [*network.layers, network.readout]:
        stage.weights = np.round(stage.weights * 2**16) / 2**16
        stage.bias = np.round(stage.bias * 2**16) / 2**16
        if getattr(stage, "is_recurrent", False):
            stage.recurrent_weights = np.round(stage.recurrent_weights * 2**16) / 2**16
    assert nest_tau_m(0.5, 1.0)[1] == 0.5 and nest_tau_m(0.75, 1.0)[1] == 0.75
    x = _inputs(network, samples=3, steps=30, seed=8)
    _assert_same(simulate(network, x), simulate_nest(network, x), network, exact=True)


def test_official_snn_delays_model(conformance_model) -> None:
    """The authors' SHD model (folded BatchNorm biases fire neurons before any input arrives)."""
    network, x = conformance_model
    _assert_same(simulate(network, x), simulate_nest(network, x), network)


def test_official_delrec_model(delrec_model) -> None:
    """DelRec SHD: 140-256-256(recurrent, per-neuron delays, latency 1 + E)-20."""
    network, x, _ = delrec_model
    _assert_same(simulate(network, x), simulate_nest(network, x), network)


def _run_without_delaydeploy(bundle: Path, inputs: Path, output: Path) -> subprocess.CompletedProcess:
    """``python run.py`` in the bundle, by a Python for which ``import delaydeploy`` fails."""
    blocker = ("import runpy, sys; sys.modules['delaydeploy'] = None; "
               f"sys.argv = ['run.py', '--simulator', 'nest', '--input', {str(inputs)!r}, "
               f"'--output', {str(output)!r}]; "
               "runpy.run_path('run.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", blocker], cwd=bundle, capture_output=True, text=True, timeout=600)


def _assert_matches_vectors(bundle: Path, result: Path) -> None:
    with np.load(bundle / "test_vectors.npz") as vectors, np.load(result) as got:
        layers = [key for key in vectors.files if key.startswith("spikes_")]
        assert layers and sorted(got.files) == sorted([*layers, "readout"])
        for key in layers:
            assert vectors[key].sum() > 0, f"{key} is silent"
            np.testing.assert_array_equal(got[key], vectors[key])
        np.testing.assert_allclose(got["readout"], vectors["readout"], rtol=0, atol=1e-9)


def _export_verify_and_run(tmp_path: Path, checkpoint: Path, inputs: np.ndarray, capsys) -> Path:
    """The partner's path: export --target pynn --sign, verify --trusted-key (NEST by default),
    run.py without delaydeploy, and its output checked back with compare (one spike moved: named)."""
    x_path, bundle, out_path = tmp_path / "x.npy", tmp_path / "bundle", tmp_path / "out.npz"
    np.save(x_path, inputs)
    key, public, _ = ec_keys(tmp_path)
    assert main(["export", str(checkpoint), "--target", "pynn", "-o", str(bundle), "--input", str(x_path),
                 "--sign", str(key)]) == 0
    capsys.readouterr()
    assert main(["verify", str(bundle), "--trusted-key", str(public)]) == 0
    out = capsys.readouterr().out
    assert "no file changed since" in out and "nest vs reference" in out and "verified: 0 spike mismatches" in out
    done = _run_without_delaydeploy(bundle, x_path, out_path)
    assert done.returncode == 0, done.stderr
    _assert_matches_vectors(bundle, out_path)
    assert main(["compare", str(bundle), str(out_path)]) == 0
    with np.load(out_path) as result:
        moved = {key: result[key] for key in result.files}
    step, sample, neuron = (int(i) for i in np.argwhere(moved["spikes_0"] == 1)[0])
    moved["spikes_0"][step, sample, neuron] = 0.0
    np.savez(out_path, **moved)
    capsys.readouterr()
    assert main(["compare", str(bundle), str(out_path)]) == 1
    assert f"FAILED: first divergence: hidden0, neuron {neuron}, time step {step}, sample {sample}: expected 1.0, " \
           "got 0.0" in capsys.readouterr().out
    return bundle


def test_trained_synthetic_model(tmp_path, capsys) -> None:
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "m.pt"
    train_preset("synthetic", output=str(checkpoint), epochs=1, progress=False)
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.synthetic import SyntheticTimingDataset

    test_set = SyntheticTimingDataset("test")
    inputs = pad_collate([test_set[i] for i in range(6)])[0].double().numpy()
    bundle = _export_verify_and_run(tmp_path, checkpoint, inputs, capsys)
    assert main(["verify", str(checkpoint), "--backend", "nest", "--input", str(tmp_path / "x.npy")]) == 0
    # the whole test split on NEST: tests/test_cli.py's demo test verifies its PyNN bundle on all 512 samples
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["target"] == "pynn" and set(manifest["files"]) >= {"run.py", "pynn_model.json",
                                                                        "pynn_connections.npz"}


def test_imported_official_shd_model(tmp_path, snn_delays_vectors, state_dict_from, capsys) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(snn_delays_vectors, "state_disc"), state)
    checkpoint = tmp_path / "shd.pt"
    assert main(["import", "snn-delays", str(state), "--preset", "shd", "--hidden", "32", "--layers", "2",
                 "-o", str(checkpoint)]) == 0
    _export_verify_and_run(tmp_path, checkpoint, snn_delays_vectors["x"].astype(np.float64), capsys)


def test_imported_delrec_model(tmp_path, delrec_vectors, state_dict_from, capsys) -> None:
    state = tmp_path / "state.pt"
    torch.save(state_dict_from(delrec_vectors, "state"), state)
    checkpoint = tmp_path / "delrec.pt"
    assert main(["import", "delrec", str(state), "--preset", "shd", "-o", str(checkpoint)]) == 0
    _export_verify_and_run(tmp_path, checkpoint, delrec_vectors["input"][:, :2].astype(np.float64), capsys)


def test_model_trained_on_fsdd(tmp_path, fsdd_dir, capsys) -> None:
    """The fsdd preset (140-128-128-10, K = 25) after a short epoch on real recordings, verified
    on real test recordings."""
    from delaydeploy.datasets import pad_collate
    from delaydeploy.datasets.fsdd import FSDD
    from delaydeploy.training import train_preset

    checkpoint = tmp_path / "fsdd.pt"
    train_preset("fsdd", output=str(checkpoint), data_dir=str(fsdd_dir), epochs=1, progress=False, max_samples=96)
    test_set = FSDD(fsdd_dir, "test")
    inputs = pad_collate([test_set[i] for i in range(0, 250, 60)])[0].double().numpy()
    _export_verify_and_run(tmp_path, checkpoint, inputs, capsys)


def test_every_kind_of_artifact_verifies_on_nest(tmp_path, capsys) -> None:
    """IR file, NIR file, Lava and Loihi 2 bundles (a Loihi 2 bundle's float network against the
    float reference: NEST runs floats)."""
    network = moderate_network(12, recurrent=True)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, _inputs(network, 2, 25, 12))
    artifacts = [model, tmp_path / "m.nir", tmp_path / "lava", tmp_path / "loihi2"]
    for target, path in zip(("nir", "lava", "loihi2"), artifacts[1:]):
        assert main(["export", str(model), "--target", target, "-o", str(path), "--input", str(x_path)]) == 0
    for path in artifacts:
        capsys.readouterr()
        assert main(["verify", str(path), "--backend", "nest", "--input", str(x_path)]) == 0
        assert "nest vs reference" in capsys.readouterr().out


def test_simulate_writes_the_keys_of_run(tmp_path) -> None:
    network = moderate_network(9)
    model, x_path = tmp_path / "m.ddn", tmp_path / "x.npy"
    save_network(network, model)
    np.save(x_path, _inputs(network, 2, 20, 9))
    assert main(["run", str(model), "--input", str(x_path), "-o", str(tmp_path / "run.npz")]) == 0
    assert main(["simulate", str(model), "--backend", "nest", "--input", str(x_path),
                 "-o", str(tmp_path / "nest.npz")]) == 0
    with np.load(tmp_path / "run.npz") as run, np.load(tmp_path / "nest.npz") as nest:
        assert sorted(run.files) == sorted(nest.files)
        for key in run.files:
            np.testing.assert_allclose(nest[key], run[key], rtol=0, atol=1e-9)
