"""Small networks and paths to the shared data, used by several test modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from delaydeploy.config import NetworkConfig
from delaydeploy.ir import LIFNeuron, Network, Readout, SpikingLayer
from delaydeploy.model import DelaySNN

# Next to the checkout, not in it: the conformance vectors and FSDD recordings are not committed.
SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance"


def require_file(path: Path) -> Path:
    """``path``, or skip the calling test with the reason that it is missing on this machine."""
    if not path.exists():
        pytest.skip(f"{path} is not available on this machine")
    return path


def make_network(seed: int = 0, recurrent: bool = True) -> Network:
    """A 3-5-4-2 counts network: soft reset, ">" rule, delays 0..6, optionally recurrent layer 2."""
    rng = np.random.default_rng(seed)
    neuron = LIFNeuron(tau=2.0, threshold=1.0, reset="soft", threshold_rule=">")
    hidden0 = SpikingLayer("hidden0", rng.normal(size=(5, 3)), rng.integers(0, 7, (5, 3)), rng.normal(size=5), neuron)
    hidden1 = SpikingLayer("hidden1", rng.normal(size=(4, 5)), rng.integers(0, 7, (4, 5)), np.zeros(4), neuron,
                           rng.normal(size=(4, 4)) if recurrent else None,
                           rng.integers(0, 3, (4, 4)) if recurrent else None)
    readout = Readout("readout", rng.normal(size=(2, 4)), rng.integers(0, 7, (2, 4)), rng.normal(size=2), tau=3.0)
    return Network(3, [hidden0, hidden1], readout, input_kind="counts", dt=0.01, tail_steps=6,
                   metadata={"source": "test", "kernel_size": 7})


def with_per_neuron_delays(network, granularity: str, *, seed: int, max_delay: int):
    """``network`` (float or integer) with one delay in ``0..max_delay`` per presynaptic (axonal) or
    postsynaptic (dendritic) neuron in every stage."""
    rng = np.random.default_rng(seed)

    def shaped(stage):
        axis = 0 if granularity == "axonal" else 1  # the axis the shared delays repeat along
        count = stage.weights.shape[1 - axis]
        delays = np.repeat(np.expand_dims(rng.integers(0, max_delay + 1, count), axis), stage.weights.shape[axis],
                           axis=axis)
        return dataclasses.replace(stage, delays=delays)

    return dataclasses.replace(network, layers=[shaped(layer) for layer in network.layers],
                               readout=shaped(network.readout))


def with_pruned_synapses(network, keep: float, *, seed: int):
    """``network`` (float or integer) with each synapse, feedforward and recurrent, kept with probability
    ``keep``."""
    rng = np.random.default_rng(seed)

    def prune(weights):
        return None if weights is None else weights * (rng.random(weights.shape) < keep)

    layers = [dataclasses.replace(layer, weights=prune(layer.weights), recurrent_weights=prune(layer.recurrent_weights))
              for layer in network.layers]
    return dataclasses.replace(network, layers=layers, readout=dataclasses.replace(
        network.readout, weights=prune(network.readout.weights)))


def moderate_network(seed: int = 0, sizes: tuple[int, ...] = (20, 30, 25, 5), *, input_kind: str = "binary",
                     reset: str = "hard", threshold_rule: str = ">=", recurrent: bool = False, max_delay: int = 6,
                     tau: float = 2.0, threshold: float = 1.0, readout_tau: float = 3.0) -> Network:
    """A benign float network whose layers fire at moderate rates, delays 0..max_delay; ``recurrent``
    adds DelRec-like recurrence (one delay per presynaptic neuron) to every hidden layer."""
    rng = np.random.default_rng(seed)
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        extra = {}
        if recurrent:
            extra = dict(recurrent_weights=rng.normal(0.0, 0.4, (n_out, n_out)),
                         recurrent_delays=np.tile(rng.integers(0, 4, n_out), (n_out, 1)))
        layers.append(SpikingLayer(f"hidden{index}", rng.normal(0.25, 0.7, (n_out, n_in)),
                                   rng.integers(0, max_delay + 1, (n_out, n_in)), rng.normal(0.1, 0.2, n_out),
                                   LIFNeuron(tau=tau, threshold=threshold, reset=reset, threshold_rule=threshold_rule),
                                   **extra))
    readout = Readout("readout", rng.normal(0.0, 0.5, (sizes[-1], sizes[-2])),
                      rng.integers(0, max_delay + 1, (sizes[-1], sizes[-2])), rng.normal(0.0, 0.1, sizes[-1]),
                      tau=readout_tau)
    return Network(sizes[0], layers, readout, input_kind=input_kind, tail_steps=5)


def warmed_model(config: NetworkConfig, seed: int, warm_batches: int = 1) -> DelaySNN:
    """A float64 model in eval mode with realistic state: positions spread, BatchNorm statistics
    warmed on ``warm_batches`` random batches and non-trivial affine parameters."""
    torch.manual_seed(seed)
    model = DelaySNN(config).double().train()
    with torch.no_grad():
        for _ in range(warm_batches):
            model(torch.bernoulli(torch.full((30, 8, config.input_size), 0.2, dtype=torch.float64)))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.4)
    return model.eval()


def assert_same_network(a: Network, b: Network) -> None:
    """Every array equal (dtype included) and every constant identical (names, tails, metadata, decision)."""
    assert (a.input_size, a.input_kind, a.dt, a.tail_steps, a.metadata, a.decision) == (
        b.input_size, b.input_kind, b.dt, b.tail_steps, b.metadata, b.decision)
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers):
        assert (x.name, x.neuron, x.official_tail) == (y.name, y.neuron, y.official_tail)
        for field in ("weights", "delays", "bias", "recurrent_weights", "recurrent_delays"):
            left, right = getattr(x, field), getattr(y, field)
            assert (left is None and right is None) or (
                np.array_equal(left, right) and left.dtype == right.dtype), (x.name, field)
    ra, rb = a.readout, b.readout
    assert (ra.name, ra.tau, ra.official_tail) == (rb.name, rb.tau, rb.official_tail)
    for field in ("weights", "delays", "bias"):
        left, right = getattr(ra, field), getattr(rb, field)
        assert np.array_equal(left, right) and left.dtype == right.dtype, field


def write_heidelberg_h5(path: Path, samples: list, labels: list[int], times_dtype=np.float16) -> None:
    """An SHD/SSC file in the published layout: vlen float times (float16 in the real files), vlen
    uint16 units, uint16 labels, and an ``extra/`` group the loaders ignore."""
    import h5py

    with h5py.File(path, "w") as h5:
        times = h5.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(times_dtype))
        units = h5.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(samples):
            times[i] = np.asarray(t, dtype=times_dtype)
            units[i] = np.asarray(u, dtype=np.uint16)
        h5.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        h5.create_dataset("extra/speaker", data=np.zeros(len(samples), dtype=np.uint16))


def import_and_run(tmp_path: Path, source: str, state: dict, preset: str, x: np.ndarray, *,
                   import_options: tuple[str, ...] = (), run_options: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Save ``state``, ``delaydeploy import SOURCE`` it under ``preset`` and ``delaydeploy run`` the
    result on ``x``, all through the command line; returns the run's arrays (readout, pred, spikes_<l>)."""
    from delaydeploy.cli import main

    state_path, model_path, x_path, out = (tmp_path / name for name in ("state.pt", "imported.pt", "x.npy", "run.npz"))
    torch.save(state, state_path)
    assert main(["import", source, str(state_path), "--preset", preset, *import_options, "-o", str(model_path)]) == 0
    np.save(x_path, x)
    assert main(["run", str(model_path), "--input", str(x_path), *run_options, "-o", str(out)]) == 0
    with np.load(out) as result:
        return {key: result[key] for key in result.files}


def ec_keys(folder: Path) -> tuple[Path, Path, Path]:
    """A P-256 signing key, its public half and another key's public half, as openssl writes them."""
    import subprocess

    for name in ("key", "other"):
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", str(folder / f"{name}.pem")], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", str(folder / f"{name}.pem"), "-pubout", "-out",
                        str(folder / f"{name}_pub.pem")], check=True, capture_output=True)
    return folder / "key.pem", folder / "key_pub.pem", folder / "other_pub.pem"
