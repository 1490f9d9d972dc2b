"""What the PyNN bundle's tests on NEST and on Brian 2 share: inputs that make networks fire,
random networks that cover what a bundle can hold, the exact comparison, and the partner's
path (``run.py`` run by a Python that cannot import delaydeploy, its output checked back)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import ec_keys, moderate_network

from delaydeploy.cli import main
from delaydeploy.ir import Network
from delaydeploy.reference import Simulation


def spiking_inputs(network: Network, samples: int, steps: int, seed: int, rate: float = 0.15) -> np.ndarray:
    """Binary spikes, or counts up to about 4, at ``rate``."""
    rng = np.random.default_rng(seed)
    shape = (steps, samples, network.input_size)
    if network.input_kind == "counts":
        return rng.poisson(4 * rate, shape).astype(np.float64)
    return (rng.random(shape) < rate).astype(np.float64)


def assert_same(expected: Simulation, actual: Simulation, network: Network, *, exact: bool = False) -> None:
    """Every hidden spike equal (each layer fires), the readout to 1e-9 or, ``exact``, to the last bit."""
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


def random_network_case(name: str) -> tuple[Network, np.ndarray]:
    """``RANDOM_NETWORKS[name]`` and an input long enough for its delays."""
    network = RANDOM_NETWORKS[name]()
    x = spiking_inputs(network, samples=3, steps=70 if "62" in name else 30, seed=len(name))
    if network.input_kind == "counts":
        assert x.max() >= 3, "counts above 1 must be in the test"
    return network, x


def on_grid(network: Network, resolution: float = 2.0**-16) -> Network:
    """``network`` with every weight and bias rounded to ``resolution``: then every sum of them is exact."""
    for stage in [*network.layers, network.readout]:
        stage.weights = np.round(stage.weights / resolution) * resolution
        stage.bias = np.round(stage.bias / resolution) * resolution
        if getattr(stage, "is_recurrent", False):
            stage.recurrent_weights = np.round(stage.recurrent_weights / resolution) * resolution
    return network


def run_without_delaydeploy(bundle: Path, simulator: str, inputs: Path, output: Path) -> subprocess.CompletedProcess:
    """``python run.py --simulator SIMULATOR`` in the bundle, by a Python for which ``import delaydeploy`` fails."""
    blocker = ("import runpy, sys; sys.modules['delaydeploy'] = None; "
               f"sys.argv = ['run.py', '--simulator', {simulator!r}, '--input', {str(inputs)!r}, "
               f"'--output', {str(output)!r}]; "
               "runpy.run_path('run.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", blocker], cwd=bundle, capture_output=True, text=True, timeout=600)


def assert_matches_vectors(bundle: Path, result: Path) -> None:
    """``result`` (run.py's output) holds the bundle's test vectors: every spike, the readout to 1e-9."""
    with np.load(bundle / "test_vectors.npz") as vectors, np.load(result) as got:
        layers = [key for key in vectors.files if key.startswith("spikes_")]
        assert layers and sorted(got.files) == sorted([*layers, "readout"])
        for key in layers:
            assert vectors[key].sum() > 0, f"{key} is silent"
            np.testing.assert_array_equal(got[key], vectors[key])
        np.testing.assert_allclose(got["readout"], vectors["readout"], rtol=0, atol=1e-9)


def export_verify_and_run(tmp_path: Path, checkpoint: Path, inputs: np.ndarray, capsys, simulator: str) -> Path:
    """The partner's path: export --target pynn --sign, verify --trusted-key on ``simulator``,
    run.py without delaydeploy, and its output checked back with compare (one spike moved: named)."""
    x_path, bundle, out_path = tmp_path / "x.npy", tmp_path / "bundle", tmp_path / "out.npz"
    np.save(x_path, inputs)
    key, public, _ = ec_keys(tmp_path)
    assert main(["export", str(checkpoint), "--target", "pynn", "-o", str(bundle), "--input", str(x_path),
                 "--sign", str(key)]) == 0
    capsys.readouterr()
    backend = [] if simulator == "nest" else ["--backend", simulator]  # NEST is a PyNN bundle's own backend
    assert main(["verify", str(bundle), "--trusted-key", str(public), *backend]) == 0
    out = capsys.readouterr().out
    assert "no file changed since" in out and f"{simulator} vs reference" in out
    assert "verified: 0 spike mismatches" in out
    done = run_without_delaydeploy(bundle, simulator, x_path, out_path)
    assert done.returncode == 0, done.stderr
    assert_matches_vectors(bundle, out_path)
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
